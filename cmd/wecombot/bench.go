package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/loadtest"
	"github.com/wecombot/wecombot/bot/wecom"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
	"github.com/wecombot/wecombot/storage/bolt"
	"github.com/wecombot/wecombot/storage/postgres"
)

// benchOptions are `wecombot bench`'s flags.
type benchOptions struct {
	Duration    time.Duration
	Concurrency int
	Rate        float64
	Mix         string
	Members     int
	DataDir     string
	Drain       time.Duration
	NoBare      bool
	CPUProfile  string
	// NoAck skips the ack-path phase: the server again on the same data,
	// its engine and outbox held while the load runs, then released.
	NoAck bool
	// AckCPUProfile profiles the ack-path phase's load.
	AckCPUProfile string
	// AckTrace writes an execution trace (go tool trace) of the ack-path
	// phase's load: where requests wait, how full the cores are.
	AckTrace string
	// DatabaseURL runs the servers on PostgreSQL instead of bbolt; Nodes
	// is how many servers share it (callbacks spread round-robin).
	DatabaseURL string
	Nodes       int
	// WeComLatency delays every answer of the fake WeCom (the real one
	// takes 50–200 ms); zero answers at once.
	WeComLatency time.Duration
	// Burst, when set, sends BurstN adds evenly over BurstOver (a livestream
	// spike) instead of --duration/--rate, and the report gives the share
	// of welcomes that reached WeCom inside the code's 20 s window.
	BurstN    int
	BurstOver time.Duration
	// PeerDatabaseURL, when set, adds a third phase: the bare handler plus
	// one PostgreSQL INSERT of the decrypted callback per request (the
	// common way to make a callback durable), in a table of its own.
	PeerDatabaseURL string
	// ServeProcess runs the serve phase's server as a child process (this
	// binary's serve, or ServeBinary's), so its memory is measured alone.
	ServeProcess bool
	ServeBinary  string
	// HeapProfile, when set, receives the server's heap profile at the end
	// of the serve phase's load; MemSamples its memory, read every second.
	HeapProfile string
	MemSamples  string
}

// welcomeWindow is how long a welcome code is usable after the add (WeCom:
// 20 s); a welcome reaching WeCom later is refused.
const welcomeWindow = 20 * time.Second

// parseBurst reads --burst N/10s: N adds spread evenly over the duration.
func parseBurst(s string) (n int, over time.Duration, err error) {
	num, dur, ok := strings.Cut(s, "/")
	n, nerr := strconv.Atoi(strings.TrimSpace(num))
	over, derr := time.ParseDuration(strings.TrimSpace(dur))
	if !ok || nerr != nil || derr != nil || n < 1 || n > 1_000_000 || over <= 0 || over > time.Hour {
		return 0, 0, fmt.Errorf("--burst %q: want N/duration like 3000/10s (N in [1, 1000000], duration in (0, 1h])", s)
	}
	return n, over, nil
}

// benchMix is the weighted list of callback kinds a run sends.
type benchMix []string

func parseMix(s string) (benchMix, error) {
	var mix benchMix
	for _, part := range strings.Split(s, ",") {
		name, weight, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(weight)
		if !ok || err != nil || n < 0 || n > 100 {
			return nil, fmt.Errorf("--mix %q: want kind=weight,… with weights 0–100 (kinds: add, join, kf)", s)
		}
		switch name {
		case "add", "join", "kf":
		default:
			return nil, fmt.Errorf("--mix: unknown kind %q (kinds: add, join, kf)", name)
		}
		for range n {
			mix = append(mix, name)
		}
	}
	if len(mix) == 0 {
		return nil, fmt.Errorf("--mix %q: all weights are zero", s)
	}
	return mix, nil
}

// benchReport is what a bench run measured, for printing and for Go benchmarks.
type benchReport struct {
	Opts     benchOptions
	Members  int
	DBBytes  int64
	Preload  time.Duration
	Startup  time.Duration
	IdleMem  loadtest.Memory // after start-up, before load
	Serve    loadtest.Result
	ServeMem loadtest.Memory // after the load and the drain
	Drained  time.Duration   // from the end of the load until the log and outbox were empty
	DrainOK  bool
	Adds     int             // acknowledged contact adds (welcomes owed)
	Welcomes []time.Duration // event sent → fake WeCom got send_welcome_msg, sorted
	Expired  int             // send_welcome_msg calls the fake refused: code older than 20 s
	Bare     loadtest.Result
	Peer     loadtest.Result
	// Ack is the ack-path phase: callbacks verified, logged durably and
	// acknowledged while the engine and outbox are held. AckHeldApplied
	// counts events applied during that load (0: they were held); after
	// the release AckApplied were applied, and AckDrain is how the
	// backlog drained.
	Ack            loadtest.Result
	AckHeldApplied int
	AckHeldPending int // events pending in the log at the release
	AckApplied     int
	AckDrain       drainResult
	APICalls       map[string]int
	// Stages are mean latencies of the pipeline's stages from /metrics.
	Stages []string
	// Processed counts events the engine applied (all nodes), from the
	// load's start to the end of the drain.
	Processed int
	// LastStatus is /api/v1/status when the drain timed out.
	LastStatus string
	ServeLogs  string
	// ServePID is the server process's id when it ran as a child (0: in
	// this process); MemSamples its memory through the serve phase.
	ServePID   int
	MemSamples []memSample
	// ServeCPU is the server's CPU time and page faults from the load's
	// start to the end of the drain.
	ServeCPU procCPU
}

func bench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cl := newCommandLine("bench", `Usage: wecombot bench [flags]

Starts the real server in this process (the code path of serve) on a data
directory, with a fake WeCom API (the real client and outbox run against it),
and sends signed, encrypted callbacks over loopback for a fixed time. Then
it runs the same server on the same data with its engine and outbox held
(the ack path alone: verify, decrypt, parse, durable append, 200) and
measures the drain once they are released, a bare handler (verify +
decrypt + 200, nothing stored) and optionally a PostgreSQL-INSERT peer —
these three taking turns in 1 s slices, so a shared machine's load swings
reach them alike — and prints them side by side with their ratios. With
--serve-process the serve phase's server is a child process (this binary's
serve, configured by environment) and the memory figures are its own. See
docs/performance.md.`, 0, 0)
	fs := cl.fs
	var o benchOptions
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long each load phase runs")
	fs.IntVar(&o.Concurrency, "concurrency", 64, "concurrent senders (connections)")
	fs.Float64Var(&o.Rate, "rate", 0, "requests per second (open loop); 0 sends as fast as the senders can")
	fs.StringVar(&o.Mix, "mix", "add=6,join=3,kf=1", "callback mix by weight: add (contact add with welcome code), join (customer group join), kf (微信客服 message notice)")
	fs.IntVar(&o.Members, "members", 0, "members stored before the run (written directly, once; reuse with --data-dir)")
	fs.StringVar(&o.DataDir, "data-dir", "", "data directory to use and keep (default: a temporary one, removed)")
	fs.DurationVar(&o.Drain, "drain", time.Minute, "how long to wait after the load for the event log and outbox to empty")
	fs.BoolVar(&o.NoBare, "no-bare", false, "skip the bare-handler comparison")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the serve phase to this file (go tool pprof)")
	fs.BoolVar(&o.NoAck, "no-ack-path", false, "skip the ack-path phase (the server with its engine and outbox held during the load)")
	fs.StringVar(&o.AckCPUProfile, "ack-cpuprofile", "", "write a CPU profile of the ack-path phase's load to this file, and of the bare handler's to <file>.bare (the phases then run one after another, not in turns)")
	fs.StringVar(&o.AckTrace, "ack-trace", "", "write an execution trace of the ack-path phase's load to this file (go tool trace; the phases then run one after another, not in turns)")
	fs.StringVar(&o.DatabaseURL, "database-url", "", "run on this PostgreSQL database instead of bbolt (an empty one: bench writes test data into it)")
	fs.IntVar(&o.Nodes, "nodes", 1, "servers sharing the PostgreSQL database, callbacks spread round-robin (needs --database-url)")
	fs.DurationVar(&o.WeComLatency, "wecom-latency", 0, "the fake WeCom answers every call after this long (the real one: 50–200 ms)")
	fs.StringVar(&o.PeerDatabaseURL, "peer-database-url", "", "also run a peer handler that verifies, decrypts and INSERTs each callback into this PostgreSQL database (table wecombot_bench_peer, dropped after) before answering 200")
	fs.BoolVar(&o.ServeProcess, "serve-process", false, "run the serve phase's server as a child process (this binary's serve, configured by environment), so the memory figures are the server's alone, not the load generator's and the fake WeCom's")
	fs.StringVar(&o.HeapProfile, "heapprofile", "", "write the server's heap profile at the end of the serve phase's load to this file (go tool pprof); with --serve-process it comes from the child's WECOMBOT_DEBUG_LISTEN endpoint")
	fs.StringVar(&o.MemSamples, "memory-samples", "", "write the server's memory, read every second through the serve phase, to this file (tab-separated: seconds, RSS, anon, file in MB)")
	burst := fs.String("burst", "", "N/duration: send N contact adds evenly over the duration (a livestream burst, e.g. 3000/10s) instead of --duration/--rate, and report the welcomes inside WeCom's 20 s window (mix add only unless --mix is given)")
	if _, done, err := cl.parse(args, stdout, stderr); done {
		return err
	}
	if o.Duration <= 0 || o.Duration > time.Hour || o.Concurrency < 1 || o.Concurrency > 10000 || o.Rate < 0 || o.Members < 0 {
		return &exitError{exitUsage, errors.New("bench: --duration must be in (0, 1h], --concurrency in [1, 10000], --rate and --members ≥ 0")}
	}
	if *burst != "" {
		n, over, err := parseBurst(*burst)
		if err != nil {
			return &exitError{exitUsage, err}
		}
		o.BurstN, o.BurstOver = n, over
		o.NoAck = true // a burst measures welcomes, which a held engine cannot send
		o.Duration, o.Rate = over, float64(n)/over.Seconds()
		mixSet := false
		fs.Visit(func(f *flag.Flag) { mixSet = mixSet || f.Name == "mix" })
		if !mixSet {
			o.Mix = "add=1"
		}
	}
	if o.WeComLatency < 0 || o.WeComLatency > time.Minute {
		return &exitError{exitUsage, errors.New("bench: --wecom-latency must be in [0, 1m]")}
	}
	if _, err := parseMix(o.Mix); err != nil {
		return &exitError{exitUsage, err}
	}
	if o.Nodes < 1 || o.Nodes > 16 || (o.Nodes > 1 && o.DatabaseURL == "") || (o.DatabaseURL != "" && o.Members > 0) {
		return &exitError{exitUsage, errors.New("bench: --nodes must be in [1, 16] and needs --database-url (several nodes share one PostgreSQL database); --members works with bbolt only")}
	}
	rep, err := runBench(ctx, o, getenv, stderr)
	if err != nil {
		return err
	}
	rep.print(stdout)
	return nil
}

// runBench does the measuring; bench() and the Go benchmarks share it.
func runBench(ctx context.Context, o benchOptions, getenv func(string) string, progress io.Writer) (*benchReport, error) {
	mix, err := parseMix(o.Mix)
	if err != nil {
		return nil, err
	}
	rep := &benchReport{Opts: o}
	dir := o.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "wecombot-bench-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	}
	if o.Members > 0 {
		fmt.Fprintf(progress, "bench: storing %d members in %s …\n", o.Members, dir)
		start := time.Now()
		if rep.Members, err = preloadMembers(ctx, filepath.Join(dir, "wecombot.db"), o.Members); err != nil {
			return nil, err
		}
		rep.Preload = time.Since(start)
		debug.FreeOSMemory() // the preload's garbage is not the server's
	}

	// The fake WeCom keeps no call log (it would grow with the run); the
	// observer times each welcome against the add that owed it.
	fake := fakewecom.New(nil)
	defer fake.Close()
	fake.SetLatency(o.WeComLatency)
	var mu sync.Mutex
	sentAt := map[string]time.Time{}
	apiCalls := map[string]int{}
	fake.Observe(func(c fakewecom.Call) {
		mu.Lock()
		defer mu.Unlock()
		apiCalls[c.API]++
		if c.API != fakewecom.APISendWelcomeMsg {
			return
		}
		code, _ := c.Body["welcome_code"].(string)
		if t, ok := sentAt[code]; ok {
			rep.Welcomes = append(rep.Welcomes, c.Time.Sub(t))
			delete(sentAt, code)
		}
	}, false)

	keyRaw := make([]byte, 32)
	_, _ = rand.Read(keyRaw)
	const corp, token, secret = "wwbench", "benchToken", "bench-secret"
	aesKey := base64.StdEncoding.EncodeToString(keyRaw)[:43]
	crypter, err := wecom.NewCrypter(token, aesKey, corp)
	if err != nil {
		return nil, err
	}
	env := map[string]string{
		"WECOMBOT_LISTEN":     "127.0.0.1:0",
		"WECOMBOT_DATA_DIR":   dir,
		"WECOMBOT_LOG_LEVEL":  "warn",
		"WECOMBOT_LOG_FORMAT": "json",
		"WECOM_CORP_ID":       corp,
		"WECOM_AGENT_ID":      "1000002",
		"WECOM_SECRET":        secret,
		"WECOM_TOKEN":         token,
		"WECOM_AES_KEY":       aesKey,
		"WECOM_API_BASE":      fake.URL(),
		// The load's fake has no existing community to import.
		"WECOMBOT_SYNC_AT": "off",
	}
	// Tuning knobs pass through so their effect can be measured.
	for _, k := range []string{"WECOMBOT_WORKERS", "WECOMBOT_QUEUE_SIZE", "WECOMBOT_SCENARIOS", "WECOMBOT_LOG_LEVEL", "WECOMBOT_MEMORY_LIMIT", "WECOMBOT_MAP_BUDGET"} {
		if v := getenv(k); v != "" {
			env[k] = v
		}
	}
	if o.DatabaseURL != "" {
		if err := emptyDatabase(ctx, o.DatabaseURL); err != nil {
			return nil, err
		}
		env["WECOMBOT_DATABASE_URL"] = o.DatabaseURL
	}
	// startNodes starts the server(s) on the data, each stopped on return.
	var started []*benchServer
	defer func() {
		for _, s := range started {
			s.stop()
		}
	}()
	startNodes := func(hold <-chan struct{}) (srvs []*benchServer, bases []string, err error) {
		for i := 0; i < max(o.Nodes, 1); i++ {
			nodeEnv := maps.Clone(env)
			if o.Nodes > 1 {
				nodeEnv["WECOMBOT_DATA_DIR"] = filepath.Join(dir, fmt.Sprint("node-", i))
			}
			var srv *benchServer
			if hold == nil && o.ServeProcess {
				srv, err = startServeProcessFor(ctx, o, nodeEnv)
			} else {
				srv, err = startBenchServer(ctx, nodeEnv, hold)
			}
			if err != nil {
				return nil, nil, err
			}
			started = append(started, srv)
			srvs = append(srvs, srv)
			bases = append(bases, srv.base)
		}
		return srvs, bases, nil
	}
	srvs, bases, err := startNodes(nil)
	if err != nil {
		return nil, err
	}
	srv := srvs[0]
	rep.Startup = srv.startup
	rep.IdleMem, rep.ServePID = srv.memory(), srv.pid
	if fi, err := os.Stat(filepath.Join(dir, "wecombot.db")); err == nil {
		rep.DBBytes = fi.Size()
	}

	runID := randomHex(4)
	next := func(i uint64) loadtest.Request {
		kind := mix[i%uint64(len(mix))]
		ev := callbackEvent{CorpID: corp, Staff: "zhangsan", At: time.Now(),
			ExternalUser: fmt.Sprintf("wm_bench_%s_%d", runID, i)}
		r := loadtest.Request{Kind: kind}
		switch kind {
		case "add":
			ev.Type, ev.State, ev.WelcomeCode = "contact.add", "xhs", fmt.Sprintf("WC-%s-%d", runID, i)
			r.Key = ev.WelcomeCode
			fake.IssueWelcomeCode(ev.WelcomeCode) // the fake refuses it 20 s on, as WeCom does
		case "join":
			ev.Type, ev.ChatID = "group.join", "wr_bench_group_"+strconv.FormatUint(i%50, 10)
		case "kf":
			ev.Type, ev.OpenKfID, ev.MsgID = "kf", "wk_bench", fmt.Sprintf("%s-%d", runID, i)
		}
		plain, err := ev.xml()
		if err != nil {
			panic(err) // the kinds above are all known
		}
		r.Path, r.Body, err = sealedCallback(crypter, plain, ev.At)
		if err != nil {
			panic(err)
		}
		return r
	}
	stopProfile := func() {}
	if o.CPUProfile != "" {
		if stopProfile, err = startProfile(o.CPUProfile); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(progress, "bench: %v against wecombot serve (concurrency %d%s) …\n", o.Duration, o.Concurrency, rateText(o.Rate))
	processedBefore := processedBy(srvs)
	stopSampling := sampleMemory(srv, memSampleEvery)
	cpuBefore := readProcCPU(srv.pid)
	rep.Serve = loadtest.Run(ctx, loadtest.Options{
		Base: srv.base, Bases: bases, Concurrency: o.Concurrency, Duration: o.Duration, Rate: o.Rate, Count: o.BurstN, Next: next,
		Sent: func(r loadtest.Request, at time.Time) {
			if r.Key != "" {
				mu.Lock()
				sentAt[r.Key] = at
				mu.Unlock()
			}
		},
		Acked: func(r loadtest.Request, at time.Time) {
			if r.Key != "" {
				mu.Lock()
				rep.Adds++ // an acknowledged add owes a welcome
				mu.Unlock()
			}
		},
	})
	if o.HeapProfile != "" {
		if err := srv.writeHeapProfile(o.HeapProfile); err != nil {
			fmt.Fprintf(progress, "bench: heap profile: %v\n", err)
		}
	}
	d := drainServer(ctx, srv, o.Drain)
	rep.DrainOK, rep.Drained, rep.LastStatus = d.OK, d.Took, d.Last
	rep.Processed = processedBy(srvs) - processedBefore
	rep.Expired = fake.ExpiredWelcomes()
	stopProfile()
	rep.MemSamples = stopSampling()
	rep.ServeCPU = readProcCPU(srv.pid).sub(cpuBefore)
	rep.ServeMem = srv.memory()
	if o.MemSamples != "" {
		if err := writeMemSamples(o.MemSamples, rep.MemSamples); err != nil {
			return nil, err
		}
	}
	rep.Stages = srv.stageMeans()
	mu.Lock()
	slices.Sort(rep.Welcomes)
	rep.APICalls = maps.Clone(apiCalls)
	mu.Unlock()
	for _, s := range srvs {
		rep.ServeLogs += s.logs.String()
		s.stop()
	}

	// The ack path, the bare handler and the PostgreSQL peer run side by
	// side: all three servers up, the load sent to each in turn in 1 s
	// slices (one block each for a burst or with --ack-cpuprofile), so a
	// shared machine's load swings reach them alike and the ratios hold.
	type phase struct {
		name string
		res  *loadtest.Result
		opts loadtest.Options
	}
	var phases []phase
	var acks []*benchServer
	var hold chan struct{}
	if !o.NoAck {
		// The same server on the same data, its engine and outbox (and the
		// ingest log's move into bbolt) held while the load runs, so the
		// acks get the machine the way bare and the peer do; released
		// after, and the backlog drained.
		hold = make(chan struct{})
		var ackBases []string
		if acks, ackBases, err = startNodes(hold); err != nil {
			return nil, err
		}
		phases = append(phases, phase{"the ack path (engine, outbox and the move into bbolt held)", &rep.Ack, loadtest.Options{Base: acks[0].base, Bases: ackBases}})
	}
	if !o.NoBare {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		bare := &http.Server{Handler: loadtest.Bare(crypter), ReadHeaderTimeout: 5 * time.Second}
		go bare.Serve(ln)
		defer bare.Close()
		phases = append(phases, phase{"the bare handler", &rep.Bare, loadtest.Options{Base: "http://" + ln.Addr().String()}})
	}
	if o.PeerDatabaseURL != "" {
		base, stop, err := startPeer(ctx, o, crypter)
		if err != nil {
			return nil, err
		}
		defer stop()
		phases = append(phases, phase{"the PostgreSQL-insert peer", &rep.Peer, loadtest.Options{Base: base}})
	}
	slices := max(1, int(o.Duration/time.Second))
	if o.BurstN > 0 || o.AckCPUProfile != "" || o.AckTrace != "" {
		slices = 1
	}
	if len(phases) > 0 {
		names := make([]string, len(phases))
		for i, ph := range phases {
			names[i] = ph.name
		}
		fmt.Fprintf(progress, "bench: %v each against %s, in %d slices taking turns …\n", o.Duration, strings.Join(names, ", "), slices)
	}
	for k := 0; k < slices; k++ {
		for _, ph := range phases {
			lo := ph.opts
			lo.Concurrency, lo.Duration, lo.Rate, lo.Count, lo.Next = o.Concurrency, o.Duration/time.Duration(slices), o.Rate, o.BurstN, next
			if ph.res == &rep.Ack {
				lo.Count = 0 // no burst: the phase is skipped for one
			}
			// --ack-cpuprofile profiles the ack path into the file and
			// the bare handler beside it (<file>.bare), to compare.
			stopProfile = func() {}
			if path := o.AckCPUProfile; path != "" && (ph.res == &rep.Ack || ph.res == &rep.Bare) {
				if ph.res == &rep.Bare {
					path += ".bare"
				}
				if stopProfile, err = startProfile(path); err != nil {
					return nil, err
				}
			}
			if o.AckTrace != "" && ph.res == &rep.Ack {
				stopTrace, err := startTrace(o.AckTrace)
				if err != nil {
					return nil, err
				}
				stopCPU := stopProfile
				stopProfile = func() { stopTrace(); stopCPU() }
			}
			runID = randomHex(4) // every slice's callbacks are new events
			ph.res.Add(loadtest.Run(ctx, lo))
			stopProfile()
		}
	}
	if acks != nil {
		rep.AckHeldApplied = processedBy(acks)
		if st, err := acks[0].status(); err == nil {
			rep.AckHeldPending = int(jsonNum(st, "events", "pending"))
		}
		close(hold)
		rep.AckDrain = drainServer(ctx, acks[0], o.Drain)
		rep.AckApplied = processedBy(acks) - rep.AckHeldApplied
		for _, s := range acks {
			s.stop()
		}
	}
	return rep, nil
}

// startProfile starts a CPU profile into path; call stop when done.
func startProfile(path string) (stop func(), err error) {
	return startRecording(path, pprof.StartCPUProfile, pprof.StopCPUProfile)
}

// startTrace starts an execution trace into path; call stop when done.
func startTrace(path string) (stop func(), err error) {
	return startRecording(path, trace.Start, trace.Stop)
}

// startRecording creates path and starts a recording (profile or trace)
// into it; stop ends it and closes the file.
func startRecording(path string, start func(io.Writer) error, end func()) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		end()
		f.Close()
	}, nil
}

// drainResult is how a drain went: whether the event log emptied with
// nothing due in the outbox within the limit, how long that took, when
// the event log alone was empty (0: never), and the status seen last when
// the drain did not finish.
type drainResult struct {
	OK     bool
	Took   time.Duration
	Events time.Duration
	Last   string
}

// drainServer waits up to limit for srv's event log to empty with nothing
// due in the outbox.
func drainServer(ctx context.Context, srv *benchServer, limit time.Duration) drainResult {
	start := time.Now()
	deadline := start.Add(limit)
	var d drainResult
	for {
		st, err := srv.status()
		if err == nil && jsonNum(st, "events", "pending") == 0 && d.Events == 0 {
			d.Events = max(time.Since(start), time.Nanosecond)
		}
		if err == nil && d.Events > 0 && nothingDue(st) {
			d.OK, d.Took = true, time.Since(start)
			return d
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if st != nil {
				b, _ := json.Marshal(map[string]any{"events": st["events"], "outbox": st["outbox"], "pipeline": st["pipeline"]})
				d.Last = string(b)
			}
			d.Took = time.Since(start)
			return d
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startPeer starts the PostgreSQL peer: verify, decrypt, one INSERT per
// callback (a pool of --concurrency connections), then 200. stop drops
// its table and stops it.
func startPeer(ctx context.Context, o benchOptions, crypter *wecom.Crypter) (base string, stop func(), err error) {
	cfg, err := pgxpool.ParseConfig(o.PeerDatabaseURL)
	if err != nil {
		return "", nil, fmt.Errorf("bench: --peer-database-url: %w", err)
	}
	cfg.MaxConns = int32(min(o.Concurrency, 200))
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return "", nil, fmt.Errorf("bench: --peer-database-url: %w", err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS wecombot_bench_peer (id bigserial PRIMARY KEY, received_at timestamptz NOT NULL DEFAULT now(), body bytea NOT NULL)`); err != nil {
		pool.Close()
		return "", nil, fmt.Errorf("bench: peer table: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pool.Close()
		return "", nil, err
	}
	peer := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: loadtest.Peer(crypter, func(ctx context.Context, plain []byte) error {
		_, err := pool.Exec(ctx, `INSERT INTO wecombot_bench_peer (body) VALUES ($1)`, plain)
		return err
	})}
	go peer.Serve(ln)
	return "http://" + ln.Addr().String(), func() {
		_ = peer.Close()
		_, _ = pool.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS wecombot_bench_peer`)
		pool.Close()
	}, nil
}

// processedBy sums the events the servers' pipelines applied since they started.
func processedBy(srvs []*benchServer) int {
	n := 0
	for _, s := range srvs {
		if st, err := s.status(); err == nil {
			n += int(jsonNum(st, "pipeline", "processed"))
		}
	}
	return n
}

// emptyDatabase refuses a PostgreSQL database that holds events: bench
// writes test members and events, which must never land in a real bot's data.
func emptyDatabase(ctx context.Context, url string) error {
	st, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer st.Close()
	es, err := st.EventStats(ctx)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if es.LastSeq > 0 {
		return &exitError{exitUsage, errors.New("bench: the --database-url database is not empty: bench writes test data; give it a new, empty database")}
	}
	return nil
}

func rateText(rate float64) string {
	if rate <= 0 {
		return ", closed loop"
	}
	return fmt.Sprintf(", %g req/s", rate)
}

// benchServer is `wecombot serve` running in this process.
type benchServer struct {
	base    string
	startup time.Duration
	logs    *syncWriter
	stop    func()
	// pid is the server's process when it runs as a child (0: in this
	// process); debug its profiling address (WECOMBOT_DEBUG_LISTEN).
	pid   int
	debug string
}

// syncWriter keeps the first 64 KiB of the server's (warn-level) log.
type syncWriter struct {
	mu sync.Mutex
	b  []byte
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := 64<<10 - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

func startBenchServer(ctx context.Context, env map[string]string, hold <-chan struct{}) (*benchServer, error) {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	logs := &syncWriter{}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		err := serveHeld(ctx, func(k string) string { return env[k] }, pw, logs, hold)
		pw.Close()
		done <- err
	}()
	base := listenLine(pr)
	startup := time.Since(start)
	if base == "" {
		cancel()
		err := <-done
		return nil, fmt.Errorf("bench: server did not start: %v\n%s", err, logs.String())
	}
	var once sync.Once
	return &benchServer{base: base, startup: startup, logs: logs, stop: func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}}, nil
}

func (s *benchServer) status() (map[string]any, error) {
	resp, err := http.Get(s.base + "/api/v1/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status: %s", resp.Status)
	}
	return m, nil
}

// stageMeans reads the server's latency histograms and returns the mean of
// each stage: ack, receipt → processed, due → delivered per action kind,
// and the WeCom call itself.
func (s *benchServer) stageMeans() []string {
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	sums, counts := map[string]float64{}, map[string]float64{}
	var order []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, h := range []string{"wecombot_callback_seconds", "wecombot_event_process_seconds", "wecombot_action_delay_seconds", "wecombot_wecom_api_seconds"} {
			for suffix, into := range map[string]map[string]float64{"_sum": sums, "_count": counts} {
				rest, ok := strings.CutPrefix(line, h+suffix)
				if !ok {
					continue
				}
				labels, value := "", rest
				if strings.HasPrefix(rest, "{") {
					end := strings.Index(rest, "}")
					labels, value = rest[1:end], rest[end+1:]
				}
				v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
				if err != nil {
					continue
				}
				key := strings.TrimPrefix(strings.TrimSuffix(h, "_seconds"), "wecombot_")
				if labels != "" {
					key += "{" + labels + "}"
				}
				if _, seen := sums[key]; !seen {
					if _, seen := counts[key]; !seen {
						order = append(order, key)
					}
				}
				into[key] = v
			}
		}
	}
	var out []string
	for _, k := range order {
		if c := counts[k]; c > 0 {
			out = append(out, fmt.Sprintf("%s %s (n=%.0f)", k, loadtest.Ms(time.Duration(sums[k]/c*float64(time.Second))), c))
		}
	}
	return out
}

// nothingDue reports whether the outbox in a status answer holds no action
// due now (follow-ups scheduled for later don't count).
func nothingDue(st map[string]any) bool {
	ob, _ := st["outbox"].(map[string]any)
	if jsonNum(st, "outbox", "pending") == 0 {
		return true
	}
	due, _ := ob["oldest_due"].(string)
	t, err := time.Parse(time.RFC3339Nano, due)
	return err == nil && t.After(time.Now())
}

// jsonNum reads a number at path in decoded JSON (-1 when absent).
func jsonNum(m map[string]any, path ...string) float64 {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return -1
		}
		cur = mm[p]
	}
	f, ok := cur.(float64)
	if !ok {
		return -1
	}
	return f
}

// preloadMembers writes members until the store holds n, in large
// transactions (a bulk import, not the callback path); it returns how many
// the store holds.
func preloadMembers(ctx context.Context, path string, n int) (int, error) {
	st, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	have := 0
	if err := st.View(ctx, func(tx bot.Tx) error {
		have, err = tx.MemberCount()
		return err
	}); err != nil {
		return 0, err
	}
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	stages := []bot.Stage{bot.StageAware, bot.StageInterest, bot.StagePurchase, bot.StageLoyal}
	const perTx = 20000
	for have < n {
		err := st.Update(ctx, func(tx bot.Tx) error {
			for i := have; i < min(have+perTx, n); i++ {
				at := t0.Add(time.Duration(i) * time.Second)
				stage := stages[i%len(stages)]
				m := &bot.Member{
					ExternalUserID: fmt.Sprintf("wmPRELOAD%012d", i),
					Channel:        "xhs", State: "xhs",
					Follows:      []bot.Follow{{StaffID: "zhangsan", State: "xhs", AddedAt: at}},
					Tags:         []string{"渠道:小红书", "阶段:" + string(stage)},
					Stage:        stage,
					StageHistory: []bot.StageChange{{From: bot.StageNone, To: bot.StageAware, At: at, Cause: "contact.add", EventSeq: uint64(i + 1)}},
				}
				if err := tx.PutMember(m); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return have, fmt.Errorf("preload members: %w", err)
		}
		have = min(have+perTx, n)
	}
	return have, nil
}

// InWindow counts the welcomes that reached WeCom within welcomeWindow of
// their add, and their share of the welcomes owed (acknowledged adds).
func (r *benchReport) InWindow() (n int, share float64) {
	n, _ = slices.BinarySearch(r.Welcomes, welcomeWindow+1)
	if r.Adds == 0 {
		return n, 0
	}
	return n, float64(n) / float64(r.Adds)
}

func (r *benchReport) print(w io.Writer) {
	o := r.Opts
	if o.BurstN > 0 {
		fmt.Fprintf(w, "wecombot bench — burst of %d adds over %v (%.0f/s, open loop), concurrency %d, mix %s", o.BurstN, o.BurstOver, o.Rate, o.Concurrency, o.Mix)
	} else {
		fmt.Fprintf(w, "wecombot bench — %v per phase, concurrency %d%s, mix %s", o.Duration, o.Concurrency, rateText(o.Rate), o.Mix)
	}
	if o.WeComLatency > 0 {
		fmt.Fprintf(w, ", fake WeCom answering after %v", o.WeComLatency)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "machine: %d CPUs (GOMAXPROCS %d), %s/%s, %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, cpuModel())
	if o.DatabaseURL != "" {
		fmt.Fprintf(w, "store: PostgreSQL, %d node(s) on one database, callbacks spread round-robin\n", max(o.Nodes, 1))
	} else {
		fmt.Fprintln(w, "store: bbolt")
	}
	if r.Members > 0 || o.Members > 0 {
		fmt.Fprintf(w, "store: %d members, %s file", r.Members, loadtest.MB(r.DBBytes))
		if r.Preload > 0 {
			fmt.Fprintf(w, " (preloaded in %.1f s)", r.Preload.Seconds())
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "start-up: %s (serve called → listening)\n", loadtest.Ms(r.Startup))
	r.printMemory(w)
	fmt.Fprintln(w)

	// The phases side by side: serve (everything running), the ack path
	// (engine and outbox held), bare and the PostgreSQL peer, those run.
	type phase struct {
		name string
		res  *loadtest.Result
	}
	phases := []phase{{"wecombot serve", &r.Serve}}
	ack, bare, peer := !o.NoAck, !o.NoBare, o.PeerDatabaseURL != ""
	if ack {
		phases = append(phases, phase{"ack path", &r.Ack})
	}
	if bare {
		phases = append(phases, phase{"bare handler", &r.Bare})
	}
	if peer {
		phases = append(phases, phase{"bare + PG INSERT", &r.Peer})
	}
	row := func(name string, cell func(*loadtest.Result) string) {
		fmt.Fprintf(w, "%-28s", name)
		for _, p := range phases {
			v := p.name
			if cell != nil {
				v = cell(p.res)
			}
			fmt.Fprintf(w, " %16s", v)
		}
		fmt.Fprintln(w)
	}
	row("", nil)
	row("acked req/s", func(r *loadtest.Result) string { return fmt.Sprintf("%.0f", r.RPS()) })
	row("acked / sent / failed", func(r *loadtest.Result) string { return fmt.Sprintf("%d/%d/%d", r.Acked, r.Sent, r.Failed) })
	row("CPU per ack (this process)", func(r *loadtest.Result) string {
		if r.CPU <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f µs", float64(r.CPUPerAck())/float64(time.Microsecond))
	})
	for _, p := range []float64{50, 99, 100} {
		name := fmt.Sprintf("ack latency p%g", p)
		if p == 100 {
			name = "ack latency max"
		}
		row(name, func(r *loadtest.Result) string { return loadtest.Ms(loadtest.Percentile(r.Latencies, p)) })
	}
	fmt.Fprintln(w)
	ratio := func(name string, a, b *loadtest.Result, note string) {
		if b.RPS() > 0 {
			fmt.Fprintf(w, "ratio %s: %.2f (acked req/s%s)\n", name, a.RPS()/b.RPS(), note)
		}
	}
	const peerNote = "; the peer verifies, decrypts and INSERTs into PostgreSQL"
	if bare {
		ratio("serve/bare", &r.Serve, &r.Bare, "")
		if ack {
			ratio("ack/bare", &r.Ack, &r.Bare, "")
		}
	}
	if peer {
		ratio("serve/peer", &r.Serve, &r.Peer, peerNote)
		if ack {
			ratio("ack/peer", &r.Ack, &r.Peer, peerNote)
		}
		if r.Peer.FirstError != "" {
			fmt.Fprintf(w, "first peer failure: %s\n", r.Peer.FirstError)
		}
	}
	if r.Serve.FirstError != "" {
		fmt.Fprintf(w, "first serve failure: %s\n", r.Serve.FirstError)
	}
	if ack {
		if r.Ack.FirstError != "" {
			fmt.Fprintf(w, "first ack-path failure: %s\n", r.Ack.FirstError)
		}
		d := r.AckDrain
		fmt.Fprintf(w, "ack path: %d events applied while held (%d pending at the release); after it %d applied", r.AckHeldApplied, r.AckHeldPending, r.AckApplied)
		if d.Events > 0 {
			fmt.Fprintf(w, ", the event log empty in %.2f s (%.0f events/s)", d.Events.Seconds(), float64(r.AckApplied)/d.Events.Seconds())
		}
		if d.OK {
			fmt.Fprintf(w, ", event log and outbox drained in %.2f s\n", d.Took.Seconds())
		} else {
			fmt.Fprintf(w, "; NOT drained in %.2f s\n  status then: %s\n", d.Took.Seconds(), d.Last)
		}
	}
	fmt.Fprintf(w, "\nevent → welcome sent (add posted → fake WeCom got send_welcome_msg): %d of %d owed\n", len(r.Welcomes), r.Adds)
	if len(r.Welcomes) > 0 {
		fmt.Fprintf(w, "  p50 %s, p99 %s, max %s\n", loadtest.Ms(loadtest.Percentile(r.Welcomes, 50)), loadtest.Ms(loadtest.Percentile(r.Welcomes, 99)), loadtest.Ms(loadtest.Percentile(r.Welcomes, 100)))
	}
	in, share := r.InWindow()
	fmt.Fprintf(w, "welcomes inside WeCom's %v window: %d of %d owed = %.2f%%; the fake WeCom refused %d as expired\n", welcomeWindow, in, r.Adds, share*100, r.Expired)
	if busy := r.Serve.Elapsed + r.Drained; busy > 0 {
		fmt.Fprintf(w, "engine: %d events applied in %.2f s (load + drain) = %.0f events/s\n", r.Processed, busy.Seconds(), float64(r.Processed)/busy.Seconds())
	}
	drained := "drained"
	if !r.DrainOK {
		drained = "NOT drained"
	}
	fmt.Fprintf(w, "event log and outbox %s %.2f s after the load stopped\n", drained, r.Drained.Seconds())
	if r.LastStatus != "" {
		fmt.Fprintf(w, "  status then: %s\n", r.LastStatus)
	}
	if len(r.Stages) > 0 {
		fmt.Fprintf(w, "where the time goes (means from /metrics): %s\n", strings.Join(r.Stages, "; "))
	}
	names := make([]string, 0, len(r.APICalls))
	for k := range r.APICalls {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprint(w, "fake WeCom calls:")
	for _, k := range names {
		fmt.Fprintf(w, " %s=%d", k, r.APICalls[k])
	}
	fmt.Fprintln(w)
	if n := strings.Count(r.ServeLogs, "\n"); n > 0 {
		fmt.Fprintf(w, "server logged %d warnings/errors; first: %s\n", n, firstLine(r.ServeLogs))
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 300 {
		line = line[:300] + "…"
	}
	return line
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
