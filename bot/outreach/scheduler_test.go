package outreach

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

type appendLog struct {
	mu   sync.Mutex
	keys map[string]int
}

func (l *appendLog) AppendEvent(_ context.Context, ev *bot.Event) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys[ev.DedupeKey]++
	return l.keys[ev.DedupeKey] > 1, nil
}

func outreachScenario(t *testing.T) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.LoadBytes("s.yaml", []byte(`brand: {name: t, zone: Asia/Shanghai}
channels: [{state: xhs, name: 小红书}]
segments: [{name: s, channels: [xhs]}]
broadcasts:
  - {name: 周五, segment: s, cron: "0 20 * * 5", text: hi}
  - {name: 一次, segment: s, at: "2099-03-07 20:30", text: hi}
sops:
  - {name: 生日, trigger: "date:birthday", steps: [{day: 0, at: "10:00", text: hi}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// Occurrences lists every broadcast time and each midnight of a date SOP,
// in order, in the brand zone.
func TestOccurrences(t *testing.T) {
	sc := outreachScenario(t)
	z := sc.Brand.Zone
	got := Occurrences(sc, time.Date(2099, 3, 6, 12, 0, 0, 0, z), time.Date(2099, 3, 7, 21, 0, 0, 0, z))
	want := []Occurrence{{SOP: "生日", At: time.Date(2099, 3, 7, 0, 0, 0, 0, z)}, {Broadcast: "一次", At: time.Date(2099, 3, 7, 20, 30, 0, 0, z)}}
	// 2099-03-06 is a Friday.
	want = append([]Occurrence{{Broadcast: "周五", At: time.Date(2099, 3, 6, 20, 0, 0, 0, z)}}, want...)
	if len(got) != len(want) {
		t.Fatalf("occurrences %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Broadcast != want[i].Broadcast || got[i].SOP != want[i].SOP || !got[i].At.Equal(want[i].At) {
			t.Errorf("occurrence %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if ev := got[0].Event(got[0].At); ev.DedupeKey != bot.BroadcastRunKey("周五", want[0].At) || ev.Type != bot.EventBroadcastRun {
		t.Errorf("event %+v", ev)
	}
}

// A start catches up what it missed within the window; a restart appends
// the same keys again, which the log drops: one run per occurrence.
func TestCatchUpOncePerOccurrence(t *testing.T) {
	sc := outreachScenario(t)
	now := time.Date(2099, 3, 6, 20, 40, 0, 0, sc.Brand.Zone) // 40 minutes after Friday's 20:00
	log := &appendLog{keys: map[string]int{}}
	for range 2 {
		s := New(Options{Events: log, Now: func() time.Time { return now }})
		s.Load(context.Background(), sc)
		s.Load(context.Background(), sc) // the same scenario: nothing again
		s.Stop()
	}
	key := bot.BroadcastRunKey("周五", time.Date(2099, 3, 6, 20, 0, 0, 0, sc.Brand.Zone))
	if len(log.keys) != 1 || log.keys[key] != 2 {
		t.Errorf("appends %v, want %s twice (once per start)", log.keys, key)
	}
}
