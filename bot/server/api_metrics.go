package server

import (
	"net/http"
	"sort"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
)

// Money metrics per channel and week, from the engine's weekly counters
// (bot/engine weekly.go: kept in each event's transaction, so this is a
// short prefix scan at any member count). The overview's decomposition is
// the seed's 私域GMV = 流量 × 转化率 × 复购 × 客单价 over the window:
//
//	GMV = added × (buyers / added) × (orders / buyers) × (GMV / orders)
//
// an identity of the window's counts: traffic is new members, conversion
// first orders per new member, frequency orders per first-time buyer
// (repeat purchases lift it above 1), AOV (客单价) GMV per order.

// metricsView is one row of money metrics (a week, a channel, the total).
type metricsView struct {
	Week    string `json:"week,omitempty"`
	Channel string `json:"channel"`
	engine.WeekStats
	// NetGMVFen is GMV less refunds.
	NetGMVFen int64 `json:"net_gmv_fen"`
	// Conversion is buyers per new member; Frequency orders per buyer;
	// AOVFen (客单价) GMV per order; RepeatRate (复购率) repeat buyers per
	// buyer; LTVFen net GMV per new member; KFactor invitees per new member.
	Conversion float64 `json:"conversion"`
	Frequency  float64 `json:"frequency"`
	AOVFen     int64   `json:"aov_fen"`
	RepeatRate float64 `json:"repeat_rate"`
	LTVFen     int64   `json:"ltv_fen"`
	KFactor    float64 `json:"k_factor"`
}

func newMetricsView(week, channel string, s engine.WeekStats) metricsView {
	v := metricsView{Week: week, Channel: channel, WeekStats: s, NetGMVFen: s.GMVFen - s.RefundFen,
		Conversion: ratio(s.Buyers, s.Added), Frequency: ratio(s.Orders, s.Buyers), RepeatRate: ratio(s.RepeatBuyers, s.Buyers),
		KFactor: ratio(s.Invited, s.Added)}
	if s.Orders > 0 {
		v.AOVFen = s.GMVFen / int64(s.Orders)
	}
	if s.Added > 0 {
		v.LTVFen = v.NetGMVFen / int64(s.Added)
	}
	if v.Entered == nil {
		v.Entered = map[bot.Stage]int{}
	}
	return v
}

// apiMetrics is GET /api/v1/metrics: the last `weeks` weeks' money metrics
// by week and by channel (optionally one channel), their total, and the
// GMV decomposition.
func (s *Server) apiMetrics(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "weeks", "channel")
	weeks := q.int("weeks", 12, 1, 104)
	channel, hasChannel := q.str("channel", 128), q.v.Has("channel")
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	zone := time.UTC
	if sc, err := s.segmentScenario(); err == nil && sc.Brand.Zone != nil {
		zone = sc.Brand.Zone
	}
	now := s.o.Now()
	to := engine.WeekOf(now, zone)
	from := engine.WeekOf(now.AddDate(0, 0, -7*(weeks-1)), zone)
	var rows []engine.ChannelWeek
	first := ""
	err := s.o.Store.View(r.Context(), func(tx bot.Tx) error {
		var err error
		if rows, err = engine.Weekly(tx, from, to); err != nil {
			return err
		}
		all, err := engine.Weekly(tx, "", to)
		if len(all) > 0 {
			first = all[0].Week
		}
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	byWeek := map[string]*engine.WeekStats{}
	byChannel := map[string]*engine.WeekStats{}
	var total engine.WeekStats
	for _, row := range rows {
		if hasChannel && row.Channel != channel {
			continue
		}
		if byWeek[row.Week] == nil {
			byWeek[row.Week] = &engine.WeekStats{}
		}
		byWeek[row.Week].Add(row.WeekStats)
		if byChannel[row.Channel] == nil {
			byChannel[row.Channel] = &engine.WeekStats{}
		}
		byChannel[row.Channel].Add(row.WeekStats)
		total.Add(row.WeekStats)
	}
	weekRows := make([]metricsView, 0, weeks)
	for i := weeks - 1; i >= 0; i-- {
		wk := engine.WeekOf(now.AddDate(0, 0, -7*i), zone)
		var st engine.WeekStats
		if byWeek[wk] != nil {
			st = *byWeek[wk]
		}
		weekRows = append(weekRows, newMetricsView(wk, channel, st))
	}
	channels := make([]metricsView, 0, len(byChannel))
	for ch, st := range byChannel {
		channels = append(channels, newMetricsView("", ch, *st))
	}
	sort.Slice(channels, func(i, j int) bool {
		if channels[i].GMVFen != channels[j].GMVFen {
			return channels[i].GMVFen > channels[j].GMVFen
		}
		if channels[i].Added != channels[j].Added {
			return channels[i].Added > channels[j].Added
		}
		return channels[i].Channel < channels[j].Channel
	})
	tv := newMetricsView("", channel, total)
	thisWeek := weekRows[len(weekRows)-1]
	writeJSON(w, http.StatusOK, map[string]any{
		"zone": zone.String(), "from": from, "to": to, "channel": channel,
		// counting_since is the first week with counters (they start with
		// the version that keeps them).
		"counting_since": first,
		"weeks":          weekRows,
		"channels":       channels,
		"total":          tv,
		"decomposition": map[string]any{
			"traffic": total.Added, "conversion": tv.Conversion, "frequency": tv.Frequency, "aov_fen": tv.AOVFen, "gmv_fen": total.GMVFen,
		},
		"this_week": map[string]int{"went_silent": thisWeek.WentSilent, "came_back": thisWeek.CameBack, "lost": thisWeek.Lost, "left_groups": thisWeek.LeftGroups},
	})
}
