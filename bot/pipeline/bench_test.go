package pipeline_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/pipeline"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

// okSender is the fastest fake WeCom: every send succeeds at once.
type okSender struct{}

func (okSender) Send(context.Context, *bot.Action) (bot.SendResult, bool, error) {
	return bot.SendResult{Detail: "ok"}, false, nil
}

// BenchmarkEngineThroughput is the engine saturated: 4,000 contact adds
// (the demo scenario's channel, each a new member owing a welcome, tags and
// follow-ups) already in the log of an fsynced bbolt store, applied by the
// pipeline's workers while the relay delivers to a sender that answers at
// once. It reports events applied per second (the issue's ≥ 5,000/s) and
// the process's CPU time per event.
func BenchmarkEngineThroughput(b *testing.B) {
	const n = 4000
	sc := scenarios.LoadDefault()
	for b.Loop() {
		b.StopTimer()
		st, err := bolt.Open(filepath.Join(b.TempDir(), "e.db"), bolt.Options{})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		now := time.Now()
		for i := range n {
			ev := &bot.Event{Type: bot.EventContactAdd, Source: bot.SourceWeCom, At: now, ReceivedAt: now,
				DedupeKey: fmt.Sprintf("add|%d", i), StaffID: "zhangsan", ExternalUserID: fmt.Sprintf("wm_bench_%06d", i),
				State: "xhs", WelcomeCode: fmt.Sprintf("WC-%d", i)}
			if _, err := st.AppendEvent(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
		eng := engine.New(func() *scenarios.Scenario { return sc }, zerolog.Nop(), time.Now)
		p := pipeline.New(pipeline.Options{Store: st, Handle: eng.Handle, Sender: okSender{}, Log: zerolog.Nop(), Guard: engine.Guard})
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		b.StartTimer()
		start, cpu0 := time.Now(), processCPU()
		go func() { defer close(done); _ = p.Run(rctx) }()
		for p.Stats().Processed+p.Stats().Failed < n {
			time.Sleep(time.Millisecond)
		}
		took, cpu := time.Since(start), processCPU()-cpu0
		b.StopTimer()
		cancel()
		<-done
		if f := p.Stats().Failed; f > 0 {
			b.Fatalf("%d events failed", f)
		}
		b.ReportMetric(float64(n)/took.Seconds(), "events/s")
		if cpu > 0 {
			// The process's CPU per event: steadier than events/s on a
			// shared machine, where the wall time includes waiting for a core.
			b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/event")
		}
		st.Close()
		b.StartTimer()
	}
}
