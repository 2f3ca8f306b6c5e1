package sweep

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

const scenarioYAML = `brand: {name: 测试茶}
tags:
  状态: [沉默]
silent: {days: 14, tag: 沉默}
loss_alerts: {managers: [boss], digest_at: "09:00"}
`

func load(t *testing.T) *scenarios.Scenario {
	sc, err := scenarios.LoadBytes("s.yaml", []byte(scenarioYAML))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestDigestsAndSlots(t *testing.T) {
	sc := load(t)
	sh := sc.Brand.Zone
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, sh)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		from, to string
		want     []string // day covered @ due
	}{
		{"2026-12-01 07:30", "2026-12-01 08:59", nil},
		{"2026-12-01 07:30", "2026-12-01 09:00", []string{"2026-11-30@2026-12-01 09:00"}},
		{"2026-12-01 09:00", "2026-12-02 08:00", nil}, // (from, to]: 09:00 was the last window's
		{"2026-11-29 23:00", "2026-12-02 10:00", []string{"2026-11-29@2026-11-30 09:00", "2026-11-30@2026-12-01 09:00", "2026-12-01@2026-12-02 09:00"}},
	}
	for _, tc := range cases {
		var got []string
		for _, ev := range Digests(sc, at(tc.from), at(tc.to)) {
			got = append(got, ev.Data[bot.DataDay]+"@"+ev.At.In(sh).Format("2006-01-02 15:04"))
			if ev.DedupeKey != "digest|"+ev.Data[bot.DataDay] || ev.Type != bot.EventLossDigest {
				t.Errorf("digest event %+v", ev)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Digests(%s, %s] = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
	if n := len(Slots(at("2026-12-01 07:30"), at("2026-12-01 10:00"))); n != 3 {
		t.Errorf("hourly slots 07:30–10:00: %d, want 3 (08, 09, 10)", n)
	}
}

// recording appends into a real store and records what it got.
type recording struct {
	*bolt.Store
	mu   sync.Mutex
	evs  []*bot.Event
	errs []error
	// calls counts appends, duplicates included.
	calls int
}

func (r *recording) AppendEvent(ctx context.Context, ev *bot.Event) (bool, error) {
	dup, err := r.Store.AppendEvent(ctx, ev)
	r.mu.Lock()
	r.calls++
	if err != nil {
		r.errs = append(r.errs, err)
	}
	if !dup && err == nil {
		r.evs = append(r.evs, ev)
	}
	r.mu.Unlock()
	return dup, err
}

func (r *recording) callCount() int { r.mu.Lock(); defer r.mu.Unlock(); return r.calls }

// The runner sweeps at start: the quiet member's member.silent is appended
// once, and a second runner (another node, a restart) appends nothing new.
func TestRunnerSweepsAtStart(t *testing.T) {
	sc := load(t)
	st, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	err = st.Update(context.Background(), func(tx bot.Tx) error {
		if err := tx.PutMember(&bot.Member{ExternalUserID: "wm_quiet", CreatedAt: now.Add(-20 * 24 * time.Hour)}); err != nil {
			return err
		}
		return tx.PutMember(&bot.Member{ExternalUserID: "wm_busy", CreatedAt: now.Add(-20 * 24 * time.Hour), LastActiveAt: now.Add(-time.Hour)})
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recording{Store: st}
	for run := 1; run <= 2; run++ {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		r := &Runner{Store: rec, Scenario: func() *scenarios.Scenario { return sc }, Log: zerolog.Nop(), Now: func() time.Time { return now }, StartDelay: -1}
		go func() { r.Run(ctx); close(done) }()
		deadline := time.Now().Add(5 * time.Second)
		for rec.callCount() < 2*run && time.Now().Before(deadline) { // each start: the digest and wm_quiet's event
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		<-done
	}
	var got []string
	for _, ev := range rec.evs {
		got = append(got, string(ev.Type)+" "+ev.ExternalUserID+ev.Data[bot.DataDay])
	}
	if fmt.Sprint(got) != "[loss.digest 2026-11-30 member.silent wm_quiet]" || rec.calls != 4 || len(rec.errs) > 0 {
		t.Fatalf("appended %q (errors %v), want yesterday's digest and one member.silent for wm_quiet", got, rec.errs)
	}
}
