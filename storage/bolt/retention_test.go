package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/wecombot/wecombot/bot"
)

// fill writes n events received one second apart from start, every pending
// one in ten (the rest processed), and n/2 actions (sent, except one in ten
// pending), straight into the file in large transactions.
func fill(tb testing.TB, s *Store, n int, start time.Time) {
	tb.Helper()
	const chunk = 50_000
	for lo := 0; lo < n; lo += chunk {
		err := s.db.Update(func(tx *bbolt.Tx) error {
			events, pending, ob := tx.Bucket(bucketEvents), tx.Bucket(bucketPending), tx.Bucket(bucketOutbox)
			for i := lo; i < min(lo+chunk, n); i++ {
				seq, _ := events.NextSequence()
				at := start.Add(time.Duration(i) * time.Second)
				raw, _ := json.Marshal(bot.Event{Seq: seq, Type: bot.EventKfText, Source: bot.SourceWeCom, ExternalUserID: fmt.Sprintf("wm%07d", i),
					OpenKfID: "wk1", Content: "你好，请问今天有优惠吗", DedupeKey: fmt.Sprintf("kf|msg%d", i), At: at, ReceivedAt: at})
				if err := events.Put(u64(seq), raw); err != nil {
					return err
				}
				if err := indexEvent(tx, []string{fmt.Sprintf("wm%07d", i)}, seq); err != nil {
					return err
				}
				if i%10 == 0 {
					if err := pending.Put(u64(seq), i64(at.UnixNano())); err != nil {
						return err
					}
					if err := addCounter(tx, ctrPending, 1); err != nil {
						return err
					}
				}
				if i%2 == 0 {
					id, _ := ob.NextSequence()
					a, _ := bot.NewAction(bot.ActionKfMessage, fmt.Sprintf("kf|reply|%d", i), bot.KfMessage{OpenKfID: "wk1", ExternalUserID: "wm", Text: "您好，今天全场满 199 减 30"})
					a.ID, a.CreatedAt, a.DueAt, a.MemberID = id, at, at, fmt.Sprintf("wm%07d", i)
					if err := indexAction(tx, a.MemberID, id); err != nil {
						return err
					}
					ctr := ctrObPending
					if i%20 != 0 {
						a.Status, a.SentAt, ctr = bot.ActionSent, at.Add(time.Second), ctrObSent
					}
					if err := putAction(tx, id, a); err != nil {
						return err
					}
					if err := tx.Bucket(bucketOutboxKeys).Put([]byte(a.Key), u64(id)); err != nil {
						return err
					}
					if a.Status == bot.ActionPending {
						if err := putDue(tx, a.DueAt, false, id); err != nil {
							return err
						}
					}
					if err := addCounter(tx, ctr, 1); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// More records than one sweep transaction visits are all swept, in several
// transactions, and exactly the right ones.
func TestSweepInChunks(t *testing.T) {
	t.Parallel()
	s, err := Open(filepath.Join(t.TempDir(), "sweep.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := sweepChunk*3 + 17
	fill(t, s, n, start)
	cutoff := start.Add(time.Duration(n-100) * time.Second) // the last 100 are recent
	st, err := s.Sweep(context.Background(), cutoff)
	if err != nil {
		t.Fatal(err)
	}
	old := n - 100
	wantEvents := old - (old+9)/10 // all but the pending ones (every tenth)
	if st.Events != wantEvents || st.Transactions < 4 {
		t.Fatalf("swept %+v, want %d events in several transactions", st, wantEvents)
	}
	evs, _ := s.Events(context.Background(), 0, n)
	if len(evs) != n-wantEvents {
		t.Fatalf("%d events left, want %d", len(evs), n-wantEvents)
	}
	for _, ev := range evs {
		i := int(ev.Seq - 1)
		if i < old && i%10 != 0 {
			t.Fatalf("processed old event %d left behind", ev.Seq)
		}
	}
	ob, _ := s.OutboxStats(context.Background())
	acts, _ := s.Actions(context.Background(), 0, n)
	if ob.Sent+ob.Pending != len(acts) {
		t.Fatalf("outbox counters %+v disagree with %d stored actions", ob, len(acts))
	}
	// The member history lost exactly the swept records.
	_ = s.db.View(func(tx *bbolt.Tx) error {
		if got := tx.Bucket(bucketMemberEvents).Stats().KeyN; got != len(evs) {
			t.Errorf("member_events holds %d keys for %d events", got, len(evs))
		}
		if got := tx.Bucket(bucketMemberActions).Stats().KeyN; got != len(acts) {
			t.Errorf("member_actions holds %d keys for %d actions", got, len(acts))
		}
		return nil
	})
}

// BenchmarkSweep sweeps a file of 1,000,000 events (and 500,000 actions),
// nine in ten processed and old enough, while a writer keeps appending events
// the way callbacks do; it reports the sweep's time per event, its longest
// transaction and the appends' worst and p99 wait. Run it with
// -benchtime=1x: the setup writes ~400 MB.
func BenchmarkSweep(b *testing.B) {
	const n = 1_000_000
	for range b.N {
		b.StopTimer()
		s, err := Open(filepath.Join(b.TempDir(), "sweep.db"), Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now().Add(-60 * 24 * time.Hour)
		fill(b, s, n, start)
		// Callbacks keep arriving: first 2 s without a sweep (the baseline),
		// then during it.
		appends := func(ctx context.Context, tag string) (lat []time.Duration) {
			for i := 0; ctx.Err() == nil; i++ {
				t0 := time.Now()
				if _, err := s.AppendEvent(context.Background(), &bot.Event{Type: bot.EventKfText, DedupeKey: fmt.Sprint(tag, i)}); err != nil {
					b.Error(err)
					return
				}
				lat = append(lat, time.Since(t0))
				time.Sleep(time.Millisecond)
			}
			return lat
		}
		idleCtx, idleStop := context.WithTimeout(context.Background(), 2*time.Second)
		idle := appends(idleCtx, "idle")
		idleStop()
		ctx, stop := context.WithCancel(context.Background())
		var lat []time.Duration
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); lat = appends(ctx, "live") }()
		b.StartTimer()
		st, err := s.Sweep(context.Background(), time.Now().Add(-30*24*time.Hour))
		b.StopTimer()
		stop()
		wg.Wait()
		if err != nil {
			b.Fatal(err)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(st.Took.Nanoseconds())/float64(n), "ns/event")
		b.ReportMetric(float64(st.Events), "events_swept")
		b.ReportMetric(float64(st.Actions), "actions_swept")
		b.ReportMetric(float64(st.Transactions), "txs")
		b.ReportMetric(float64(st.LongestTx.Microseconds())/1000, "longest_tx_ms")
		sort.Slice(idle, func(i, j int) bool { return idle[i] < idle[j] })
		if len(idle) > 0 {
			b.ReportMetric(float64(idle[len(idle)*99/100].Microseconds())/1000, "append_p99_idle_ms")
		}
		if len(lat) > 0 {
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "append_p99_ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "append_max_ms")
			b.ReportMetric(float64(len(lat)), "appends")
		}
		s.Close()
	}
}

// BenchmarkMemberHistory is a member's detail read (her newest 200 events
// and actions) on a log of 200,000 events and 100,000 actions, for a
// member whose records are old: "index" reads her history index;
// "scan-newest-20000" is, in the same run, what the console did before —
// scan the newest 20,000 events and actions backwards for her id (and
// find nothing older). The index's cost does not grow with the log; the
// scan's grows with the window.
func BenchmarkMemberHistory(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "history.db"), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 200_000
	fill(b, s, n, time.Now().Add(-time.Hour))
	member := fmt.Sprintf("wm%07d", 10) // an early member: one event, one action
	ctx := context.Background()
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			evs, err := s.MemberEvents(ctx, member, 200)
			if err != nil || len(evs) != 1 {
				b.Fatal(len(evs), err)
			}
			acts, err := s.MemberActions(ctx, member, 200)
			if err != nil || len(acts) != 1 {
				b.Fatal(len(acts), err)
			}
		}
	})
	b.Run("scan-newest-20000", func(b *testing.B) {
		needle, _ := json.Marshal(member)
		for b.Loop() {
			found := 0
			_ = s.db.View(func(tx *bbolt.Tx) error {
				for _, table := range [][]byte{bucketEvents, bucketOutbox} {
					c := tx.Bucket(table).Cursor()
					n := 0
					for k, v := c.Last(); k != nil && n < 20000; k, v = c.Prev() {
						n++
						if bytes.Contains(v, needle) {
							found++
						}
					}
				}
				return nil
			})
			if found != 0 {
				b.Fatal("the window reached the early member")
			}
		}
	})
}
