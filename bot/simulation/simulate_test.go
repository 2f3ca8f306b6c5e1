package simulation

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/pipeline"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestSimulateGolden runs each testdata/*.yaml script through Simulate with
// the embedded default scenario and compares the output with its .golden.
func TestSimulateGolden(t *testing.T) {
	t.Parallel()
	scripts, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	// The demo week `wecombot simulate` plays with no file (golden in testdata).
	scripts = append(scripts, "../../scenarios/demo/checkin-week.yaml")
	for _, script := range scripts {
		t.Run(filepath.Base(script), func(t *testing.T) {
			in, err := os.ReadFile(script)
			if err != nil {
				t.Fatal(err)
			}
			// A script may bring its own scenario (testdata/NAME.scenario/).
			sc := scenarios.LoadDefault()
			if dir := strings.TrimSuffix(script, ".yaml") + ".scenario"; fileExists(dir) {
				if sc, err = scenarios.Load(dir); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			if err := Run(context.Background(), sc, newTestStore(t), bytes.NewReader(in), &out); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", strings.TrimSuffix(filepath.Base(script), ".yaml")+".golden")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got := out.String(); got != string(want) {
				t.Errorf("output differs from %s (run go test -update after checking the change):\n%s", golden, diff(string(want), got))
			}
			// Same script, same output.
			var again bytes.Buffer
			if err := Run(context.Background(), sc, newTestStore(t), bytes.NewReader(in), &again); err != nil || again.String() != out.String() {
				t.Errorf("simulation is not deterministic (%v)", err)
			}
		})
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// diff shows the first differing lines.
func diff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return ""
}

func TestSimulateScriptErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"empty":            ``,
		"unknown key":      "start: 2025-03-03\nstpes: []\n",
		"bad start":        "start: tomorrow\n",
		"two kinds":        "start: 2025-03-03\nsteps:\n  - {add: wmA, kf: wmA}\n",
		"no kind":          "start: 2025-03-03\nsteps:\n  - {member: wmA}\n",
		"time goes back":   "start: 2025-03-03 10:00\nsteps:\n  - {at: 2025-03-03 09:00, add: wmA}\n",
		"bad duration":     "start: 2025-03-03\nsteps:\n  - {at: +soon, add: wmA}\n",
		"order without id": "start: 2025-03-03\nsteps:\n  - {order: wmA, amount: 10}\n",
		"bad amount":       "start: 2025-03-03\nsteps:\n  - {order: wmA, id: o1, amount: lots}\n",
	}
	for name, script := range cases {
		t.Run(name, func(t *testing.T) {
			err := Run(context.Background(), scenarios.LoadDefault(), newTestStore(t), strings.NewReader(script), &bytes.Buffer{})
			if err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func newTestStore(t testing.TB) *bolt.Store {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "simulate.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSimulateCancelsFollowUpsOfALostMember pins simulate = production: a
// member who adds the staff member and then deletes them (del_follow_user)
// gets no follow-ups — the outbox guard cancels them in simulate exactly as
// it does in production, and the output says so.
func TestSimulateCancelsFollowUpsOfALostMember(t *testing.T) {
	sc := scenarios.LoadDefault()
	followUps := len(sc.DefaultWelcome.FollowUps.Steps)
	if followUps == 0 {
		t.Fatal("the default scenario's welcome has no follow-ups to cancel")
	}
	script := `start: 2025-03-03 10:00
staff: chayi01
steps:
  - {add: wm_lost, welcome_code: wc1}
  - {at: +1h, del_follow: wm_lost}
until: 2025-03-20
`
	var out bytes.Buffer
	if err := Run(context.Background(), sc, newTestStore(t), strings.NewReader(script), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if strings.Contains(got, "send   mass_send") {
		t.Errorf("a follow-up was sent to a member who deleted the staff member:\n%s", got)
	}
	if n := strings.Count(got, "cancel mass_send → wm_lost: member"); n != followUps {
		t.Errorf("%d follow-ups cancelled, want %d:\n%s", n, followUps, got)
	}
}

// TestSimulateScriptSyntaxErrorLine: a YAML syntax error in a simulation
// script names the line it is on.
func TestSimulateScriptSyntaxErrorLine(t *testing.T) {
	script := "start: \"2025-03-03 07:30\"\nsteps:\n  - {add: wm_a, state: xhs}\n  - at: +1h\n     kf: wm_a\n"
	err := Run(context.Background(), scenarios.LoadDefault(), newTestStore(t), strings.NewReader(script), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "simulation script:5: YAML syntax") {
		t.Fatalf("got %v, want the error at line 5", err)
	}
}

// TestLostMemberFollowUpCancelledInProduction is the production half of the
// test above: the same add and del_follow_user through a running pipeline
// (pipeline.Run, not the simulator's stepping) cancel the same follow-up with
// the same reason simulate prints.
func TestLostMemberFollowUpCancelledInProduction(t *testing.T) {
	sc := scenarios.LoadDefault()
	st := newTestStore(t)
	var mu sync.Mutex
	clock := time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	eng := engine.New(func() *scenarios.Scenario { return sc }, zerolog.Nop(), now)
	pl := pipeline.New(pipeline.Options{Store: st, Handle: eng.Handle, Sender: recorder{&simulator{out: io.Discard, zone: time.UTC}},
		Guard: engine.Guard, Now: now, Log: zerolog.Nop(), PollInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10 s", what)
			}
		}
	}
	appendEvent := func(ev *bot.Event) {
		t.Helper()
		ev.At, ev.ReceivedAt = now(), now()
		if _, err := st.AppendEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
		pl.NotifyEvent()
		wait("event processed", func() bool { s, err := st.EventStats(ctx); return err == nil && s.Pending == 0 })
	}
	appendEvent(&bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm_lost", StaffID: "chayi01", WelcomeCode: "wc1", DedupeKey: "add"})
	appendEvent(&bot.Event{Type: bot.EventContactDelFollow, ExternalUserID: "wm_lost", StaffID: "chayi01", DedupeKey: "del"})
	mu.Lock()
	clock = clock.AddDate(0, 0, 30) // every follow-up is due
	mu.Unlock()
	pl.NotifyOutbox()
	var followUps []bot.Action
	wait("follow-ups settled", func() bool {
		acts, err := st.Actions(ctx, 0, 100)
		if err != nil {
			return false
		}
		followUps = followUps[:0]
		for _, a := range acts {
			if strings.HasPrefix(a.Key, "followup|") {
				if a.Status == bot.ActionPending || a.Status == bot.ActionBatched {
					return false
				}
				followUps = append(followUps, a)
			}
		}
		return len(followUps) > 0
	})
	if len(followUps) != len(sc.DefaultWelcome.FollowUps.Steps) {
		t.Fatalf("%d follow-ups, want %d", len(followUps), len(sc.DefaultWelcome.FollowUps.Steps))
	}
	for _, a := range followUps {
		if a.Status != bot.ActionFailed || a.LastError != "canceled: member lost (deleted every staff member)" {
			t.Errorf("follow-up %s: %s %q, want canceled like simulate prints", a.Key, a.Status, a.LastError)
		}
	}
}
