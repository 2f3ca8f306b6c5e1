package checkin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

func openStore(t testing.TB) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var shanghai = func() *time.Location {
	l, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return time.FixedZone("CST", 8*3600)
	}
	return l
}()

// record gives member a check-in on day with points, as the engine does.
func record(t testing.TB, tx bot.Tx, campaign, member string, day checkin.Day, points int64) {
	t.Helper()
	p, err := checkin.LoadProgress(tx, campaign, member)
	if err != nil {
		t.Fatal(err)
	}
	isNew := p == nil
	if isNew {
		p = &checkin.Progress{Campaign: campaign, Member: member}
	}
	old := p.Score
	if err := checkin.Record(tx, p, day, time.Unix(int64(day)*86400, 0), false, "ref"); err != nil {
		t.Fatal(err)
	}
	p.Score += points
	if err := checkin.SaveProgress(tx, p, old, isNew); err != nil {
		t.Fatal(err)
	}
}

func TestDayOfShanghaiMidnight(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{time.Date(2025, 3, 3, 15, 59, 59, 0, time.UTC), "2025-03-03"}, // 23:59:59 in Shanghai
		{time.Date(2025, 3, 3, 16, 0, 0, 0, time.UTC), "2025-03-04"},   // 00:00 in Shanghai, still 03-03 in UTC
		{time.Date(2025, 12, 31, 16, 0, 0, 0, time.UTC), "2026-01-01"},
	} {
		if got := checkin.DayOf(tc.at, shanghai).String(); got != tc.want {
			t.Errorf("DayOf(%s) = %s, want %s", tc.at, got, tc.want)
		}
	}
	d := checkin.DayOf(time.Date(2025, 3, 3, 12, 0, 0, 0, shanghai), shanghai)
	if m := d.Midnight(shanghai); !m.Equal(time.Date(2025, 3, 3, 0, 0, 0, 0, shanghai)) {
		t.Errorf("Midnight %s", m)
	}
	if p, ok := checkin.ParseDay("2025-03-03"); !ok || p != d {
		t.Errorf("ParseDay %v %v", p, ok)
	}
}

func TestStreaks(t *testing.T) {
	t.Parallel()
	base, _ := checkin.ParseDay("2025-03-01")
	st := openStore(t)
	_ = st.Update(context.Background(), func(tx bot.Tx) error {
		for _, off := range []int{0, 1, 2, 4, 5} {
			record(t, tx, "c", "m", base+checkin.Day(off), 10)
		}
		p, _ := checkin.LoadProgress(tx, "c", "m")
		for _, tc := range []struct {
			today       int
			streak, run int
		}{
			{2, 3, 3}, // run 0-2
			{3, 3, 0}, // today (3) open: yesterday's run of 3 still counts
			{4, 1, 1}, // broken at 3
			{5, 2, 2},
			{7, 0, 0}, // missed 6
		} {
			today := base + checkin.Day(tc.today)
			if s := p.Streak(today); s != tc.streak {
				t.Errorf("Streak(day %d) = %d, want %d", tc.today, s, tc.streak)
			}
			if s := p.StreakAt(today); s != tc.run {
				t.Errorf("StreakAt(day %d) = %d, want %d", tc.today, s, tc.run)
			}
		}
		if p.LongestStreak() != 3 || p.Count() != 5 || p.First != base {
			t.Errorf("progress %+v", p)
		}
		if err := checkin.Record(tx, p, base, time.Now(), false, ""); err != checkin.ErrDayTaken {
			t.Errorf("second record of a day: %v", err)
		}
		return nil
	})
}

func TestLeaderboardTopAndRank(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	base, _ := checkin.ParseDay("2025-03-01")
	scores := map[string]int64{"a": 30, "b": 50, "c": 30, "d": 10, "e": 50, "f": 70}
	err := st.Update(ctx, func(tx bot.Tx) error {
		for m, s := range scores {
			record(t, tx, "c1", m, base, s)
		}
		record(t, tx, "c2", "z", base, 999) // another campaign stays apart
		// Move d up past a and c: its old entry must go.
		record(t, tx, "c1", "d", base+1, 30)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = st.View(ctx, func(tx bot.Tx) error {
		top, err := checkin.Top(tx, "c1", 10)
		if err != nil {
			t.Fatal(err)
		}
		want := "1 f 70,2 b 50,2 e 50,4 d 40,5 a 30,5 c 30"
		got := ""
		for i, s := range top {
			if i > 0 {
				got += ","
			}
			got += fmt.Sprintf("%d %s %d", s.Rank, s.Member, s.Score)
		}
		if got != want {
			t.Errorf("top = %s, want %s", got, want)
		}
		if top3, _ := checkin.Top(tx, "c1", 3); len(top3) != 3 {
			t.Errorf("top 3 = %v", top3)
		}
		for m, want := range map[string]int{"f": 1, "b": 2, "e": 2, "d": 4, "a": 5, "c": 5} {
			rank, _, ok, err := checkin.Rank(tx, "c1", m)
			if err != nil || !ok || rank != want {
				t.Errorf("Rank(%s) = %d %v %v, want %d", m, rank, ok, err, want)
			}
		}
		if _, _, ok, _ := checkin.Rank(tx, "c1", "nobody"); ok {
			t.Error("rank for a member who never checked in")
		}
		parts, perDay, err := checkin.Participation(tx, "c1")
		if err != nil || parts != 6 || len(perDay) != 2 || perDay[0].CheckIns != 6 || perDay[1].CheckIns != 1 {
			t.Errorf("participation %d %+v %v", parts, perDay, err)
		}
		days, _ := checkin.MemberDays(tx, "d")
		if len(days) != 2 {
			t.Errorf("member days %v", days)
		}
		return nil
	})
}

func TestPointsLedgerAppendOnly(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	at := time.Date(2025, 3, 3, 7, 0, 0, 0, shanghai)
	_ = st.Update(context.Background(), func(tx bot.Tx) error {
		bal := int64(0)
		for _, d := range []int64{10, 20, -5, 30} {
			e, err := checkin.AddPoints(tx, "m", bal, d, "checkin", "c", "ref", at)
			if err != nil {
				t.Fatal(err)
			}
			bal = e.Balance
		}
		hist, err := checkin.PointsHistory(tx, "m", 0, 10)
		if err != nil || len(hist) != 4 || hist[3].Balance != 55 || hist[2].Delta != -5 || hist[0].N != 1 {
			t.Errorf("history %+v %v", hist, err)
		}
		if later, _ := checkin.PointsHistory(tx, "m", 2, 10); len(later) != 2 || later[0].N != 3 {
			t.Errorf("after 2: %+v", later)
		}
		return nil
	})
}

func TestAttemptAndMakeup(t *testing.T) {
	t.Parallel()
	sc, err := scenarios.LoadBytes("c.yaml", []byte(`brand: {name: t}
campaigns:
  - {name: c, start: 2025-03-03, end: 2025-03-05, windows: ["06:00-09:00", "20:00-21:00"], keywords: [打卡],
     makeup: {max: 2, within_days: 2, cost_points: 1}}
`))
	if err != nil {
		t.Fatal(err)
	}
	c := sc.Campaign("c")
	at := func(s string) time.Time {
		v, _ := time.ParseInLocation("2006-01-02 15:04", s, shanghai)
		return v
	}
	d3, _ := checkin.ParseDay("2025-03-03")
	p := &checkin.Progress{Campaign: "c", Member: "m", First: d3, Days: []checkin.Day{d3}}
	for _, tc := range []struct {
		at     string
		makeup bool
		closed bool
		want   checkin.Outcome
		day    string
	}{
		{"2025-03-02 07:00", false, false, checkin.NotStarted, ""},
		{"2025-03-03 07:00", false, false, checkin.Already, ""},
		{"2025-03-04 05:59", false, false, checkin.OutsideWindow, ""},
		{"2025-03-04 20:30", false, false, checkin.CheckedIn, "2025-03-04"}, // the second window
		{"2025-03-04 21:00", false, false, checkin.OutsideWindow, ""},
		{"2025-03-04 07:00", false, true, checkin.Closed, ""},
		{"2025-03-06 07:00", false, false, checkin.Closed, ""},
		{"2025-03-05 12:00", true, false, checkin.MadeUp, "2025-03-04"},
		{"2025-03-06 12:00", true, false, checkin.MadeUp, "2025-03-05"}, // the day after the end may make up the last day
		{"2025-03-07 12:00", true, false, checkin.Closed, ""},
		{"2025-03-04 12:00", true, false, checkin.MakeupUnavailable, ""}, // yesterday is checked in, the start bounds within_days
	} {
		var o checkin.Outcome
		var d checkin.Day
		if tc.makeup {
			o, d = checkin.AttemptMakeup(c, p, at(tc.at), tc.closed)
		} else {
			o, d = checkin.Attempt(c, p, at(tc.at), tc.closed)
		}
		if o != tc.want || (tc.day != "" && d.String() != tc.day) {
			t.Errorf("%s makeup=%v closed=%v: %s %s, want %s %s", tc.at, tc.makeup, tc.closed, o, d, tc.want, tc.day)
		}
	}
}

func TestCertificatePNG(t *testing.T) {
	t.Parallel()
	c := &checkin.Certificate{Title: "山茶集 · 早安打卡证书", Name: "小艾", Campaign: "早安打卡", Days: 7,
		Text: "小艾 连续 7 天早起打卡。", Date: "2025-03-09", Brand: "山茶集"}
	a, err := c.PNG()
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(a))
	if err != nil || img.Bounds().Dx() != 900 {
		t.Fatalf("%v %v", img, err)
	}
	// The member's Chinese name is drawn (the embedded font has it).
	c.Name = ""
	b, _ := c.PNG()
	if bytes.Equal(a, b) {
		t.Error("the name made no difference to the image")
	}
}

func TestTicksAndDedupeKeys(t *testing.T) {
	t.Parallel()
	sc, err := scenarios.LoadBytes("c.yaml", []byte(`brand: {name: t, zone: Asia/Shanghai}
campaigns:
  - name: c
    days: 7
    windows: ["06:00-09:00"]
    keywords: [打卡]
    reminders:
      - {cron: "55 5 * * *", to: robot, robot: ops, text: open}
      - {cron: "0 */12 * * *", to: robot, robot: ops, text: twice}
`))
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2025, 3, 2, 22, 0, 0, 0, shanghai)
	ticks := checkin.Ticks(sc, from, from.Add(24*time.Hour))
	var got []string
	for _, tk := range ticks {
		got = append(got, fmt.Sprintf("%d@%s", tk.Reminder, tk.Slot.In(shanghai).Format("01-02 15:04")))
	}
	if fmt.Sprint(got) != "[1@03-03 00:00 0@03-03 05:55 1@03-03 12:00]" {
		t.Errorf("ticks %v", got)
	}
	ev := ticks[1].Event(from)
	back, err := checkin.ParseTick(ev)
	if err != nil || back.DedupeKey() != ticks[1].DedupeKey() || ev.DedupeKey != "sched|c|0|"+fmt.Sprint(ticks[1].Slot.Unix()) {
		t.Errorf("tick round trip %+v %v (%s)", back, err, ev.DedupeKey)
	}
}

// appendLog records appends with the event log's dedupe.
type appendLog struct {
	mu   sync.Mutex
	keys map[string]int
}

func (a *appendLog) AppendEvent(_ context.Context, ev *bot.Event) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keys[ev.DedupeKey]++
	return a.keys[ev.DedupeKey] > 1, nil
}

// TestSchedulerCatchUpAndReload: a restart inside the catch-up window
// re-appends the last slot (the log drops it as a duplicate), and a reload
// rebuilds from the new scenario.
func TestSchedulerCatchUpAndReload(t *testing.T) {
	t.Parallel()
	load := func(spec string) *scenarios.Scenario {
		sc, err := scenarios.LoadBytes("c.yaml", []byte(`brand: {name: t, zone: Asia/Shanghai}
campaigns:
  - {name: c, days: 7, windows: ["06:00-09:00"], keywords: [打卡], reminders: [{cron: "`+spec+`", to: robot, robot: ops, text: hi}]}
`))
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	now := time.Date(2025, 3, 3, 6, 0, 0, 0, shanghai) // 5 minutes after 05:55
	log := &appendLog{keys: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 { // two starts: the second's catch-up is a duplicate
		s := checkin.NewScheduler(checkin.SchedulerOptions{Events: log, Now: func() time.Time { return now }, Zone: shanghai})
		s.Load(ctx, load("55 5 * * *"))
		s.Load(ctx, load("55 5 * * *")) // an equal scenario is a new pointer: rebuilt, still one append per slot
		s.Stop()
	}
	key := "sched|c|0|" + fmt.Sprint(time.Date(2025, 3, 3, 5, 55, 0, 0, shanghai).Unix())
	if len(log.keys) != 1 || log.keys[key] != 4 {
		t.Errorf("appends %v", log.keys)
	}
	// Outside the catch-up window nothing is appended.
	log2 := &appendLog{keys: map[string]int{}}
	s := checkin.NewScheduler(checkin.SchedulerOptions{Events: log2, Now: func() time.Time { return now.Add(time.Hour) }, Zone: shanghai})
	s.Load(ctx, load("55 5 * * *"))
	s.Stop()
	if len(log2.keys) != 0 {
		t.Errorf("appends %v", log2.keys)
	}
}

var benchMembers = flag.Int("checkin.members", 1_000_000, "members in the leaderboard benchmark")

var (
	benchOnce  sync.Once
	benchStore *bolt.Store
	benchLoad  time.Duration
)

// loadBoard records one check-in for each of -checkin.members members (in
// transactions of 10,000, as group-committed events would be), with scores
// spread over 100 values as a real campaign's are.
func loadBoard(b *testing.B) *bolt.Store {
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "checkin-bench-")
		if err != nil {
			b.Fatal(err)
		}
		st, err := bolt.Open(filepath.Join(dir, "board.db"), bolt.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close(); os.RemoveAll(dir) })
		day, _ := checkin.ParseDay("2025-03-03")
		r := rand.New(rand.NewPCG(1, 2))
		start := time.Now()
		const batch = 10_000
		for i := 0; i < *benchMembers; i += batch {
			err := st.Update(context.Background(), func(tx bot.Tx) error {
				for j := i; j < min(i+batch, *benchMembers); j++ {
					record(b, tx, "早安打卡", fmt.Sprintf("wm%07d", j), day, int64(10*(1+r.IntN(100))))
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		benchLoad = time.Since(start)
		benchStore = st
	})
	return benchStore
}

// BenchmarkLeaderboard1M: go test ./bot/checkin -run x -bench Leaderboard -benchtime 200x
func BenchmarkLeaderboard1M(b *testing.B) {
	st := loadBoard(b)
	ctx := context.Background()
	b.Run("load", func(b *testing.B) {
		b.ReportMetric(float64(*benchMembers)/benchLoad.Seconds(), "checkins/s")
		b.ReportMetric(benchLoad.Seconds(), "load-s")
	})
	b.Run("top100", func(b *testing.B) {
		for b.Loop() {
			_ = st.View(ctx, func(tx bot.Tx) error {
				top, err := checkin.Top(tx, "早安打卡", 100)
				if err != nil || len(top) != 100 {
					b.Fatalf("%d %v", len(top), err)
				}
				return nil
			})
		}
	})
	b.Run("rank", func(b *testing.B) {
		r := rand.New(rand.NewPCG(3, 4))
		for b.Loop() {
			m := fmt.Sprintf("wm%07d", r.IntN(*benchMembers))
			_ = st.View(ctx, func(tx bot.Tx) error {
				rank, _, ok, err := checkin.Rank(tx, "早安打卡", m)
				if err != nil || !ok || rank < 1 {
					b.Fatalf("%d %v %v", rank, ok, err)
				}
				return nil
			})
		}
	})
	b.Run("checkin", func(b *testing.B) {
		// One more check-in (day 2) for random members, one transaction each
		// (no fsync): the ledger's share of handling a check-in event at 1M.
		day, _ := checkin.ParseDay("2025-03-04")
		r := rand.New(rand.NewPCG(5, 6))
		for b.Loop() {
			m := fmt.Sprintf("wm%07d", r.IntN(*benchMembers))
			_ = st.Update(ctx, func(tx bot.Tx) error {
				p, err := checkin.LoadProgress(tx, "早安打卡", m)
				if err != nil || p == nil {
					b.Fatal(err)
				}
				if p.Has(day) {
					return nil
				}
				old := p.Score
				if err := checkin.Record(tx, p, day, time.Now(), false, "bench"); err != nil {
					return err
				}
				p.Score += 10
				return checkin.SaveProgress(tx, p, old, false)
			})
		}
	})
}

// TestEachKfSinceReadsTheWindow: reminders read the members whose last kf
// message is inside the window (by day), each once, in member order; a
// member writing again moves to her new day; contacts noted before the
// day index existed are backfilled on the first read.
func TestEachKfSinceReadsTheWindow(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	err := st.Update(ctx, func(tx bot.Tx) error {
		// Written as before the index: kf_contacts only.
		legacy, _ := json.Marshal(checkin.KfContact{OpenKfID: "wk", At: now.Add(-time.Hour)})
		if err := tx.Put(checkin.BucketKf, "wm_legacy", legacy); err != nil {
			return err
		}
		for id, at := range map[string]time.Time{"wm_old": now.Add(-72 * time.Hour), "wm_b": now.Add(-47 * time.Hour), "wm_a": now.Add(-30 * time.Hour)} {
			if err := checkin.NoteKf(tx, id, "wk", at); err != nil {
				return err
			}
		}
		// wm_old writes again today: she moves into the window, once.
		return checkin.NoteKf(tx, "wm_old", "wk", now.Add(-time.Minute))
	})
	if err != nil {
		t.Fatal(err)
	}
	read := func() []string {
		var got []string
		if err := st.Update(ctx, func(tx bot.Tx) error {
			return checkin.EachKfSince(tx, now.Add(-checkin.KfWindow), now, func(m string, _ checkin.KfContact) bool {
				got = append(got, m)
				return true
			})
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := []string{"wm_a", "wm_b", "wm_legacy", "wm_old"}
	if got := read(); !slices.Equal(got, want) {
		t.Errorf("in the window: %v, want %v", got, want)
	}
	if got := read(); !slices.Equal(got, want) {
		t.Errorf("second read: %v, want %v", got, want)
	}
	// wm_old's old day key is gone: only today's remains.
	_ = st.View(ctx, func(tx bot.Tx) error {
		var keys []string
		_ = tx.Scan(checkin.BucketKfRecent, "", func(k string, _ []byte) bool { keys = append(keys, k); return true })
		for _, k := range keys {
			if strings.HasSuffix(k, "|wm_old") && !strings.HasPrefix(k, "2026-12-01") {
				t.Errorf("stale day key %q", k)
			}
		}
		return nil
	})
}
