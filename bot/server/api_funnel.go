package server

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
)

// The funnel, channel table, tag/level lists and check-in report are all
// counted from one pass over the members (and the check-in days). For a
// million members that pass takes seconds, so it is not done per request:
// aggregateCache keeps the last result and, once it is older than the TTL,
// answers with it while one background pass refreshes it (stale while
// revalidate). Only the very first request waits for a pass, and a pass
// that takes long (a million members: seconds) stretches the refresh
// interval to ten times its duration. Counting
// incrementally in the engine's transactions would be exact to the event,
// but would put a hot counter key in every member's write; a dashboard is
// fine being FunnelTTL behind.

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

// computeAggregate makes the pass over the store.
func (s *Server) computeAggregate(ctx context.Context) (*aggregate, error) {
	start := s.o.Now()
	zone := time.UTC
	if s.o.Scenario != nil {
		if sc := s.o.Scenario(); sc != nil && sc.Brand.Zone != nil {
			zone = sc.Brand.Zone
		}
	}
	a := &aggregate{Zone: zone, Current: map[bot.Stage]int{}, Reached: map[bot.Stage]int{},
		Channels: map[string]*channelCount{}, Entered: map[string]map[bot.Stage]int{},
		Tags: map[string]int{}, Levels: map[string]int{}, Staff: map[string]int{},
		CheckInsByDay: map[string]int{}, Streaks: map[int]int{}}
	if err := s.eachMember(ctx, func(m *bot.Member) bool { a.add(m); return true }); err != nil {
		return nil, err
	}
	if err := s.o.Store.View(ctx, a.addCheckIns); err != nil {
		return nil, err
	}
	a.ComputedAt = s.o.Now()
	a.Took = a.ComputedAt.Sub(start)
	return a, nil
}

func (a *aggregate) add(m *bot.Member) {
	a.Members++
	if m.Lost {
		a.Lost++
	}
	reached := m.Stage
	for _, c := range m.StageHistory {
		if c.To.Rank() > reached.Rank() {
			reached = c.To
		}
		week := weekStart(c.At, a.Zone)
		if a.Entered[week] == nil {
			a.Entered[week] = map[bot.Stage]int{}
		}
		a.Entered[week][c.To]++
	}
	a.Current[m.Stage]++
	ch := a.Channels[m.Channel]
	if ch == nil {
		ch = &channelCount{State: m.State, Current: map[bot.Stage]int{}, Reached: map[bot.Stage]int{}}
		a.Channels[m.Channel] = ch
	}
	ch.Members++
	ch.Current[m.Stage]++
	for _, st := range bot.Stages {
		if reached.Rank() >= st.Rank() {
			a.Reached[st]++
			ch.Reached[st]++
		}
	}
	for _, t := range m.Tags {
		a.Tags[t]++
	}
	if m.Level != "" {
		a.Levels[m.Level]++
	}
	if staff := m.PrimaryStaff(); staff != "" {
		a.Staff[staff]++
	}
	if m.CheckIns > 0 {
		a.Leaders = append(a.Leaders, leader{ExternalUserID: m.ExternalUserID, Name: m.Name, CheckIns: m.CheckIns, Points: m.Points, Level: m.Level})
		if len(a.Leaders) > 4*leaderboardSize {
			a.trimLeaders()
		}
	}
}

func (a *aggregate) trimLeaders() {
	sort.SliceStable(a.Leaders, func(i, j int) bool {
		if a.Leaders[i].CheckIns != a.Leaders[j].CheckIns {
			return a.Leaders[i].CheckIns > a.Leaders[j].CheckIns
		}
		return a.Leaders[i].Points > a.Leaders[j].Points
	})
	if len(a.Leaders) > leaderboardSize {
		a.Leaders = a.Leaders[:leaderboardSize]
	}
}

// addCheckIns counts check-in days per day and each member's longest streak.
// Keys come grouped by member, days in order.
func (a *aggregate) addCheckIns(tx bot.Tx) error {
	a.trimLeaders()
	cur, run, best := "", 0, 0
	var prev time.Time
	flush := func() {
		if cur != "" {
			a.Streaks[best]++
		}
	}
	err := engine.ScanCheckInDays(tx, func(member, day string) bool {
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
	flush()
	return err
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
	a, err := s.agg.get(r.Context(), fresh != nil && *fresh)
	if err != nil {
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
			Stages: s.stagesJSON(ch.Current, ch.Reached), PurchaseRate: ratio(ch.Reached[bot.StagePurchase], ch.Members)})
	}
	sort.Slice(channels, func(i, j int) bool {
		if channels[i].Members != channels[j].Members {
			return channels[i].Members > channels[j].Members
		}
		return channels[i].Channel < channels[j].Channel
	})
	// The last `weeks` weeks, oldest first, ending with the current one.
	now := s.o.Now()
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
