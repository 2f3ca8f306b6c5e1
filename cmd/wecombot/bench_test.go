package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/loadtest"
	"github.com/wecombot/wecombot/storage/postgres/pgtest"
)

func TestParseMix(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		want    int // entries
		wantErr string
	}{
		{"add=6,join=3,kf=1", 10, ""},
		{"add=1", 1, ""},
		{" add=2 , kf=0 ", 2, ""},
		{"add=0", 0, "all weights are zero"},
		{"add", 0, "kind=weight"},
		{"add=x", 0, "kind=weight"},
		{"add=101", 0, "kind=weight"},
		{"spam=1", 0, "unknown kind"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			mix, err := parseMix(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(mix) != tc.want {
				t.Fatalf("mix %v err %v, want %d entries", mix, err, tc.want)
			}
		})
	}
}

// TestBenchCommandSmoke runs `wecombot bench` briefly end to end: every
// request is acknowledged, every acknowledged add gets exactly its welcome,
// and the report names each figure docs/performance.md explains.
func TestBenchCommandSmoke(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"bench", "--duration", "400ms", "--concurrency", "8", "--members", "500", "--drain", "20s"},
		func(string) string { return "" }, nil, &out, &errb)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, errb.String())
	}
	report := out.String()
	for _, want := range []string{"acked req/s", "ack latency p99", "CPU per ack (this process)", "ratio serve/bare", "ratio ack/bare", "ack path", "event → welcome sent", "start-up:", "RSS", "store: 500 members", "drained"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "NOT drained") {
		t.Errorf("outbox did not drain:\n%s", report)
	}
}

// TestBenchAckPathHoldsTheEngine: the ack-path phase acknowledges every
// callback while nothing is applied (the events wait in the log), and once
// released the engine applies them all and the outbox drains.
func TestBenchAckPathHoldsTheEngine(t *testing.T) {
	rep, err := runBench(context.Background(), benchOptions{Duration: 400 * time.Millisecond, Concurrency: 8, Mix: "add=6,join=3,kf=1", Drain: 20 * time.Second, NoBare: true},
		func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	a := rep.Ack
	if a.Acked == 0 || a.Failed > 0 {
		t.Fatalf("ack path: acked %d, failed %d (%s)", a.Acked, a.Failed, a.FirstError)
	}
	if rep.AckHeldApplied != 0 || rep.AckHeldPending < a.Acked {
		t.Errorf("while held: %d applied, %d pending; want 0 applied and the %d acknowledged pending", rep.AckHeldApplied, rep.AckHeldPending, a.Acked)
	}
	if !rep.AckDrain.OK || rep.AckApplied < a.Acked {
		t.Errorf("after the release: drained %v, %d applied, want all %d acknowledged (%s)", rep.AckDrain.OK, rep.AckApplied, a.Acked, rep.AckDrain.Last)
	}
}

// TestBenchBurstSmoke: `--burst N/d --wecom-latency` sends N adds over d
// against a fake WeCom with that latency and reports the welcomes inside
// WeCom's 20 s window: every add is acknowledged and welcomed in time.
func TestBenchBurstSmoke(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"bench", "--burst", "100/500ms", "--wecom-latency", "20ms", "--no-bare", "--drain", "20s"},
		func(string) string { return "" }, nil, &out, &errb)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, errb.String())
	}
	report := out.String()
	for _, want := range []string{"burst of 100 adds over 500ms", "fake WeCom answering after 20ms", "mix add=1",
		"100/100/0", "welcomes inside WeCom's 20s window: 100 of 100 owed = 100.00%"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// TestBenchPostgresPeer: `--peer-database-url` runs a third phase against
// the peer handler (verify, decrypt, one INSERT per callback): every request
// is acknowledged and stored, the report gives the serve/peer ratio, and the
// peer's table is dropped after.
func TestBenchPostgresPeer(t *testing.T) {
	dbURL := pgtest.Database(t)
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"bench", "--duration", "300ms", "--concurrency", "4", "--peer-database-url", dbURL, "--drain", "20s"},
		func(string) string { return "" }, nil, &out, &errb)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, errb.String())
	}
	report := out.String()
	for _, want := range []string{"bare + PG INSERT", "ratio serve/peer:"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "first peer failure") {
		t.Errorf("the peer failed requests:\n%s", report)
	}
	pgtest.Exec(t, dbURL, `DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_tables WHERE tablename = 'wecombot_bench_peer') THEN RAISE EXCEPTION 'the peer table was left behind'; END IF; END $$`)
}

func TestBenchRejectsBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--duration", "0s"}, {"--concurrency", "0"}, {"--mix", "x=1"}, {"--rate", "-1"}, {"--burst", "3000"}, {"--burst", "0/10s"}, {"--burst", "10/x"}, {"--wecom-latency", "-1s"}} {
		err := run(context.Background(), append([]string{"bench"}, args...), func(string) string { return "" }, nil, &bytes.Buffer{}, &bytes.Buffer{})
		if exitCode(err) != exitUsage {
			t.Errorf("%v: exit %d (%v), want %d", args, exitCode(err), err, exitUsage)
		}
	}
}

// BenchmarkServeUnderLoad is `wecombot bench` as a Go benchmark: each
// iteration is one 2-second closed-loop phase against the real server and
// the bare handler. Run with -benchtime=1x.
func BenchmarkServeUnderLoad(b *testing.B) {
	for b.Loop() {
		rep, err := runBench(context.Background(), benchOptions{Duration: 2 * time.Second, Concurrency: 64, Mix: "add=6,join=3,kf=1", Drain: time.Minute},
			func(string) string { return "" }, &bytes.Buffer{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(rep.Serve.RPS(), "acked-req/s")
		b.ReportMetric(rep.Bare.RPS(), "bare-req/s")
		b.ReportMetric(rep.Serve.RPS()/max(rep.Bare.RPS(), 1), "ratio")
		b.ReportMetric(float64(loadtest.Percentile(rep.Serve.Latencies, 99))/1e6, "ack-p99-ms")
		b.ReportMetric(float64(loadtest.Percentile(rep.Welcomes, 99))/1e6, "welcome-p99-ms")
		b.ReportMetric(float64(rep.ServeMem.Peak)/(1<<20), "peak-RSS-MB")
	}
}

// BenchmarkServeAt1000 is the latency target's setting: 1,000 callbacks/s
// (open loop) for 5 s.
func BenchmarkServeAt1000(b *testing.B) {
	for b.Loop() {
		rep, err := runBench(context.Background(), benchOptions{Duration: 5 * time.Second, Concurrency: 64, Rate: 1000, Mix: "add=6,join=3,kf=1", Drain: time.Minute, NoBare: true},
			func(string) string { return "" }, &bytes.Buffer{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(rep.Serve.RPS(), "acked-req/s")
		b.ReportMetric(float64(loadtest.Percentile(rep.Serve.Latencies, 99))/1e6, "ack-p99-ms")
		b.ReportMetric(float64(loadtest.Percentile(rep.Welcomes, 50))/1e6, "welcome-p50-ms")
		b.ReportMetric(float64(loadtest.Percentile(rep.Welcomes, 99))/1e6, "welcome-p99-ms")
	}
}

// TestBenchServeProcess: with --serve-process the serve phase's server is a
// child process of the built binary: its memory is read from its own
// /proc entry (not this process's), its heap profile comes from its
// profiling endpoint, every add still gets its welcome, and the child is
// gone once the bench returns.
func TestBenchServeProcess(t *testing.T) {
	bin := wecombotBinary(t)
	dir := t.TempDir()
	heap, samples := filepath.Join(dir, "heap.pprof"), filepath.Join(dir, "mem.tsv")
	rep, err := runBench(context.Background(), benchOptions{Duration: 1500 * time.Millisecond, Concurrency: 4, Rate: 200, Mix: "add=6,join=3,kf=1",
		Drain: 20 * time.Second, NoBare: true, NoAck: true, ServeProcess: true, ServeBinary: bin, HeapProfile: heap, MemSamples: samples},
		func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ServePID == 0 || rep.ServePID == os.Getpid() {
		t.Fatalf("server pid %d, want a child's (this is %d)", rep.ServePID, os.Getpid())
	}
	if rep.Serve.Acked == 0 || rep.Serve.Failed > 0 || !rep.DrainOK || len(rep.Welcomes) != rep.Adds {
		t.Fatalf("acked %d failed %d drained %v, %d welcomes for %d adds (%s)", rep.Serve.Acked, rep.Serve.Failed, rep.DrainOK, len(rep.Welcomes), rep.Adds, rep.LastStatus)
	}
	if rep.IdleMem.RSS == 0 || rep.ServeMem.Anon == 0 || rep.ServeMem.Peak < rep.ServeMem.RSS || len(rep.MemSamples) < 2 {
		t.Fatalf("child memory: idle %+v, end %+v, %d samples", rep.IdleMem, rep.ServeMem, len(rep.MemSamples))
	}
	if err := syscall.Kill(rep.ServePID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the server process %d is still there after the bench (kill -0: %v)", rep.ServePID, err)
	}
	b, err := os.ReadFile(heap)
	if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("heap profile: %d bytes, %v; want a gzipped pprof profile", len(b), err)
	}
	tsv, err := os.ReadFile(samples)
	if lines := strings.Split(strings.TrimSpace(string(tsv)), "\n"); err != nil || lines[0] != "seconds\trss_mb\tanon_mb\tfile_mb" || len(lines) < 3 {
		t.Errorf("memory samples file: %v\n%s", err, tsv)
	}
	var out bytes.Buffer
	rep.print(&out)
	if want := fmt.Sprintf("memory (the server process alone, pid %d)", rep.ServePID); !strings.Contains(out.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, out.String())
	}
}
