package checkin

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// Progress is one member's standing in one campaign.
type Progress struct {
	Campaign string `json:"campaign"`
	Member   string `json:"member"`
	// First is the first day checked in (a rolling campaign's run starts there).
	First Day `json:"first"`
	// Days are the days checked in, made-up days included, ascending.
	Days []Day `json:"days"`
	// Makeups are the made-up days.
	Makeups []Day `json:"makeups,omitempty"`
	// Score is the points earned in this campaign (check-ins, streak
	// bonuses, milestones): the leaderboard score.
	Score int64 `json:"score"`
	// Bonuses are the streak bonus lengths and Milestones the milestone days
	// already rewarded (each once).
	Bonuses    []int `json:"bonuses,omitempty"`
	Milestones []int `json:"milestones,omitempty"`
	// Certificate is set once a certificate milestone was reached.
	Certificate bool      `json:"certificate,omitempty"`
	Last        time.Time `json:"last"`
}

// Has reports whether day is checked in (nil-safe).
func (p *Progress) Has(day Day) bool {
	if p == nil {
		return false
	}
	i := sort.Search(len(p.Days), func(i int) bool { return p.Days[i] >= day })
	return i < len(p.Days) && p.Days[i] == day
}

// Count is the number of days checked in (nil-safe).
func (p *Progress) Count() int {
	if p == nil {
		return 0
	}
	return len(p.Days)
}

// StreakAt is the run of consecutive checked-in days ending at day (0 when
// day itself is not checked in).
func (p *Progress) StreakAt(day Day) int {
	n := 0
	for p.Has(day - Day(n)) {
		n++
	}
	return n
}

// Streak is the member's current streak on today: the run ending today, or
// ending yesterday while today is still open.
func (p *Progress) Streak(today Day) int {
	if p.Has(today) {
		return p.StreakAt(today)
	}
	return p.StreakAt(today - 1)
}

// LongestStreak is the longest run of consecutive days.
func (p *Progress) LongestStreak() int {
	best, run := 0, 0
	for i, d := range p.Days {
		if i > 0 && d == p.Days[i-1]+1 {
			run++
		} else {
			run = 1
		}
		best = max(best, run)
	}
	return best
}

func (p *Progress) add(day Day) {
	i := sort.Search(len(p.Days), func(i int) bool { return p.Days[i] >= day })
	p.Days = append(p.Days, 0)
	copy(p.Days[i+1:], p.Days[i:])
	p.Days[i] = day
	if len(p.Days) == 1 || day < p.First {
		p.First = day
	}
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Rewarded reports whether the streak bonus for days was already given.
func (p *Progress) Rewarded(bonusDays int) bool { return containsInt(p.Bonuses, bonusDays) }

// Reached reports whether the milestone for day was already given.
func (p *Progress) Reached(milestoneDay int) bool { return containsInt(p.Milestones, milestoneDay) }

func progressKey(campaign, member string) string { return campaign + "|" + member }

// LoadProgress returns the member's progress in campaign, or nil.
func LoadProgress(tx bot.Tx, campaign, member string) (*Progress, error) {
	raw, err := tx.Get(BucketProgress, progressKey(campaign, member))
	if errors.Is(err, bot.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read check-in progress: %w", err)
	}
	p := new(Progress)
	if err := json.Unmarshal(raw, p); err != nil {
		return nil, fmt.Errorf("decode check-in progress %s: %w", progressKey(campaign, member), err)
	}
	return p, nil
}

// dayRecord is the fact that a member checked in on a campaign day.
type dayRecord struct {
	At     time.Time `json:"at"`
	Makeup bool      `json:"makeup,omitempty"`
	Ref    string    `json:"ref,omitempty"`
}

// Record adds day to p (a new progress when p is nil) and stores the day
// record and the participation counters. It fails with ErrDayTaken when the
// day is already recorded: callers decide with Attempt first, so this only
// guards the invariant.
func Record(tx bot.Tx, p *Progress, day Day, at time.Time, makeup bool, ref string) error {
	dayKey := p.Campaign + "|" + p.Member + "|" + day.String()
	if _, err := tx.Get(BucketDays, dayKey); err == nil {
		return ErrDayTaken
	} else if !errors.Is(err, bot.ErrNotFound) {
		return fmt.Errorf("read check-in day: %w", err)
	}
	raw, _ := json.Marshal(dayRecord{At: at, Makeup: makeup, Ref: ref})
	if err := tx.Put(BucketDays, dayKey, raw); err != nil {
		return fmt.Errorf("record check-in day: %w", err)
	}
	if err := tx.Put(BucketMemberDays, p.Member+"|"+day.String()+"|"+p.Campaign, present); err != nil {
		return fmt.Errorf("record check-in day: %w", err)
	}
	if len(p.Days) == 0 {
		if err := addCounter(tx, BucketStats, p.Campaign+"|participants", 1); err != nil {
			return err
		}
	}
	if err := addCounter(tx, BucketStats, p.Campaign+"|day|"+day.String(), 1); err != nil {
		return err
	}
	p.add(day)
	if makeup {
		p.Makeups = append(p.Makeups, day)
	}
	p.Last = at
	return nil
}

// MemberDays returns the days (2006-01-02) member checked in to any
// campaign, oldest first, each once. For the member detail page.
func MemberDays(tx bot.Tx, member string) ([]string, error) {
	var days []string
	err := tx.Scan(BucketMemberDays, member+"|", func(k string, _ []byte) bool {
		d := k[len(member)+1:]
		if i := strings.IndexByte(d, '|'); i >= 0 {
			d = d[:i]
		}
		if len(days) == 0 || days[len(days)-1] != d {
			days = append(days, d)
		}
		return true
	})
	return days, err
}

// EachDay calls fn for every recorded check-in day (made-up days included)
// of every member and campaign, in campaign, member, day order; returning
// false stops. For aggregates.
func EachDay(tx bot.Tx, fn func(campaign, member, day string) bool) error {
	return tx.Scan(BucketDays, "", func(k string, _ []byte) bool {
		parts := strings.Split(k, "|")
		if len(parts) != 3 {
			return true
		}
		return fn(parts[0], parts[1], parts[2])
	})
}

// ErrDayTaken means the member already has that campaign day.
var ErrDayTaken = errors.New("checkin: day already recorded")

// SaveProgress stores p and moves the member on the leaderboard from
// oldScore (ignored when isNew) to p.Score.
func SaveProgress(tx bot.Tx, p *Progress, oldScore int64, isNew bool) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := tx.Put(BucketProgress, progressKey(p.Campaign, p.Member), raw); err != nil {
		return fmt.Errorf("store check-in progress: %w", err)
	}
	if !isNew && oldScore == p.Score {
		return nil
	}
	return moveOnBoard(tx, p.Campaign, p.Member, oldScore, p.Score, isNew)
}

func addCounter(tx bot.Tx, bucket, key string, delta int64) error {
	n, err := counter(tx, bucket, key)
	if err != nil {
		return err
	}
	n += delta
	if n <= 0 {
		return tx.Delete(bucket, key)
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	if err := tx.Put(bucket, key, b[:]); err != nil {
		return fmt.Errorf("update %s/%s: %w", bucket, key, err)
	}
	return nil
}

func counter(tx bot.Tx, bucket, key string) (int64, error) {
	raw, err := tx.Get(bucket, key)
	if errors.Is(err, bot.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s/%s: %w", bucket, key, err)
	}
	if len(raw) != 8 {
		return 0, fmt.Errorf("%s/%s: bad counter", bucket, key)
	}
	return int64(binary.BigEndian.Uint64(raw)), nil
}

// ---- points ----

// Entry is one line of a member's points ledger.
type Entry struct {
	N       uint64    `json:"n"`
	At      time.Time `json:"at"`
	Delta   int64     `json:"delta"`
	Balance int64     `json:"balance"`
	// Debt is what the member still owes after this entry: points a refund
	// took back beyond her balance, paid first by later credits.
	Debt int64 `json:"debt,omitempty"`
	// Reason is checkin, makeup, streak:<days>, milestone:<day>, or another
	// feature's reason: order:<id>, refund:<id>, debt (a credit paying a
	// debt), redeem:<item>, expire, referral:<invites>.
	Reason   string `json:"reason"`
	Campaign string `json:"campaign,omitempty"`
	// Ref is the event that caused it.
	Ref string `json:"ref,omitempty"`
}

// AddPoints appends a ledger entry moving the member's balance from balance
// by delta and returns the entry (Entry.Balance is the new balance: store it
// in bot.Member.Points in the same transaction). Entries are never changed
// or removed.
func AddPoints(tx bot.Tx, member string, balance, delta int64, reason, campaign, ref string, at time.Time) (Entry, error) {
	return Append(tx, member, Entry{At: at, Delta: delta, Balance: balance + delta, Reason: reason, Campaign: campaign, Ref: ref})
}

// Append appends e (its N is assigned) to the member's ledger; the caller
// computed e.Balance and e.Debt.
func Append(tx bot.Tx, member string, e Entry) (Entry, error) {
	n, err := counter(tx, BucketHead, member)
	if err != nil {
		return Entry{}, err
	}
	e.N = uint64(n) + 1
	raw, _ := json.Marshal(e)
	if err := tx.Put(BucketPoints, member+"|"+pad(e.N), raw); err != nil {
		return Entry{}, fmt.Errorf("append points entry: %w", err)
	}
	if err := addCounter(tx, BucketHead, member, 1); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// PointsHistory returns up to limit ledger entries of member after entry n
// (0: from the start), oldest first.
func PointsHistory(tx bot.Tx, member string, after uint64, limit int) ([]Entry, error) {
	var out []Entry
	var derr error
	err := tx.Scan(BucketPoints, member+"|", func(k string, v []byte) bool {
		var e Entry
		if derr = json.Unmarshal(v, &e); derr != nil {
			return false
		}
		if e.N > after {
			out = append(out, e)
		}
		return len(out) < limit
	})
	if err == nil {
		err = derr
	}
	return out, err
}

func pad(n uint64) string { return fmt.Sprintf("%012d", n) }

// ---- leaderboard ----
//
// The board is a kv range ordered by (inverted score, member): a prefix
// scan reads the top N in order, O(N). A member's rank is one plus the
// number of members with a higher score; the scores bucket keeps a count
// per distinct score, so a rank reads the counts above the member's score:
// O(distinct scores), a few hundred at most for a campaign (scores move in
// steps of the campaign's points), however many members there are. Ties
// share a rank (1, 2, 2, 4).

// maxScore bounds scores so the inverted key stays 15 digits.
const maxScore = 999_999_999_999_999

func inverted(score int64) string {
	score = min(max(score, 0), maxScore)
	return fmt.Sprintf("%015d", maxScore-score)
}

func moveOnBoard(tx bot.Tx, campaign, member string, oldScore, newScore int64, isNew bool) error {
	if !isNew {
		if err := tx.Delete(BucketBoard, campaign+"|"+inverted(oldScore)+"|"+member); err != nil {
			return fmt.Errorf("update leaderboard: %w", err)
		}
		if err := addCounter(tx, BucketScores, campaign+"|"+inverted(oldScore), -1); err != nil {
			return err
		}
	}
	if err := tx.Put(BucketBoard, campaign+"|"+inverted(newScore)+"|"+member, present); err != nil {
		return fmt.Errorf("update leaderboard: %w", err)
	}
	return addCounter(tx, BucketScores, campaign+"|"+inverted(newScore), 1)
}

// Standing is one member's place on a campaign's leaderboard.
type Standing struct {
	Rank   int    `json:"rank"`
	Member string `json:"member"`
	Score  int64  `json:"score"`
}

// Top returns the campaign's leaderboard's first n members, best first;
// ties share a rank and are ordered by member id. The dashboard calls it
// inside a store.View.
func Top(tx bot.Tx, campaign string, n int) ([]Standing, error) {
	var out []Standing
	prefix := campaign + "|"
	var bad error
	err := tx.Scan(BucketBoard, prefix, func(k string, _ []byte) bool {
		rest := k[len(prefix):]
		if len(rest) < 17 {
			bad = fmt.Errorf("bad leaderboard key %q", k)
			return false
		}
		inv, err := strconv.ParseInt(rest[:15], 10, 64)
		if err != nil {
			bad = fmt.Errorf("bad leaderboard key %q", k)
			return false
		}
		s := Standing{Rank: len(out) + 1, Member: rest[16:], Score: maxScore - inv}
		if len(out) > 0 && out[len(out)-1].Score == s.Score {
			s.Rank = out[len(out)-1].Rank
		}
		out = append(out, s)
		return len(out) < n
	})
	if err == nil {
		err = bad
	}
	return out, err
}

// Rank returns the member's rank on the campaign's leaderboard (1 is best,
// ties share a rank) and score; found is false for a member who never
// checked in. It reads the per-score counts above the member's score, not
// the members, so it costs the same at a million members.
func Rank(tx bot.Tx, campaign, member string) (rank int, score int64, found bool, err error) {
	p, err := LoadProgress(tx, campaign, member)
	if err != nil || p == nil {
		return 0, 0, false, err
	}
	mine := inverted(p.Score)
	prefix := campaign + "|"
	above := int64(0)
	var bad error
	err = tx.Scan(BucketScores, prefix, func(k string, v []byte) bool {
		if k[len(prefix):] >= mine {
			return false
		}
		if len(v) != 8 {
			bad = fmt.Errorf("bad score count %q", k)
			return false
		}
		above += int64(binary.BigEndian.Uint64(v))
		return true
	})
	if err == nil {
		err = bad
	}
	return int(above) + 1, p.Score, true, err
}

// DayCount is how many members checked in on a day.
type DayCount struct {
	Day      string `json:"day"`
	CheckIns int64  `json:"check_ins"`
}

// Participation returns how many members ever checked in to campaign and
// the check-ins per day (made-up days count on the day they fill), in day
// order. For the dashboard.
func Participation(tx bot.Tx, campaign string) (participants int64, perDay []DayCount, err error) {
	if participants, err = counter(tx, BucketStats, campaign+"|participants"); err != nil {
		return 0, nil, err
	}
	prefix := campaign + "|day|"
	var bad error
	err = tx.Scan(BucketStats, prefix, func(k string, v []byte) bool {
		if len(v) != 8 {
			bad = fmt.Errorf("bad counter %q", k)
			return false
		}
		perDay = append(perDay, DayCount{Day: k[len(prefix):], CheckIns: int64(binary.BigEndian.Uint64(v))})
		return true
	})
	if err == nil {
		err = bad
	}
	return participants, perDay, err
}

// CheckInsOn returns how many members checked in to campaign on day.
func CheckInsOn(tx bot.Tx, campaign string, day Day) (int64, error) {
	return counter(tx, BucketStats, campaign+"|day|"+day.String())
}

// EachProgress calls fn for every member's progress in campaign, in member
// order; returning false stops.
func EachProgress(tx bot.Tx, campaign string, fn func(*Progress) bool) error {
	var derr error
	err := tx.Scan(BucketProgress, campaign+"|", func(_ string, v []byte) bool {
		p := new(Progress)
		if derr = json.Unmarshal(v, p); derr != nil {
			return false
		}
		return fn(p)
	})
	if err == nil {
		err = derr
	}
	return err
}

// IsClosed reports whether the campaign was closed by a close reminder.
func IsClosed(tx bot.Tx, campaign string) (bool, error) {
	_, err := tx.Get(BucketState, "closed|"+campaign)
	if errors.Is(err, bot.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Close marks the campaign closed: later check-ins get the closed reply.
func Close(tx bot.Tx, campaign string, at time.Time) error {
	return tx.Put(BucketState, "closed|"+campaign, []byte(at.UTC().Format(time.RFC3339)))
}

// KfContact is the member's 微信客服 conversation, for reminders through kf:
// WeCom lets a kf account write to a user only for a while after the user's
// last message.
type KfContact struct {
	OpenKfID string    `json:"open_kfid"`
	At       time.Time `json:"at"`
}

// KfWindow is how long after a member's last kf message reminders may go to them.
const KfWindow = 48 * time.Hour

// NoteKf records the member's latest kf message, and indexes it by day
// (kf_recent) so a reminder reads the members within the kf window, not
// every member who ever wrote.
func NoteKf(tx bot.Tx, member, openKfID string, at time.Time) error {
	old, err := LoadKf(tx, member)
	if err != nil {
		return err
	}
	if old != nil && kfDay(old.At) != kfDay(at) {
		if err := tx.Delete(BucketKfRecent, kfDay(old.At)+"|"+member); err != nil {
			return err
		}
	}
	raw, _ := json.Marshal(KfContact{OpenKfID: openKfID, At: at})
	if err := tx.Put(BucketKf, member, raw); err != nil {
		return err
	}
	return tx.Put(BucketKfRecent, kfDay(at)+"|"+member, present)
}

func kfDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// kfIndexed marks kf_recent as holding every contact (written once, after
// the backfill of contacts noted before it existed).
const kfIndexed = "indexed"

// EachKfSince calls fn, in member order, for every member whose last kf
// message was at or after since, reading only the days from since on (the
// first call on a store written before kf_recent backfills it once).
func EachKfSince(tx bot.Tx, since, now time.Time, fn func(member string, k KfContact) bool) error {
	if _, err := tx.Get(BucketKfRecent, kfIndexed); errors.Is(err, bot.ErrNotFound) {
		var putErr error
		if err := EachKf(tx, func(member string, k KfContact) bool {
			putErr = tx.Put(BucketKfRecent, kfDay(k.At)+"|"+member, present)
			return putErr == nil
		}); err != nil {
			return err
		}
		if putErr != nil {
			return putErr
		}
		if err := tx.Put(BucketKfRecent, kfIndexed, present); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	var members []string
	for day := since.UTC().Truncate(24 * time.Hour); !day.After(now.UTC()); day = day.Add(24 * time.Hour) {
		prefix := kfDay(day) + "|"
		if err := tx.Scan(BucketKfRecent, prefix, func(k string, _ []byte) bool {
			members = append(members, k[len(prefix):])
			return true
		}); err != nil {
			return err
		}
	}
	slices.Sort(members)
	for _, m := range slices.Compact(members) {
		k, err := LoadKf(tx, m)
		if err != nil {
			return err
		}
		if k == nil || k.At.Before(since) {
			continue
		}
		if !fn(m, *k) {
			return nil
		}
	}
	return nil
}

// LoadKf returns the member's kf conversation, or nil.
func LoadKf(tx bot.Tx, member string) (*KfContact, error) {
	raw, err := tx.Get(BucketKf, member)
	if errors.Is(err, bot.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	k := new(KfContact)
	if err := json.Unmarshal(raw, k); err != nil {
		return nil, err
	}
	return k, nil
}

// EachKf calls fn for every member with a kf conversation, in member order.
func EachKf(tx bot.Tx, fn func(member string, k KfContact) bool) error {
	return tx.Scan(BucketKf, "", func(key string, v []byte) bool {
		var k KfContact
		if json.Unmarshal(v, &k) != nil {
			return true
		}
		return fn(key, k)
	})
}

// SaveResult keeps the reply of a check-in event for the H5 page.
func SaveResult(tx bot.Tx, ref, text string) error { return tx.Put(BucketResults, ref, []byte(text)) }

// LoadResult returns the reply of a check-in event, found false until processed.
func LoadResult(tx bot.Tx, ref string) (string, bool, error) {
	raw, err := tx.Get(BucketResults, ref)
	if errors.Is(err, bot.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return string(raw), true, nil
}
