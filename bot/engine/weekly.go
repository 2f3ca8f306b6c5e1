package engine

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// Weekly counters per channel: what the money metrics (流量 × 转化率 ×
// 客单价 × 复购, LTV, K-factor), the silent / came-back counts and the
// lost-per-channel report read. They change in the event's transaction,
// so reading them is a short prefix scan however many members there are.
// Counting starts when this version runs: weeks before have no counters.
//
//	weekly  <Monday YYYY-MM-DD, brand zone>|<channel name> → WeekStats JSON

// WeekStats is one week's counters for one channel ("" for members with
// no channel).
type WeekStats struct {
	// Added counts members whose first add was that week.
	Added int `json:"added,omitempty"`
	// Entered counts moves into each stage.
	Entered map[bot.Stage]int `json:"entered,omitempty"`
	// Buyers counts first paid orders; RepeatBuyers members whose second
	// paid order came that week (they became repeat buyers).
	Buyers       int `json:"buyers,omitempty"`
	RepeatBuyers int `json:"repeat_buyers,omitempty"`
	// Orders and GMVFen count paid orders and their amounts (分);
	// RefundFen refunds applied that week.
	Orders    int   `json:"orders,omitempty"`
	GMVFen    int64 `json:"gmv_fen,omitempty"`
	RefundFen int64 `json:"refund_fen,omitempty"`
	// Lost counts members who deleted their last staff member (or were
	// deleted by it); LeftGroups those who left their last customer group.
	Lost       int `json:"lost,omitempty"`
	LeftGroups int `json:"left_groups,omitempty"`
	// WentSilent and CameBack count the silent rule's marks and returns.
	WentSilent int `json:"went_silent,omitempty"`
	CameBack   int `json:"came_back,omitempty"`
	// Invited counts referral invitees credited to referrers of the channel.
	Invited int `json:"invited,omitempty"`
}

// Add adds o's counts to w.
func (w *WeekStats) Add(o WeekStats) {
	w.Added += o.Added
	w.Buyers += o.Buyers
	w.RepeatBuyers += o.RepeatBuyers
	w.Orders += o.Orders
	w.GMVFen += o.GMVFen
	w.RefundFen += o.RefundFen
	w.Lost += o.Lost
	w.LeftGroups += o.LeftGroups
	w.WentSilent += o.WentSilent
	w.CameBack += o.CameBack
	w.Invited += o.Invited
	for st, n := range o.Entered {
		if w.Entered == nil {
			w.Entered = map[bot.Stage]int{}
		}
		w.Entered[st] += n
	}
}

// WeekOf is the Monday (YYYY-MM-DD in zone) of t's week.
func WeekOf(t time.Time, zone *time.Location) string {
	t = t.In(zone)
	wd := (int(t.Weekday()) + 6) % 7 // Monday = 0
	return t.AddDate(0, 0, -wd).Format(time.DateOnly)
}

// ChannelWeek is one row of the weekly counters.
type ChannelWeek struct {
	Week    string `json:"week"`
	Channel string `json:"channel"`
	WeekStats
}

// Weekly reads the counters of the weeks from `from` to `to` (Mondays,
// YYYY-MM-DD, inclusive), in week then channel order.
func Weekly(tx bot.Tx, from, to string) ([]ChannelWeek, error) {
	var out []ChannelWeek
	var bad error
	err := tx.Scan(bot.BucketWeekly, "", func(key string, value []byte) bool {
		week, channel, _ := strings.Cut(key, "|")
		if week < from {
			return true
		}
		if week > to {
			return false
		}
		var s WeekStats
		if err := json.Unmarshal(value, &s); err != nil {
			bad = fmt.Errorf("decode weekly %s: %w", key, err)
			return false
		}
		out = append(out, ChannelWeek{Week: week, Channel: channel, WeekStats: s})
		return true
	})
	if err == nil {
		err = bad
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Week != out[j].Week {
			return out[i].Week < out[j].Week
		}
		return out[i].Channel < out[j].Channel
	})
	return out, err
}

// tally records counts for the member's channel in the week of the event;
// they are written once, at the end of the event (flushWeekly).
func (r *run) tally(m *bot.Member, f func(*WeekStats)) {
	key := WeekOf(r.at, r.sc.Brand.Zone) + "|" + m.Channel
	if r.weekly == nil {
		r.weekly = map[string]*WeekStats{}
	}
	s := r.weekly[key]
	if s == nil {
		s = &WeekStats{}
		r.weekly[key] = s
		r.weeklyKeys = append(r.weeklyKeys, key)
	}
	f(s)
}

// flushWeekly adds the event's counts to the stored counters.
func (r *run) flushWeekly() error {
	for _, key := range r.weeklyKeys {
		cur, err := loadHot[WeekStats](r, bot.BucketWeekly, key)
		if err != nil {
			return err
		}
		if cur == nil {
			cur = &WeekStats{}
		}
		cur.Add(*r.weekly[key])
		if err := saveHot(r, bot.BucketWeekly, key, cur); err != nil {
			return err
		}
	}
	return nil
}
