package engine

// The member economy's points (issue 20): every movement of a member's
// points — check-ins, referral rewards, orders, refunds, redemptions,
// expiry — goes through movePoints into the one ledger (bot/checkin's
// points_ledger), inside the event's transaction, with a reason.
//
//   - A credit raises the balance and the earned points (成长值, which levels
//     follow), and pays an outstanding debt first.
//   - A spend (make-up check-in, redemption) lowers the balance only; callers
//     check the balance first.
//   - A claw-back (a refunded order's points) takes what the balance holds
//     and records the rest as debt: the balance never goes below zero.
//   - With points.expire, every credit is a lot that expires on its day;
//     spends take the soonest-expiring lots first.
//
// KV buckets:
//
//	points_stats   w|<ISO week>|<issued|spent|redeemed|clawed|expired>|<shard> and total|<balance|debt>|<shard> → int64
//	points_lots    <member>|<expiry YYYY-MM-DD>|<ledger n> → int64 points left in the lot
//	points_expiry  <expiry YYYY-MM-DD>|<member> → present: a member with a lot expiring that day

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
)

const (
	bucketPointsStats  = bot.BucketPointsStats
	bucketPointsLots   = bot.BucketPointsLots
	bucketPointsExpiry = bot.BucketPointsExpiry
)

// Kinds of points movement (the weekly statistics group by them).
const (
	pointsCredit  = "issued"
	pointsSpend   = "spent"
	pointsRedeem  = "redeemed"
	pointsClaw    = "clawed"
	pointsExpired = "expired"
)

// Ledger reasons of the economy.
const (
	ReasonOrderPrefix  = "order:"
	ReasonRefundPrefix = "refund:"
	ReasonRedeemPrefix = "redeem:"
	ReasonDebt         = "debt"
	ReasonExpire       = "expire"
)

// addPoints credits (delta > 0) or spends (delta < 0) points with reason.
func (r *run) addPoints(ms *memberState, delta int64, reason, campaign string) error {
	switch {
	case delta > 0:
		return r.movePoints(ms, delta, pointsCredit, reason, campaign)
	case delta < 0:
		kind := pointsSpend
		if strings.HasPrefix(reason, ReasonRedeemPrefix) {
			kind = pointsRedeem
		}
		return r.movePoints(ms, -delta, kind, reason, campaign)
	}
	return nil
}

// movePoints moves n > 0 points of kind and appends the ledger entries.
func (r *run) movePoints(ms *memberState, n int64, kind, reason, campaign string) error {
	m := ms.m
	// Members from before earned points were kept: what they hold was earned.
	m.PointsEarned = max(m.PointsEarned, m.Points)
	balance, debt := m.Points, m.PointsDebt
	var delta int64
	switch kind {
	case pointsCredit:
		delta = n
		m.PointsEarned += n
	case pointsClaw:
		taken := min(n, balance)
		delta = -taken
		debt += n - taken
		m.PointsEarned = max(m.PointsEarned-n, 0)
	default: // spent, redeemed, expired: callers hold the balance
		if n > balance {
			return fmt.Errorf("points: %s of %d with a balance of %d", kind, n, balance)
		}
		delta = -n
	}
	e, err := checkin.Append(r.tx, m.ExternalUserID, checkin.Entry{At: r.at, Delta: delta, Balance: balance + delta, Debt: debt,
		Reason: reason, Campaign: campaign, Ref: r.ref})
	if err != nil {
		return err
	}
	if err := r.addStat(ms, r.weekKey(kind), n); err != nil {
		return err
	}
	if err := r.lotsMoved(ms, e); err != nil {
		return err
	}
	m.Points, ms.dirty = e.Balance, true
	if err := r.addStat(ms, "total|balance", delta); err != nil {
		return err
	}
	if err := r.addStat(ms, "total|debt", debt-m.PointsDebt); err != nil {
		return err
	}
	m.PointsDebt = debt
	if kind == pointsCredit && debt > 0 {
		// Later credits pay the debt first.
		pay := min(debt, m.Points)
		e, err := checkin.Append(r.tx, m.ExternalUserID, checkin.Entry{At: r.at, Delta: -pay, Balance: m.Points - pay, Debt: debt - pay,
			Reason: ReasonDebt, Campaign: campaign, Ref: r.ref})
		if err != nil {
			return err
		}
		if err := r.lotsMoved(ms, e); err != nil {
			return err
		}
		m.Points, m.PointsDebt = e.Balance, e.Debt
		if err := r.addStat(ms, "total|balance", -pay); err != nil {
			return err
		}
		if err := r.addStat(ms, "total|debt", -pay); err != nil {
			return err
		}
		r.log.Info().Int64("paid", pay).Int64("debt", m.PointsDebt).Msg("points credit paid a refund's debt")
	}
	return nil
}

// weekKey is the statistics key of kind for the event's ISO week in the brand's zone.
func (r *run) weekKey(kind string) string {
	return "w|" + isoWeek(r.at.In(r.sc.Brand.Zone)) + "|" + kind
}

func isoWeek(t time.Time) string {
	y, w := t.ISOWeek()
	return fmt.Sprintf("%04d-W%02d", y, w)
}

// statShards spreads each statistic over counters by member, so members'
// transactions don't all wait on one hot key (PostgreSQL row locks with
// several nodes); readers sum the shards.
const statShards = 16

func statShard(member string) string {
	h := fnv.New32a()
	h.Write([]byte(member))
	return fmt.Sprintf("%02d", h.Sum32()%statShards)
}

// addStat adds delta to the member's shard of a signed statistics counter.
func (r *run) addStat(ms *memberState, key string, delta int64) error {
	if delta == 0 {
		return nil
	}
	key += "|" + statShard(ms.m.ExternalUserID)
	n, err := readStat(r.tx, key)
	if err != nil {
		return err
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n+delta))
	return r.tx.Put(bucketPointsStats, key, b[:])
}

// sumStat sums a statistic's shards.
func sumStat(tx bot.Tx, key string) (int64, error) {
	var total int64
	var bad error
	err := tx.Scan(bucketPointsStats, key+"|", func(k string, v []byte) bool {
		if len(v) != 8 {
			bad = fmt.Errorf("points statistics %s: bad counter", k)
			return false
		}
		total += int64(binary.BigEndian.Uint64(v))
		return true
	})
	if err == nil {
		err = bad
	}
	return total, err
}

func readStat(tx bot.Tx, key string) (int64, error) {
	raw, err := tx.Get(bucketPointsStats, key)
	if errors.Is(err, bot.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read points statistics: %w", err)
	}
	if len(raw) != 8 {
		return 0, fmt.Errorf("points statistics %s: bad counter", key)
	}
	return int64(binary.BigEndian.Uint64(raw)), nil
}

// ---- expiry lots ----

// lotsMoved keeps the member's expiry lots in step with a ledger entry: a
// credit adds a lot (when points expire), anything else takes from the
// soonest-expiring lots. Points from before expiry was on are in no lot and
// never expire; they are taken last.
func (r *run) lotsMoved(ms *memberState, e checkin.Entry) error {
	p := r.sc.Points
	id := ms.m.ExternalUserID
	if e.Delta > 0 && e.Reason != ReasonDebt {
		if !p.Expires() {
			return nil
		}
		day := p.ExpiryOf(r.at, r.sc.Brand.Zone).Format(time.DateOnly)
		if err := r.putInt(bucketPointsLots, id+"|"+day+"|"+fmt.Sprintf("%012d", e.N), e.Delta); err != nil {
			return err
		}
		return r.tx.Put(bucketPointsExpiry, day+"|"+id, present)
	}
	left := -e.Delta
	if left <= 0 {
		return nil
	}
	type lot struct {
		key string
		n   int64
	}
	var lots []lot
	var bad error
	if err := r.tx.Scan(bucketPointsLots, id+"|", func(k string, v []byte) bool {
		if len(v) != 8 {
			bad = fmt.Errorf("points lot %s: bad value", k)
			return false
		}
		lots = append(lots, lot{k, int64(binary.BigEndian.Uint64(v))})
		return true
	}); err != nil || bad != nil {
		return errors.Join(err, bad)
	}
	for _, l := range lots {
		if left == 0 {
			break
		}
		take := min(l.n, left)
		left -= take
		if take == l.n {
			if err := r.tx.Delete(bucketPointsLots, l.key); err != nil {
				return err
			}
			continue
		}
		if err := r.putInt(bucketPointsLots, l.key, l.n-take); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) putInt(bucket, key string, n int64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	if err := r.tx.Put(bucket, key, b[:]); err != nil {
		return fmt.Errorf("write %s/%s: %w", bucket, key, err)
	}
	return nil
}

// expirePoints expires the lots whose last day is before today, up to max
// members; it reports whether any are left for the next run.
func (r *run) expirePoints(today time.Time, maxMembers int) (more bool, err error) {
	cutoff := today.Format(time.DateOnly)
	type due struct{ key, day, member string }
	var dues []due
	if err := r.tx.Scan(bucketPointsExpiry, "", func(k string, _ []byte) bool {
		day, member, ok := strings.Cut(k, "|")
		if !ok || day >= cutoff {
			return false
		}
		if len(dues) == maxMembers {
			more = true
			return false
		}
		dues = append(dues, due{k, day, member})
		return true
	}); err != nil {
		return false, err
	}
	for _, d := range dues {
		if err := r.tx.Delete(bucketPointsExpiry, d.key); err != nil {
			return false, err
		}
		var expired int64
		var keys []string
		prefix := d.member + "|" + d.day + "|"
		if err := r.tx.Scan(bucketPointsLots, prefix, func(k string, v []byte) bool {
			if len(v) == 8 {
				expired += int64(binary.BigEndian.Uint64(v))
			}
			keys = append(keys, k)
			return true
		}); err != nil {
			return false, err
		}
		for _, k := range keys {
			if err := r.tx.Delete(bucketPointsLots, k); err != nil {
				return false, err
			}
		}
		ms, err := r.member(d.member, false)
		if err != nil || ms == nil || expired <= 0 {
			if err != nil {
				return false, err
			}
			continue
		}
		expired = min(expired, ms.m.Points)
		if expired <= 0 {
			continue
		}
		if err := r.movePoints(ms, expired, pointsExpired, ReasonExpire, ""); err != nil {
			return false, err
		}
		r.log.Info().Str("member", d.member).Int64("points", expired).Str("last_day", d.day).Msg("points expired")
	}
	return more, nil
}

// ---- points for spend ----

// orderPointsFor is the points an order of net fen earns the member at her level.
func (r *run) orderPointsFor(ms *memberState, net int64) int64 {
	per := r.sc.Points.PerYuan
	if per <= 0 || net <= 0 {
		return 0
	}
	mult := 1.0
	if l := r.sc.Level(ms.m.Level); l != nil && l.Multiplier > 0 {
		mult = l.Multiplier
	}
	return int64(math.Floor(float64(net)*float64(per)*mult/100 + 1e-9))
}

// creditOrder credits a counted order's points (net of refunds that came
// before it) and tells the member (points.earned).
func (r *run) creditOrder(ms *memberState, id string, rec *orderRecord) error {
	net := rec.AmountFen - rec.RefundedFen
	if rec.Voided || rec.Points > 0 {
		return nil
	}
	pts := r.orderPointsFor(ms, net)
	if pts == 0 {
		return nil
	}
	rec.Points, rec.PointsBaseFen = pts, net
	if err := r.addPoints(ms, pts, ReasonOrderPrefix+id, ""); err != nil {
		return err
	}
	r.log.Info().Str("order", id).Int64("points", pts).Int64("balance", ms.m.Points).Msg("order earned points")
	data := r.sc.DataFor(ms.m)
	data.Earned, data.Debt = pts, ms.m.PointsDebt
	r.note(ms, r.render(r.sc.Points.Earned, data), true)
	return nil
}

// clawOrder takes back the points of the part of a credited order that
// refunds returned (refundedFen since the credit), in proportion.
func (r *run) clawOrder(ms *memberState, id string, rec *orderRecord, refundedFen int64) error {
	if rec.Points == 0 || rec.PointsBaseFen <= 0 {
		return nil
	}
	rec.PointsRefundFen += refundedFen
	target := rec.Points
	if rec.PointsRefundFen < rec.PointsBaseFen {
		target = rec.Points * rec.PointsRefundFen / rec.PointsBaseFen
	}
	back := target - rec.PointsBack
	if back <= 0 {
		return nil
	}
	rec.PointsBack = target
	if err := r.movePoints(ms, back, pointsClaw, ReasonRefundPrefix+id, ""); err != nil {
		return err
	}
	r.log.Info().Str("order", id).Int64("points", back).Int64("balance", ms.m.Points).Int64("debt", ms.m.PointsDebt).Msg("refund took back the order's points")
	data := r.sc.DataFor(ms.m)
	data.Earned, data.Debt = back, ms.m.PointsDebt
	r.note(ms, r.render(r.sc.Points.ClawedBack, data), true)
	return nil
}

// note keeps a text for the member until the event is done: the economy's
// texts of one event (points earned, a level reached and its rights) go
// to her as one message. kfOnly texts (points notices) are only worth a
// 微信客服 message inside its window, never a mass-send task, whose monthly
// quota per customer is small (4 by default).
func (r *run) note(ms *memberState, text string, kfOnly bool) {
	if strings.TrimSpace(text) == "" {
		return
	}
	ms.notes = append(ms.notes, text)
	ms.notesKfOnly = (len(ms.notes) == 1 || ms.notesKfOnly) && kfOnly
}

// flushNotes sends the member's notes of this event as one message.
func (r *run) flushNotes(ms *memberState) error {
	if len(ms.notes) == 0 {
		return nil
	}
	text, kfOnly := joinText(ms.notes...), ms.notesKfOnly
	ms.notes = nil
	key := "economy|" + r.ref + "|" + ms.m.ExternalUserID
	if kfOnly {
		var seen kfSeen
		found, err := r.getJSON(bucketKfSeen, ms.m.ExternalUserID, &seen)
		if err != nil {
			return err
		}
		if !found || r.at.Sub(seen.At) >= KfReplyWindow {
			r.log.Debug().Str("member", ms.m.ExternalUserID).Msg("points notice not sent: no 微信客服 window (a mass-send would spend her monthly quota)")
			return nil
		}
	}
	return r.deliverCoupon(ms, key, text)
}

// ---- read models ----

// WeekPoints is one week's points movements.
type WeekPoints struct {
	Week     string `json:"week"`
	Issued   int64  `json:"issued"`
	Spent    int64  `json:"spent"`
	Redeemed int64  `json:"redeemed"`
	Clawed   int64  `json:"clawed_back"`
	Expired  int64  `json:"expired"`
}

// PointsTotals is the economy's liability: points members hold and owe.
type PointsTotals struct {
	Outstanding int64 `json:"outstanding"`
	Debt        int64 `json:"debt"`
}

// PointsByWeek returns the points movements per ISO week, oldest first,
// and the totals.
func PointsByWeek(tx bot.Tx) ([]WeekPoints, PointsTotals, error) {
	var weeks []WeekPoints
	var bad error
	err := tx.Scan(bucketPointsStats, "w|", func(k string, v []byte) bool {
		parts := strings.Split(k, "|") // w|week|kind|shard
		if len(parts) != 4 || len(v) != 8 {
			bad = fmt.Errorf("bad points statistic %q", k)
			return false
		}
		if len(weeks) == 0 || weeks[len(weeks)-1].Week != parts[1] {
			weeks = append(weeks, WeekPoints{Week: parts[1]})
		}
		w := &weeks[len(weeks)-1]
		n := int64(binary.BigEndian.Uint64(v))
		switch parts[2] {
		case pointsCredit:
			w.Issued += n
		case pointsSpend:
			w.Spent += n
		case pointsRedeem:
			w.Redeemed += n
		case pointsClaw:
			w.Clawed += n
		case pointsExpired:
			w.Expired += n
		}
		return true
	})
	if err == nil {
		err = bad
	}
	var t PointsTotals
	if err == nil {
		t.Outstanding, err = sumStat(tx, "total|balance")
	}
	if err == nil {
		t.Debt, err = sumStat(tx, "total|debt")
	}
	return weeks, t, err
}

// MemberLots returns the member's expiring points by last day (YYYY-MM-DD), soonest first.
func MemberLots(tx bot.Tx, member string) (map[string]int64, []string, error) {
	out := map[string]int64{}
	var days []string
	err := tx.Scan(bucketPointsLots, member+"|", func(k string, v []byte) bool {
		parts := strings.Split(k, "|")
		if len(parts) < 3 || len(v) != 8 {
			return true
		}
		day := parts[len(parts)-2]
		if _, seen := out[day]; !seen {
			days = append(days, day)
		}
		out[day] += int64(binary.BigEndian.Uint64(v))
		return true
	})
	return out, days, err
}
