package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

// BenchmarkBroadcastFanOut fans one broadcast out over a store of members
// (100,000 by default; WECOMBOT_BENCH_MEMBERS=1000000 for the issue's
// figure), a tenth of them in the segment, page by page as the pipeline
// does: each page is one write transaction (the members read, an action
// and a target record per member of the segment, the next page queued).
// "index" walks the segment's channel members through the member index
// (BroadcastIndexPage a transaction); "all-members", in the same run on
// the same store, every member (BroadcastPage a transaction: the fan-out
// before the index walk). It reports members/s of the community, the
// number of transactions, the longest one (how long it holds the store's
// one writer, i.e. callbacks' appends, off) and the whole fan-out's time.
func BenchmarkBroadcastFanOut(b *testing.B) {
	n := benchMembers()
	st, eng, now := broadcastBenchStore(b, n)
	rounds := 0
	for _, mode := range []string{"index", "all-members"} {
		b.Run(mode, func(b *testing.B) {
			fanOutByIndex = mode == "index"
			defer func() { fanOutByIndex = true }()
			var txs int
			var longest, total time.Duration
			for b.Loop() {
				rounds++
				t, l, d := fanOutBench(b, st, eng, now.Add(time.Duration(rounds)*time.Hour), n)
				txs += t
				longest = max(longest, l)
				total += d
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "members/s")
			b.ReportMetric(float64(txs)/float64(b.N), "tx/run")
			b.ReportMetric(float64(longest.Milliseconds()), "longest_tx_ms")
			b.ReportMetric(total.Seconds()/float64(b.N), "s/fan-out")
		})
	}
}

// BenchmarkBroadcastReport reads one run's report (a page of 100
// customers) after a fan-out to a tenth of the members: from the run's
// counters (counted), and as a run stored before them is reported, by
// reading every target's action (from_actions).
func BenchmarkBroadcastReport(b *testing.B) {
	n := benchMembers()
	st, eng, now := broadcastBenchStore(b, n)
	fanOutBench(b, st, eng, now, n)
	ctx := context.Background()
	id := BroadcastRunID("上新", now)
	action := func(aid uint64) (*bot.Action, error) { return st.Action(ctx, aid) }
	b.Run("counted", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := st.View(ctx, func(tx bot.Tx) error {
				rep, err := ReportBroadcast(tx, id, action, "", 100)
				if err == nil && (rep.Results["batched"] != n/10+btoi(n%10 != 0) || len(rep.Customers) != 100) {
					err = fmt.Errorf("report %+v", rep.BroadcastRun)
				}
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("from_actions", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := st.View(ctx, func(tx bot.Tx) error {
				run, err := ReadBroadcastRun(tx, id)
				if err != nil {
					return err
				}
				run.Counted, run.Results = false, nil
				_, err = reportFromActions(tx, run, action, "", 100)
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchMembers is the benchmarks' community size: 100,000 by default,
// WECOMBOT_BENCH_MEMBERS=1000000 for the figure.
func benchMembers() int {
	if v, err := strconv.Atoi(os.Getenv("WECOMBOT_BENCH_MEMBERS")); err == nil && v > 0 {
		return v
	}
	return 100_000
}

// broadcastBenchStore is a store of n members (a tenth from 小红书, the
// broadcast's segment; 20 staff) and an engine whose clock is a Friday 20:00.
func broadcastBenchStore(b *testing.B, n int) (*bolt.Store, *Engine, time.Time) {
	sc, err := scenarios.LoadBytes("s.yaml", []byte(`
brand: {name: 山茶集, zone: Asia/Shanghai}
channels:
  - {state: xhs, name: 小红书}
  - {state: douyin, name: 抖音}
segments:
  - {name: 小红书客户, channels: [xhs]}
broadcasts:
  - {name: 上新, segment: 小红书客户, cron: "0 20 * * 5", text: "{{.Name}}，本周上新"}
`))
	if err != nil {
		b.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(b.TempDir(), "b.db"), bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	ctx := context.Background()
	added := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := 0; i < n; {
		if err := st.Update(ctx, func(tx bot.Tx) error {
			for end := min(i+10_000, n); i < end; i++ {
				ch, state := "抖音", "douyin"
				if i%10 == 0 {
					ch, state = "小红书", "xhs"
				}
				m := &bot.Member{ExternalUserID: fmt.Sprintf("wm%08d", i), Name: "茶友", Channel: ch, State: state, Stage: bot.StageAware,
					Follows: []bot.Follow{{StaffID: fmt.Sprintf("staff%02d", i%20), State: state, AddedAt: added}}, CreatedAt: added}
				if err := tx.PutMember(m); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Date(2025, 3, 7, 20, 0, 0, 0, time.UTC)
	eng := New(func() *scenarios.Scenario { return sc }, zerolog.Nop(), func() time.Time { return now })
	return st, eng, now
}

// fanOutBench runs the broadcast's occurrence at as the pipeline would,
// page by page: transactions, the longest, their total time.
func fanOutBench(b *testing.B, st *bolt.Store, eng *Engine, at time.Time, n int) (txs int, longest, total time.Duration) {
	ctx := context.Background()
	handle := func(ev *bot.Event) {
		start := time.Now()
		if err := st.Update(ctx, func(tx bot.Tx) error { return eng.Handle(ctx, tx, ev) }); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		txs++
		total += d
		longest = max(longest, d)
	}
	ev := bot.BroadcastRunEvent("上新", at, at)
	handle(ev)
	run := BroadcastRunID("上新", ev.At)
	for {
		var r *BroadcastRun
		if err := st.View(ctx, func(tx bot.Tx) (err error) { r, err = ReadBroadcastRun(tx, run); return err }); err != nil {
			b.Fatal(err)
		}
		if r.Status == BroadcastDone {
			if r.Targeted != n/10+btoi(n%10 != 0) {
				b.Fatalf("targeted %d of %d", r.Targeted, n)
			}
			return txs, longest, total
		}
		key := "bcpage|" + run + "|" + r.Cursor
		handle(&bot.Event{Type: bot.EventActionResult, Source: bot.SourceSystem, DedupeKey: "result|" + key,
			Data: map[string]string{bot.ResultKind: string(bot.ActionTimer), bot.ResultKey: key, dataTimer: timerOutreachPage, bot.DataRun: run, bot.DataCursor: r.Cursor}})
	}
}

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}
