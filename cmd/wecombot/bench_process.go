package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wecombot/wecombot/bot/loadtest"
)

// startServeProcess runs `wecombot serve` as a child process (bin, this
// binary by default) configured by env alone, so the serve phase's memory
// is the server's own: the load generator and the fake WeCom stay in the
// bench process. The child inherits no WECOMBOT_*, WECOM_* or OPENAI_*
// variable of the bench's environment (only those in env); Go runtime
// settings (GOMEMLIMIT, GOGC, GODEBUG) pass through.
func startServeProcess(ctx context.Context, bin string, env map[string]string, debugAddr string) (*benchServer, error) {
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("bench: the server process: %w", err)
		}
	}
	var childEnv []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "WECOMBOT_") || strings.HasPrefix(k, "WECOM_") || strings.HasPrefix(k, "OPENAI_") {
			continue
		}
		childEnv = append(childEnv, kv)
	}
	for k, v := range env {
		childEnv = append(childEnv, k+"="+v)
	}
	if debugAddr != "" {
		childEnv = append(childEnv, "WECOMBOT_DEBUG_LISTEN="+debugAddr)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = childEnv
	logs := &syncWriter{}
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start the server process %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
	}
	// The listen line, on stdout, as serve prints it; the caller's ctx
	// ending stops the child too.
	base := listenLine(out)
	startup := time.Since(start)
	if base == "" {
		stop()
		return nil, fmt.Errorf("bench: the server process did not start:\n%s", logs.String())
	}
	go func() {
		select {
		case <-ctx.Done():
			stop()
		case <-done:
		}
	}()
	return &benchServer{base: base, startup: startup, logs: logs, stop: stop, pid: cmd.Process.Pid, debug: debugAddr}, nil
}

// memory reads the server's resident memory: its own process's, or this
// one's when it runs in process.
func (s *benchServer) memory() loadtest.Memory {
	if s.pid != 0 {
		return loadtest.ReadMemoryOf(s.pid)
	}
	return loadtest.ReadMemory()
}

// writeHeapProfile writes the server's heap profile (after a GC) to path:
// from the child's profiling endpoint, or this process's when in process.
func (s *benchServer) writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if s.debug == "" {
		runtime.GC()
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			return err
		}
		return f.Close()
	}
	resp, err := http.Get("http://" + s.debug + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heap profile: %s", resp.Status)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		return err
	}
	return f.Close()
}

// freeLoopbackAddr is a loopback address nothing listens on right now.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// memSample is the server's memory at one moment of the serve phase.
type memSample struct {
	At  time.Duration // since the load started
	Mem loadtest.Memory
}

// sampleMemory reads the server's memory every interval until stop, which
// returns the samples (the first taken at once).
func sampleMemory(s *benchServer, every time.Duration) (stop func() []memSample) {
	start := time.Now()
	var mu sync.Mutex
	samples := []memSample{{0, s.memory()}}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				m := s.memory()
				mu.Lock()
				samples = append(samples, memSample{time.Since(start), m})
				mu.Unlock()
			}
		}
	}()
	return func() []memSample {
		close(quit)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return append(samples, memSample{time.Since(start), s.memory()})
	}
}

// printMemory prints the serve phase's memory: which process was measured,
// after start-up and at the end, the largest sample of each part, and the
// samples at each whole minute of a long run.
func (r *benchReport) printMemory(w io.Writer) {
	who := "this process: the server, the fake WeCom and the load generator together"
	if r.ServePID != 0 {
		who = fmt.Sprintf("the server process alone, pid %d", r.ServePID)
	}
	fmt.Fprintf(w, "memory (%s): RSS %s after start-up (anon %s, file %s); RSS %s (anon %s, file %s) at the end, peak (VmHWM) %s\n",
		who, loadtest.MB(r.IdleMem.RSS), loadtest.MB(r.IdleMem.Anon), loadtest.MB(r.IdleMem.File),
		loadtest.MB(r.ServeMem.RSS), loadtest.MB(r.ServeMem.Anon), loadtest.MB(r.ServeMem.File), loadtest.MB(r.ServeMem.Peak))
	if c := r.ServeCPU; c.CPU > 0 {
		perEvent := ""
		if r.Processed > 0 {
			perEvent = fmt.Sprintf(" (%.0f CPU-µs and %.1f minor faults per event applied)", float64(c.CPU.Microseconds())/float64(r.Processed), float64(c.MinorFaults)/float64(r.Processed))
		}
		fmt.Fprintf(w, "server CPU through the serve phase (%s): %.1f s user+system, %d minor and %d major page faults%s\n", who, c.CPU.Seconds(), c.MinorFaults, c.MajorFaults, perEvent)
	}
	if len(r.MemSamples) == 0 {
		return
	}
	most := func(part func(loadtest.Memory) int64) string {
		m := slices.MaxFunc(r.MemSamples, func(a, b memSample) int { return int(part(a.Mem) - part(b.Mem)) })
		return fmt.Sprintf("%s at %.0f s", loadtest.MB(part(m.Mem)), m.At.Seconds())
	}
	fmt.Fprintf(w, "memory samples: %d, every %v from the load's start to the end of the drain; largest RSS %s, anon %s, file %s\n",
		len(r.MemSamples), memSampleEvery, most(func(m loadtest.Memory) int64 { return m.RSS }),
		most(func(m loadtest.Memory) int64 { return m.Anon }), most(func(m loadtest.Memory) int64 { return m.File }))
	next := time.Minute
	for _, s := range r.MemSamples {
		if s.At < next {
			continue
		}
		fmt.Fprintf(w, "  %3.0f min: RSS %s (anon %s, file %s)\n", s.At.Minutes(), loadtest.MB(s.Mem.RSS), loadtest.MB(s.Mem.Anon), loadtest.MB(s.Mem.File))
		for next <= s.At {
			next += time.Minute
		}
	}
}

// writeMemSamples writes the samples as tab-separated seconds, RSS, anon
// and file (MB) — for plotting the run.
func writeMemSamples(path string, samples []memSample) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	fmt.Fprintln(bw, "seconds\trss_mb\tanon_mb\tfile_mb")
	for _, s := range samples {
		fmt.Fprintf(bw, "%.1f\t%.1f\t%.1f\t%.1f\n", s.At.Seconds(), mb(s.Mem.RSS), mb(s.Mem.Anon), mb(s.Mem.File))
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// memSampleEvery is how often the serve phase's memory is read.
const memSampleEvery = time.Second

// startServeProcessFor starts the serve phase's child with o's binary and,
// for a heap profile, a profiling endpoint on a free loopback port.
func startServeProcessFor(ctx context.Context, o benchOptions, env map[string]string) (*benchServer, error) {
	debugAddr := ""
	if o.HeapProfile != "" {
		var err error
		if debugAddr, err = freeLoopbackAddr(); err != nil {
			return nil, err
		}
	}
	return startServeProcess(ctx, o.ServeBinary, env, debugAddr)
}

// listenLine reads serve's output up to its "listening on <url>" line and
// returns the URL ("" if the output ended first); the rest of the output
// is read and dropped in the background.
func listenLine(r io.Reader) string {
	lines := bufio.NewScanner(r)
	base := ""
	for lines.Scan() {
		if _, rest, ok := strings.Cut(lines.Text(), "listening on "); ok {
			base = strings.Fields(rest)[0]
			break
		}
	}
	go io.Copy(io.Discard, r)
	return base
}

// procCPU is a process's CPU time and page faults so far (/proc/<pid>/stat).
type procCPU struct {
	CPU         time.Duration // user + system
	MinorFaults int64
	MajorFaults int64
}

// readProcCPU reads it for pid (0: this process); zero when unknown.
func readProcCPU(pid int) procCPU {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return procCPU{}
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return procCPU{}
	}
	// After "pid (comm)": state ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime stime (clock ticks, 100 a second).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return procCPU{}
	}
	num := func(k int) int64 { n, _ := strconv.ParseInt(f[k], 10, 64); return n }
	const tick = 10 * time.Millisecond
	return procCPU{CPU: time.Duration(num(11)+num(12)) * tick, MinorFaults: num(7), MajorFaults: num(9)}
}

func (a procCPU) sub(b procCPU) procCPU {
	return procCPU{a.CPU - b.CPU, a.MinorFaults - b.MinorFaults, a.MajorFaults - b.MajorFaults}
}
