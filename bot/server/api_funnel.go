package server

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
)

// The funnel, channel table and tag/level/staff lists are read from the
// member tallies the store keeps in each member's write transaction
// (bot.MemberTallies): exact to the last applied event and, for a million
// members, a few hundred keys instead of a pass over every member. The
// check-in report (per-day counts and streaks over the check-in days)
// still needs a pass over the days, so it is cached: aggregateCache keeps
// the last result and, once it is older than the TTL, answers with it
// while one background pass refreshes it (stale while revalidate). Only the
// very first request waits for a pass, and a pass that takes long stretches
// the refresh interval to ten times its duration.

// aggregate is what one pass over the members counts.
type aggregate struct {
	ComputedAt time.Time
	Took       time.Duration
	Zone       *time.Location
	Members    int
	Lost       int
	// Current counts members by their stage now; Reached by the furthest
	// stage they ever reached (a refund may have moved them back).
	Current map[bot.Stage]int
	Reached map[bot.Stage]int
	// Channels by channel name ("" for members without one).
	Channels map[string]*channelCount
	// Entered counts moves into each stage by the Monday (in Zone) of the week they happened.
	Entered map[string]map[bot.Stage]int
	Tags    map[string]int
	Levels  map[string]int
	Staff   map[string]int
	// CheckIns: members with at least one counted day by day, and streak
	// lengths (the member's longest run of consecutive days).
	CheckInsByDay map[string]int
	Streaks       map[int]int
	// Leaders are the members with the most check-in days.
	Leaders []leader
}

type channelCount struct {
	State   string
	Members int
	// Lost counts the channel's members lost (deleted every staff member)
	// since the weekly counters began.
	Lost    int
	Current map[bot.Stage]int
	Reached map[bot.Stage]int
}

type leader struct {
	ExternalUserID string `json:"external_user_id"`
	Name           string `json:"name"`
	CheckIns       int    `json:"check_ins"`
	Points         int64  `json:"points"`
	Level          string `json:"level,omitempty"`
}

const leaderboardSize = 20

// aggregateChunk is how many members one read transaction of a pass reads.
var aggregateChunk = 5000

// eachMember calls fn for every member, outside any transaction: members are
// read in many short read transactions of aggregateChunk each, not one long
// one, because bbolt can't grow its memory map while a read transaction is
// open — a pass over a million members (or a CSV export to a slow client)
// in one transaction could stall callback appends for its whole length.
// Chunks resume after the last member seen; fn returning false stops.
func (s *Server) eachMember(ctx context.Context, fn func(*bot.Member) bool) error {
	after := ""
	chunk := make([]*bot.Member, 0, aggregateChunk)
	for {
		chunk = chunk[:0]
		err := s.o.Store.View(ctx, func(tx bot.Tx) error {
			return tx.Members(after, func(m *bot.Member) bool {
				chunk = append(chunk, m)
				return len(chunk) < aggregateChunk
			})
		})
		if err != nil {
			return err
		}
		for _, m := range chunk {
			if !fn(m) {
				return nil
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(chunk) < aggregateChunk {
			return nil
		}
		after = chunk[len(chunk)-1].ExternalUserID
	}
}

// computeAggregate makes the check-in pass: the leaderboard from the
// member index, the per-day counts and streaks from the check-in days.
func (s *Server) computeAggregate(ctx context.Context) (*aggregate, error) {
	start := s.o.Now()
	a := &aggregate{Zone: s.brandZone(), CheckInsByDay: map[string]int{}, Streaks: map[int]int{}}
	if err := s.o.Store.View(ctx, a.addLeaders); err != nil {
		return nil, err
	}
	if err := a.addCheckIns(ctx, s.o.Store); err != nil {
		return nil, err
	}
	a.ComputedAt = s.o.Now()
	a.Took = a.ComputedAt.Sub(start)
	return a, nil
}

// addLeaders reads the members with the most check-ins (then points) from
// the index's leaders terms.
func (a *aggregate) addLeaders(tx bot.Tx) error {
	var ids []string
	if err := tx.ScanTerms(bot.TermLeaders+bot.IndexSep, func(_, member string) bool {
		ids = append(ids, member)
		return len(ids) < leaderboardSize
	}); err != nil {
		return err
	}
	for _, id := range ids {
		m, err := tx.Member(id)
		if errors.Is(err, bot.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		a.Leaders = append(a.Leaders, leader{ExternalUserID: m.ExternalUserID, Name: m.Name, CheckIns: m.CheckIns, Points: m.Points, Level: m.Level})
	}
	return nil
}

// computeFunnel reads the member tallies: stage counts, channels, tags,
// levels, staff, and the moves into each stage for the weeks (in zone)
// from since on.
func (s *Server) computeFunnel(ctx context.Context, since time.Time) (*aggregate, error) {
	start := s.o.Now()
	a := &aggregate{Zone: s.brandZone(), Current: map[bot.Stage]int{}, Reached: map[bot.Stage]int{},
		Channels: map[string]*channelCount{}, Entered: map[string]map[bot.Stage]int{},
		Tags: map[string]int{}, Levels: map[string]int{}, Staff: map[string]int{}}
	states := map[string]int{} // channel ‖ state → members: the channel's most common state is shown
	channel := func(name string) *channelCount {
		ch := a.Channels[name]
		if ch == nil {
			ch = &channelCount{Current: map[bot.Stage]int{}, Reached: map[bot.Stage]int{}}
			a.Channels[name] = ch
		}
		return ch
	}
	err := s.o.Store.View(ctx, func(tx bot.Tx) error {
		count := func(key string, n int64) bool {
			f := strings.Split(key, bot.IndexSep)
			c := int(n)
			switch {
			case len(f) == 1 && f[0] == bot.TallyMembers:
				a.Members = c
			case len(f) == 1 && f[0] == bot.TallyLost:
				a.Lost = c
			case len(f) == 2 && f[0] == bot.TallyCurrent:
				a.Current[bot.Stage(f[1])] = c
			case len(f) == 2 && f[0] == bot.TallyReached:
				a.Reached[bot.Stage(f[1])] = c
			case len(f) == 2 && f[0] == bot.TallyChannel:
				channel(f[1]).Members = c
			case len(f) == 3 && f[0] == bot.TallyChannelState:
				ch := channel(f[1])
				if c > states[f[1]] {
					states[f[1]], ch.State = c, f[2]
				}
			case len(f) == 3 && f[0] == bot.TallyChannelCurrent:
				channel(f[1]).Current[bot.Stage(f[2])] = c
			case len(f) == 3 && f[0] == bot.TallyChannelReached:
				channel(f[1]).Reached[bot.Stage(f[2])] = c
			case len(f) == 2 && f[0] == bot.TallyTag:
				a.Tags[f[1]] = c
			case len(f) == 2 && f[0] == bot.TallyLevel:
				a.Levels[f[1]] = c
			case len(f) == 2 && f[0] == bot.TallyStaff:
				a.Staff[f[1]] = c
			}
			return true
		}
		// Every tally but the entered ones, which are read by month below,
		// only for the weeks shown.
		for _, prefix := range []string{bot.TallyMembers, bot.TallyLost, bot.TallyCurrent, bot.TallyReached, bot.TallyChannel,
			bot.TallyTag, bot.TallyLevel, bot.TallyStaff} {
			if err := tx.Tallies(prefix, count); err != nil {
				return err
			}
		}
		// Hours are UTC; a week starts on Monday in the brand zone, up to a
		// day apart: read the UTC months from a day before since.
		for m := time.Date(since.Year(), since.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0); !m.After(start); m = m.AddDate(0, 1, 0) {
			prefix := bot.IndexKey(bot.TallyEntered, m.Format("200601"))
			if err := tx.Tallies(prefix, func(key string, n int64) bool {
				f := strings.Split(key, bot.IndexSep)
				if len(f) != 3 {
					return true
				}
				at, err := time.Parse("2006010215", f[1])
				if err != nil {
					return true
				}
				week := weekStart(at, a.Zone)
				if a.Entered[week] == nil {
					a.Entered[week] = map[bot.Stage]int{}
				}
				a.Entered[week][bot.Stage(f[2])] += int(n)
				return true
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.ComputedAt = s.o.Now()
	a.Took = a.ComputedAt.Sub(start)
	return a, nil
}

// checkInPage is how many member-day keys one read transaction of the
// check-in report scans (a variable so tests can shrink it).
var checkInPage = 20000

// addCheckIns counts check-in days per day and each member's longest
// streak, in read transactions of checkInPage keys (a million members'
// days are never one long transaction). Keys come grouped by member, days
// in order; a member whose days span two pages carries over.
func (a *aggregate) addCheckIns(ctx context.Context, st bot.Store) error {
	cur, run, best := "", 0, 0
	var prev time.Time
	flush := func() {
		if cur != "" {
			a.Streaks[best]++
		}
	}
	after := ""
	for more := true; more; {
		err := st.View(ctx, func(tx bot.Tx) error {
			var err error
			after, more, err = engine.ScanCheckInDays(tx, after, checkInPage, func(member, day string) bool {
				a.CheckInsByDay[day]++
				d, err := time.Parse(time.DateOnly, day)
				if err != nil {
					return true
				}
				if member != cur {
					flush()
					cur, run, best = member, 0, 0
				}
				if run > 0 && d.Sub(prev) == 24*time.Hour {
					run++
				} else {
					run = 1
				}
				best = max(best, run)
				prev = d
				return true
			})
			return err
		})
		if err != nil {
			return err
		}
	}
	flush()
	return nil
}

// weekStart is the Monday (yyyy-mm-dd, in zone) of t's week.
func weekStart(t time.Time, zone *time.Location) string {
	t = t.In(zone)
	wd := (int(t.Weekday()) + 6) % 7 // Monday = 0
	return t.AddDate(0, 0, -wd).Format(time.DateOnly)
}

// aggregateCache serves the last aggregate, refreshing it in the background
// once it is older than ttl; see the comment at the top of this file.
type aggregateCache struct {
	ttl     time.Duration
	now     func() time.Time
	compute func(context.Context) (*aggregate, error)

	computing sync.Mutex // one pass at a time
	mu        sync.Mutex // guards cur and refreshing
	cur       *aggregate
	refresh   bool
}

func newAggregateCache(ttl time.Duration, now func() time.Time, compute func(context.Context) (*aggregate, error)) *aggregateCache {
	return &aggregateCache{ttl: ttl, now: now, compute: compute}
}

// get returns the cached aggregate, computing it when there is none (or
// when fresh is set) and refreshing a stale one in the background.
func (c *aggregateCache) get(ctx context.Context, fresh bool) (*aggregate, error) {
	c.mu.Lock()
	cur := c.cur
	if cur != nil && !fresh {
		if c.now().Sub(cur.ComputedAt) >= c.maxAge(cur) && !c.refresh {
			c.refresh = true
			go c.background()
		}
		c.mu.Unlock()
		return cur, nil
	}
	c.mu.Unlock()
	return c.run(ctx, cur)
}

// maxAge is how long a result is served before a refresh: the TTL, or ten
// times what the last pass took when that is longer, so refreshing a very
// large community uses at most a tenth of a core.
func (c *aggregateCache) maxAge(a *aggregate) time.Duration {
	return max(c.ttl, 10*a.Took)
}

func (c *aggregateCache) background() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, _ = c.run(ctx, nil)
	c.mu.Lock()
	c.refresh = false
	c.mu.Unlock()
}

// run computes a new aggregate unless another pass finished after seen
// while this one waited for the lock.
func (c *aggregateCache) run(ctx context.Context, seen *aggregate) (*aggregate, error) {
	c.computing.Lock()
	defer c.computing.Unlock()
	c.mu.Lock()
	if c.cur != nil && c.cur != seen && c.now().Sub(c.cur.ComputedAt) < c.maxAge(c.cur) {
		cur := c.cur
		c.mu.Unlock()
		return cur, nil
	}
	c.mu.Unlock()
	a, err := c.compute(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.cur = a
	c.mu.Unlock()
	return a, nil
}

// WarmConsole makes the console's first pass over the members; serve runs
// it in the background (joined on shutdown), so that on a large community
// the first overview after a restart does not wait for it. Cancelling ctx
// (shutdown) stops the pass.
func (s *Server) WarmConsole(ctx context.Context) {
	if _, err := s.agg.get(ctx, false); err != nil && ctx.Err() == nil {
		s.log.Warn().Err(err).Msg("console: first funnel pass failed; the first request will retry")
	}
}

// invalidate makes the next get compute synchronously (after sandbox events,
// so a newcomer sees the journey at once).
func (c *aggregateCache) invalidate() {
	c.mu.Lock()
	c.cur = nil
	c.mu.Unlock()
}

// stageJSON is one stage of the funnel.
type stageJSON struct {
	Stage   bot.Stage `json:"stage"`
	Name    string    `json:"name"`
	Current int       `json:"current"`
	Reached int       `json:"reached"`
	// Conversion is Reached / the previous stage's Reached (0 for the first stage or none reached).
	Conversion float64 `json:"conversion"`
}

func (s *Server) stageName(st bot.Stage) string {
	if s.o.Scenario != nil {
		if sc := s.o.Scenario(); sc != nil {
			if n := sc.Funnel.StageName(st); n != "" {
				return n
			}
		}
	}
	return string(st)
}

func (s *Server) stagesJSON(current, reached map[bot.Stage]int) []stageJSON {
	out := make([]stageJSON, 0, len(bot.Stages))
	for i, st := range bot.Stages {
		sj := stageJSON{Stage: st, Name: s.stageName(st), Current: current[st], Reached: reached[st]}
		if i > 0 && reached[bot.Stages[i-1]] > 0 {
			sj.Conversion = ratio(reached[st], reached[bot.Stages[i-1]])
		}
		out = append(out, sj)
	}
	return out
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(int(float64(a)/float64(b)*10000+0.5)) / 10000
}

type conversionJSON struct {
	From bot.Stage `json:"from"`
	To   bot.Stage `json:"to"`
	Rate float64   `json:"rate"`
}

type channelJSON struct {
	Channel string `json:"channel"`
	State   string `json:"state,omitempty"`
	// Kind is "group" for a group QR code channel (加入群聊), "contact" for a contact me code.
	Kind    string      `json:"kind,omitempty"`
	Members int         `json:"members"`
	Stages  []stageJSON `json:"stages"`
	// PurchaseRate is the share of the channel's members who ever purchased.
	PurchaseRate float64 `json:"purchase_rate"`
	// Lost counts its members who deleted every staff member; LostRate their share.
	Lost     int     `json:"lost"`
	LostRate float64 `json:"lost_rate"`
}

type weekJSON struct {
	Week    string            `json:"week"`
	Entered map[bot.Stage]int `json:"entered"`
}

// apiFunnel answers GET /api/v1/funnel: counts per stage, conversion between
// stages, by channel and by week.
func (s *Server) apiFunnel(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "weeks", "channel", "fresh")
	weeks := q.int("weeks", 12, 1, 104)
	channel := q.str("channel", 128)
	fresh := q.boolean("fresh")
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	_ = fresh // accepted for old clients: the counts are always current
	now := s.o.Now()
	a, err := s.computeFunnel(r.Context(), now.AddDate(0, 0, -7*weeks))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Lost per channel: the engine's weekly counters (losses counted since
	// the version that keeps them), a short prefix scan.
	if err := s.o.Store.View(r.Context(), func(tx bot.Tx) error {
		rows, err := engine.Weekly(tx, "", engine.WeekOf(now, a.Zone))
		for _, row := range rows {
			if ch := a.Channels[row.Channel]; ch != nil {
				ch.Lost += row.Lost
			}
		}
		return err
	}); err != nil {
		s.fail(w, r, err)
		return
	}
	current, reached, members := a.Current, a.Reached, a.Members
	if channel != "" {
		ch := a.Channels[channel]
		if ch == nil {
			s.fail(w, r, badParam("channel", "names no channel with members (%q)", channel))
			return
		}
		current, reached, members = ch.Current, ch.Reached, ch.Members
	}
	stages := s.stagesJSON(current, reached)
	conv := make([]conversionJSON, 0, len(stages)-1)
	for i := 1; i < len(stages); i++ {
		conv = append(conv, conversionJSON{From: stages[i-1].Stage, To: stages[i].Stage, Rate: stages[i].Conversion})
	}
	channels := make([]channelJSON, 0, len(a.Channels))
	for name, ch := range a.Channels {
		kind := ""
		if name != "" && s.o.Scenario != nil {
			kind = channelKind(s.o.Scenario().ChannelByName(name))
		}
		channels = append(channels, channelJSON{Channel: name, State: ch.State, Kind: kind, Members: ch.Members,
			Stages: s.stagesJSON(ch.Current, ch.Reached), PurchaseRate: ratio(ch.Reached[bot.StagePurchase], ch.Members),
			Lost: ch.Lost, LostRate: ratio(ch.Lost, ch.Members)})
	}
	sort.Slice(channels, func(i, j int) bool {
		if channels[i].Members != channels[j].Members {
			return channels[i].Members > channels[j].Members
		}
		return channels[i].Channel < channels[j].Channel
	})
	// The last `weeks` weeks, oldest first, ending with the current one.
	byWeek := make([]weekJSON, 0, weeks)
	for i := weeks - 1; i >= 0; i-- {
		wk := weekStart(now.AddDate(0, 0, -7*i), a.Zone)
		entered := map[bot.Stage]int{}
		for _, st := range bot.Stages {
			entered[st] = a.Entered[wk][st]
		}
		byWeek = append(byWeek, weekJSON{Week: wk, Entered: entered})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"computed_at": a.ComputedAt,
		"compute_ms":  a.Took.Milliseconds(),
		"ttl_seconds": int(s.o.FunnelTTL.Seconds()),
		"members":     members,
		"lost":        a.Lost,
		"no_stage":    current[bot.StageNone],
		"stages":      stages,
		"conversions": conv,
		"channels":    channels,
		"weeks":       byWeek,
		"zone":        a.Zone.String(),
		"channel":     channel,
		"tags":        a.Tags,
		"levels":      a.Levels,
		"staff":       a.Staff,
	})
}
