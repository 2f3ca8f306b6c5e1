package pipeline_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/loadtest"
	"github.com/wecombot/wecombot/bot/pipeline"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

// okSender is the fastest fake WeCom: every send succeeds at once.
type okSender struct{}

func (okSender) Send(context.Context, *bot.Action) (bot.SendResult, bool, error) {
	return bot.SendResult{Detail: "ok"}, false, nil
}

// engineProfile names a file for a CPU profile of BenchmarkEngineThroughput's
// timed part only (-test.cpuprofile also covers writing the log).
var engineProfile = flag.String("engine.cpuprofile", "", "write a CPU profile of the engine benchmarks' timed part to this file")

// engineEvents is how many events BenchmarkEngineThroughput applies per
// iteration (more give a profile more samples).
var engineEvents = flag.Int("engine.events", 4000, "events per BenchmarkEngineThroughput iteration")

// profiles counts the profiles written: the second and later iterations'
// go to the file name with their number appended.
var profiles int

// engineStore names an existing bbolt file BenchmarkEngineThroughput applies
// its events to, in place (pass a copy: e.g. a store with 1,000,000 members
// from `wecombot bench --members`, then `sync`, or the copy's writeback
// lands in the first run's fsyncs); by default each iteration starts empty.
var engineStore = flag.String("engine.store", "", "apply BenchmarkEngineThroughput's events to this existing bbolt file (changes it)")

// engineMix is the events' kinds by weight, as `wecombot bench --mix`.
var engineMix = flag.String("engine.mix", "add=1", "BenchmarkEngineThroughput's events by weight: add (contact add, new member), join (a new member joins one of 50 customer groups), kf (微信客服 notice)")

// benchMix expands "add=6,join=3,kf=1" into one kind per weight unit, spread
// out (add join add join add join add kf add add).
func benchMix(s string) ([]string, error) {
	weights := map[string]int{}
	var kinds []string
	for _, part := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		w, err := strconv.Atoi(v)
		if (k != "add" && k != "join" && k != "kf") || err != nil || w < 0 {
			return nil, fmt.Errorf("-engine.mix %q: want add=N,join=N,kf=N", s)
		}
		weights[k] = w
		kinds = append(kinds, k)
	}
	var out []string
	for left := true; left; {
		left = false
		for _, k := range kinds {
			if weights[k] > 0 {
				out = append(out, k)
				weights[k]--
				left = true
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-engine.mix %q: no weight", s)
	}
	return out, nil
}

// startEngineProfile starts the timed part's CPU profile, if asked for; the
// function it returns stops it.
func startEngineProfile(b *testing.B) func() {
	if *engineProfile == "" {
		return func() {}
	}
	name := *engineProfile
	if profiles++; profiles > 1 {
		name = fmt.Sprintf("%s.%d", name, profiles)
	}
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// BenchmarkEngineThroughput is the engine saturated: 4,000 contact adds
// (the demo scenario's channel, each a new member owing a welcome, tags and
// follow-ups) already in the log of an fsynced bbolt store, applied by the
// pipeline's workers while the relay delivers to a sender that answers at
// once. It reports events applied per second (the issue's ≥ 5,000/s) and
// the process's CPU time per event. Flags: -engine.events, -engine.mix
// (add=6,join=3,kf=1 is `wecombot bench`'s default mix), -engine.store (a
// copy of a large store: the engine at 1,000,000 members) and
// -engine.cpuprofile (the timed part only).
func BenchmarkEngineThroughput(b *testing.B) {
	n := *engineEvents
	mix, err := benchMix(*engineMix)
	if err != nil {
		b.Fatal(err)
	}
	sc := scenarios.LoadDefault()
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "e.db")
		if *engineStore != "" {
			path = *engineStore
		}
		st, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		now := time.Now()
		run := strconv.FormatInt(now.UnixNano(), 36) // new members on a store used before
		evs := make([]*bot.Event, n)
		for i := range n {
			ev := &bot.Event{Source: bot.SourceWeCom, At: now, ReceivedAt: now, StaffID: "zhangsan",
				DedupeKey: fmt.Sprintf("%s|%d", run, i), ExternalUserID: fmt.Sprintf("wm_bench_%s_%06d", run, i)}
			switch mix[i%len(mix)] {
			case "join":
				ev.Type, ev.ChatID, ev.UpdateDetail, ev.JoinScene = bot.EventGroupUpdate, fmt.Sprintf("wr_bench_group_%d", i%50), bot.GroupAddMember, 3
				ev.MemChangeList, ev.ExternalUserID = []string{ev.ExternalUserID}, ""
			case "kf":
				ev.Type, ev.OpenKfID, ev.KfToken, ev.ExternalUserID = bot.EventKfNotify, "wk_bench", "kf-token-"+strconv.Itoa(i), ""
			default:
				ev.Type, ev.State, ev.WelcomeCode = bot.EventContactAdd, "xhs", fmt.Sprintf("WC-%s-%d", run, i)
			}
			evs[i] = ev
		}
		// Appended by 16 writers sharing fsyncs: one at a time, a large
		// store took longer than the welcome codes' 20 s.
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for w := range 16 {
			wg.Go(func() {
				for i := w; i < n; i += 16 {
					if _, err := st.AppendEvent(ctx, evs[i]); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		eng := engine.New(func() *scenarios.Scenario { return sc }, zerolog.Nop(), time.Now)
		p := pipeline.New(pipeline.Options{Store: st, Handle: eng.Handle, Sender: okSender{}, Log: zerolog.Nop(), Guard: engine.Guard})
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		b.StartTimer()
		stopProfile := startEngineProfile(b)
		start, cpu0 := time.Now(), loadtest.ProcessCPU()
		go func() { defer close(done); _ = p.Run(rctx) }()
		for p.Stats().Processed+p.Stats().Failed < uint64(n) {
			time.Sleep(time.Millisecond)
		}
		took, cpu := time.Since(start), loadtest.ProcessCPU()-cpu0
		stopProfile()
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
			b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
		}
		st.Close()
		b.StartTimer()
	}
}
