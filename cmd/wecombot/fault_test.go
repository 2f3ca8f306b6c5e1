package main

// Fault tests: the real binary, killed with SIGKILL at random points under
// load and restarted on the same data directory, must lose no acknowledged
// event and owe no message twice. They run in `go test` (and so in .ci/run),
// bounded to well under a minute.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/retry"
	"github.com/wecombot/wecombot/bot/wecom"
	"github.com/wecombot/wecombot/bot/wecomapi"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
	"github.com/wecombot/wecombot/storage/postgres/pgtest"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	// The outbox retries ten times sooner than in production (100 ms
	// doubling, jittered): outage and retry tests wait on their conditions
	// for seconds, not minutes.
	outboxRetry = retry.Default.Scaled(0.1)
	code := m.Run()
	pgtest.Stop()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// wecombotBinary builds the command once per test run.
func wecombotBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "wecombot-fault-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "wecombot")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc is one `wecombot serve` subprocess.
type proc struct {
	cmd    *exec.Cmd
	base   string
	stderr *syncBuffer
	exited chan error
}

func startProc(t *testing.T, env map[string]string) *proc {
	t.Helper()
	cmd := exec.Command(wecombotBinary(t), "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "WECOMBOT_LISTEN=127.0.0.1:0", "WECOMBOT_LOG_FORMAT=json"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, rest, ok := strings.Cut(sc.Text(), "listening on "); ok {
				found <- strings.Fields(rest)[0]
			}
		}
		close(found)
	}()
	go func() { p.exited <- cmd.Wait() }()
	select {
	case p.base = <-found:
	case <-time.After(20 * time.Second):
	}
	if p.base == "" {
		p.kill()
		t.Fatalf("wecombot serve did not start:\n%s", p.stderr)
	}
	t.Cleanup(p.kill)
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
		}
	}
}

// term stops the process gracefully and returns its exit error.
func (p *proc) term(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("graceful stop: %v\n%s", err, p.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("wecombot did not stop within 15 s of SIGTERM")
	}
}

func (p *proc) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(p.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// drained waits until every stored event is processed and no outbox action is due.
func (p *proc) drained(t *testing.T, timeout time.Duration) map[string]any {
	t.Helper()
	var st map[string]any
	eventuallyT(t, "the event log and outbox to drain", timeout, func() bool {
		st = map[string]any{}
		p.getJSON(t, "/api/v1/status", &st)
		return num(st, "events", "pending") == 0 && nothingDue(st)
	})
	return st
}

// signed is one callback as WeCom would (re)deliver it.
// signed is one contact add's callback. It is sealed at its first
// delivery, not before — WeCom sends the callback when the add happens, and
// its CreateTime starts the welcome code's 20 s — and every later delivery
// (WeCom's retries) repeats exactly those bytes.
type signed struct {
	user, code  string
	acked       bool
	deliveries  int
	firstSentAt time.Time

	seal func() (string, []byte)
	once sync.Once
	path string
	body []byte
}

// req is the callback's path and body, sealed on the first call.
func (r *signed) req() (path string, body []byte) {
	r.once.Do(func() {
		r.path, r.body = r.seal()
	})
	return r.path, r.body
}

func signAdds(t *testing.T, c *wecom.Crypter, n int, prefix string) []*signed {
	t.Helper()
	out := make([]*signed, n)
	for i := range out {
		ev := callbackEvent{Type: "contact.add", Staff: "zhangsan", State: "xhs",
			ExternalUser: fmt.Sprintf("wm_%s_%03d", prefix, i), WelcomeCode: fmt.Sprintf("WC-%s-%03d", prefix, i)}
		out[i] = &signed{user: ev.ExternalUser, code: ev.WelcomeCode,
			seal: func() (string, []byte) { return signEvent(t, c, ev) }}
	}
	return out
}

// deliver posts each request until it is acknowledged or stop closes, with
// concurrency senders; it returns when all are acked or stop closed.
func deliver(base string, reqs []*signed, concurrency int, stop <-chan struct{}) {
	client := &http.Client{Timeout: 5 * time.Second}
	work := make(chan *signed)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				mu.Lock()
				r.deliveries++
				if r.firstSentAt.IsZero() {
					r.firstSentAt = time.Now()
				}
				mu.Unlock()
				path, body := r.req()
				resp, err := client.Post(base+path, "text/xml", bytes.NewReader(body))
				if err != nil {
					continue // the server died mid-request: WeCom would retry later
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					r.acked = true
					mu.Unlock()
				}
			}
		}()
	}
	defer func() { close(work); wg.Wait() }()
	for _, r := range reqs {
		mu.Lock()
		done := r.acked
		mu.Unlock()
		if done {
			continue
		}
		select {
		case work <- r:
		case <-stop:
			return
		}
	}
}

// TestKilledUnderLoadLosesNothingAndSendsOnce kills `wecombot serve` with
// SIGKILL at random points while contact adds arrive, restarts it on the
// same data directory (WeCom re-delivering whatever was not acknowledged,
// and some of what was), and then checks: every add is in the log exactly
// once and processed, each owed exactly one welcome action, and the fake
// WeCom accepted exactly one welcome per code. A second call for a code is
// allowed only for a send that was in flight when the process died (the
// outbox marks a send after WeCom answers; no API can make that atomic),
// and WeCom itself refuses the repeat (41051), so the member sees one.
func TestKilledUnderLoadLosesNothingAndSendsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, t.TempDir())
	env["WECOMBOT_LOG_LEVEL"] = "warn"
	// Build the binary before signing: the adds carry their CreateTime, and
	// a welcome code is valid for 20 s from it, so a cold build (tens of
	// seconds with the rest of the suite compiling) must not eat the window.
	wecombotBinary(t)
	const rounds, perRound = 5, 250
	reqs := signAdds(t, c, rounds*perRound, "kill")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))

	var kills []time.Time
	for round := range rounds {
		p := startProc(t, env)
		stop := make(chan struct{})
		done := make(chan struct{})
		// This round's new adds plus whatever earlier rounds left unacknowledged.
		batch := reqs[:perRound*(round+1)]
		go func() { deliver(p.base, batch, 16, stop); close(done) }()
		// WeCom re-delivers a few requests it already got a 200 for.
		go func() {
			for _, r := range reqs[:10*round] {
				path, body := r.req()
				if resp, err := http.Post(p.base+path, "text/xml", bytes.NewReader(body)); err == nil {
					resp.Body.Close()
				}
			}
		}()
		time.Sleep(time.Duration(20+rng.IntN(200)) * time.Millisecond)
		p.kill()
		kills = append(kills, time.Now()) // the process is gone: nothing it sends arrives later
		close(stop)
		<-done
	}

	p := startProc(t, env)
	deliver(p.base, reqs, 16, nil)
	st := p.drained(t, 30*time.Second)
	t.Logf("after %d kills: %v delivery attempts for %d adds; status events=%v outbox=%v", len(kills), totalDeliveries(reqs), len(reqs), st["events"], st["outbox"])

	// Every add is acknowledged, in the log once, processed, none failed.
	seen := p.contactAdds(t)
	if num(st, "events", "failed") != 0 {
		t.Errorf("events failed: %v", st["events"])
	}
	for _, r := range reqs {
		if !r.acked {
			t.Errorf("%s never acknowledged", r.user)
		}
		if seen[r.user] != 1 {
			t.Errorf("%s is in the log %d times", r.user, seen[r.user])
		}
	}

	repeats := checkWelcomes(t, p, fake, reqs, kills)
	t.Logf("%d welcome codes sent a second time (in flight at a kill, refused by WeCom as used)", repeats)
	p.term(t)
}

// checkWelcomes checks one welcome action per add in the outbox (read
// through p) and one send_welcome_msg per code at the fake WeCom, a repeat
// allowed only for a send in flight when a process died (kills: when each
// was known dead). It returns how many codes were sent a second time.
func checkWelcomes(t *testing.T, p *proc, fake *fakewecom.Server, reqs []*signed, kills []time.Time) int {
	t.Helper()
	// One welcome action per add in the outbox.
	owed := map[string]int{}
	for cursor := ""; ; {
		var page struct {
			Actions    []bot.Action `json:"actions"`
			NextCursor string       `json:"next_cursor"`
		}
		p.getJSON(t, fmt.Sprintf("/api/v1/outbox?cursor=%s&limit=1000", cursor), &page)
		for _, a := range page.Actions {
			if a.Kind == bot.ActionWelcome {
				var w bot.WelcomeMessage
				_ = json.Unmarshal(a.Payload, &w)
				owed[w.WelcomeCode]++
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	for _, r := range reqs {
		if owed[r.code] != 1 {
			t.Errorf("%s: %d welcome actions, want 1", r.code, owed[r.code])
		}
	}

	// The fake WeCom: every code delivered; repeats only for sends in flight at a kill.
	calls := map[string][]time.Time{}
	for _, call := range fake.Calls(fakewecom.APISendWelcomeMsg) {
		code, _ := call.Body["welcome_code"].(string)
		calls[code] = append(calls[code], call.Time)
	}
	repeats := 0
	for _, r := range reqs {
		times := calls[r.code]
		if len(times) == 0 {
			t.Errorf("%s: welcome never sent", r.code)
			continue
		}
		if len(times) > 1 {
			repeats++
			if !inFlightAtKill(times[0], kills) {
				t.Errorf("%s sent %d times, first at %s, not in flight at any kill %v", r.code, len(times), times[0].Format("15:04:05.000"), kills)
			}
		}
	}
	if len(calls) != len(reqs) {
		t.Errorf("welcomes for %d codes, want %d", len(calls), len(reqs))
	}
	return repeats
}

// inFlightAtKill: a send that reached WeCom shortly before the process died
// may not have been recorded as sent. kills are the times the process was
// known dead (SIGKILL sent and the exit reaped).
func inFlightAtKill(at time.Time, kills []time.Time) bool {
	for _, k := range kills {
		// k is taken after the exit was reaped; a request the process had
		// already written can still be read and recorded by the fake a
		// moment later (long on a loaded machine), so "in flight" reaches
		// half a second past k. A resend by the next process comes later:
		// it starts, replays its log and claims the action first.
		if at.Before(k.Add(500*time.Millisecond)) && k.Sub(at) < 2*time.Second {
			return true
		}
	}
	return false
}

func totalDeliveries(reqs []*signed) int {
	n := 0
	for _, r := range reqs {
		n += r.deliveries
	}
	return n
}

// flakyWeCom sits in front of the fake WeCom and, while failing, answers
// every call but gettoken with the chosen fault.
type flakyWeCom struct {
	mu      sync.Mutex
	mode    string // "", "errcode-1", "errcode45009", "http503", "timeout", "leaky48002"
	faulted map[string]int
	// welcomes records when each welcome code was sent to WeCom (faulted or not).
	welcomes map[string][]time.Time
	next     http.Handler
}

func (f *flakyWeCom) set(mode string) {
	f.mu.Lock()
	f.mode = mode
	f.mu.Unlock()
}

func (f *flakyWeCom) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/send_welcome_msg") {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req struct {
			Code string `json:"welcome_code"`
		}
		_ = json.Unmarshal(body, &req)
		f.mu.Lock()
		if f.welcomes == nil {
			f.welcomes = map[string][]time.Time{}
		}
		f.welcomes[req.Code] = append(f.welcomes[req.Code], time.Now())
		f.mu.Unlock()
	}
	f.mu.Lock()
	mode := f.mode
	if mode != "" && !strings.HasSuffix(r.URL.Path, "/gettoken") {
		f.faulted[mode]++
	}
	f.mu.Unlock()
	if mode == "" || strings.HasSuffix(r.URL.Path, "/gettoken") {
		f.next.ServeHTTP(w, r)
		return
	}
	switch mode {
	case "errcode-1":
		_, _ = io.WriteString(w, `{"errcode":-1,"errmsg":"system busy"}`)
	case "errcode45009":
		_, _ = io.WriteString(w, `{"errcode":45009,"errmsg":"api freq out of limit"}`)
	case "http503":
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
	case "leaky48002":
		// A final refusal whose errmsg quotes the app's secret back.
		_, _ = io.WriteString(w, `{"errcode":48002,"errmsg":"api forbidden for app secret e2e-secret, hint: [leak]"}`)
	case "timeout":
		// Hold the call past the client's timeout (wecomapi.DefaultTimeout,
		// 10 s) so the client really times out.
		select {
		case <-r.Context().Done():
		case <-time.After(wecomapi.DefaultTimeout + time.Second):
		}
	}
}

// TestWeComOutageDrainsWithoutDuplicates: WeCom answers -1, 45009, 503 or
// nothing at all for a while (the issue says a minute; the test shortens the
// outage to a few seconds of each kind, which is the same to the outbox: it
// only sees failed attempts and backs off), then recovers. Every owed
// mark_tag is delivered exactly once afterwards. Welcomes, whose code WeCom
// keeps for 20 s only, are either sent once or given up as too late — never
// sent twice.
func TestWeComOutageDrainsWithoutDuplicates(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs a multi-second outage")
	}
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, t.TempDir())
	flaky := &flakyWeCom{faulted: map[string]int{}}
	// The fake's own server answers behind the flaky front.
	front := newProxy(t, fake.URL(), flaky)
	env["WECOM_API_BASE"] = front
	env["WECOMBOT_LOG_LEVEL"] = "warn"
	in := startServe(t, env)

	// Prime the token so the outage hits the API calls themselves.
	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_before", WelcomeCode: "WC-BEFORE"}, 1)
	eventuallyT(t, "the first welcome", 10*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) == 1 })

	members := []string{}
	for i, mode := range []string{"errcode-1", "errcode45009", "http503", "timeout"} {
		flaky.set(mode)
		for j := range 3 {
			id := fmt.Sprintf("wm_out_%d_%d", i, j)
			members = append(members, id)
			in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: id, State: "xhs", WelcomeCode: "WC-" + id}, 1)
		}
		// The throttle holds an API after an overload answer and probes it
		// with one call per hold: each fault is answered by a probe or two.
		eventuallyT(t, "a call answered with "+mode, 30*time.Second, func() bool {
			flaky.mu.Lock()
			defer flaky.mu.Unlock()
			return flaky.faulted[mode] > 0
		})
	}
	flaky.set("")
	flaky.mu.Lock()
	t.Logf("faulted calls during the outage: %v", flaky.faulted)
	for _, mode := range []string{"errcode-1", "errcode45009", "http503", "timeout"} {
		if flaky.faulted[mode] == 0 {
			t.Errorf("the outage never answered %s: the test proves nothing about it", mode)
		}
	}
	flaky.mu.Unlock()

	// After recovery: every member's tags are marked exactly once.
	eventuallyT(t, "mark_tag for every member after recovery", 90*time.Second, func() bool {
		got := map[string]int{}
		for _, call := range fake.Calls(fakewecom.APIMarkTag) {
			if id, _ := call.Body["external_userid"].(string); id != "" {
				got[id]++
			}
		}
		for _, m := range members {
			if got[m] == 0 {
				return false
			}
		}
		return true
	})
	// A duplicate would be out once the outbox drained. A probe that timed
	// out holds its API for the client timeout and a backoff after it, so
	// the drain may take tens of seconds after recovery.
	eventuallyT(t, "the pipeline drained", 60*time.Second, func() bool {
		st := in.status(t)
		return num(st, "events", "pending") == 0 && nothingDue(st)
	})
	marks := map[string]int{}
	for _, call := range fake.Calls(fakewecom.APIMarkTag) {
		id, _ := call.Body["external_userid"].(string)
		marks[id]++
	}
	for _, m := range members {
		if marks[m] != 1 {
			t.Errorf("%s: mark_tag reached WeCom %d times, want 1", m, marks[m])
		}
	}
	welcomes := map[string]int{}
	for _, call := range fake.Calls(fakewecom.APISendWelcomeMsg) {
		code, _ := call.Body["welcome_code"].(string)
		welcomes[code]++
	}
	for code, n := range welcomes {
		if n > 1 {
			t.Errorf("welcome %s reached WeCom %d times", code, n)
		}
	}
	st := in.status(t)
	t.Logf("outbox after recovery: %v; welcomes delivered %d of %d", st["outbox"], len(welcomes)-1, len(members))
}

// TestBinaryWelcomeRetriesBackOffUnder45009 covers defect 3 of issue 15 on
// the real binary: WeCom answers 45009 to everything for 6 s while ten
// customers are added. The throttle holds send_welcome_msg after the first
// answers and probes it, so WeCom sees a handful of calls, not each code's
// retries every ~150 ms; a code's tries are never closer than the policy's
// floor; when WeCom recovers, every welcome still inside its 20 s window
// goes out, once.
func TestBinaryWelcomeRetriesBackOffUnder45009(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, t.TempDir())
	flaky := &flakyWeCom{faulted: map[string]int{}}
	env["WECOM_API_BASE"] = newProxy(t, fake.URL(), flaky)
	env["WECOMBOT_LOG_LEVEL"] = "error"
	wecombotBinary(t)
	p := startProc(t, env)
	// Prime the token and the tag library.
	if code, body := p.postCallback(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_prime", WelcomeCode: "WC-PRIME"}); code != http.StatusOK {
		t.Fatalf("add: %d %s", code, body)
	}
	eventuallyT(t, "the first welcome", 10*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) == 1 })

	flaky.set("errcode45009")
	start := time.Now()
	var codes []string
	for i := range 10 {
		id := fmt.Sprintf("wm_limited_%d", i)
		codes = append(codes, "WC-"+id)
		if code, body := p.postCallback(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: id, WelcomeCode: "WC-" + id}); code != http.StatusOK {
			t.Fatalf("add: %d %s", code, body)
		}
	}
	time.Sleep(6 * time.Second) // the rate limit lasts 6 s: what WeCom sees during it is the point
	flaky.set("")
	flaky.mu.Lock()
	limited := flaky.faulted["errcode45009"]
	flaky.mu.Unlock()
	perSec := float64(limited) / time.Since(start).Seconds()
	t.Logf("under 45009: %d calls to WeCom in %.1f s (%.1f/s) for 10 welcomes and their tags", limited, time.Since(start).Seconds(), perSec)
	if limited > 30 {
		t.Errorf("%d calls in 6 s of 45009: the outbox does not back off for the whole API", limited)
	}
	eventuallyT(t, "every welcome delivered after the limit lifts", 14*time.Second, func() bool {
		return fake.Count(fakewecom.APISendWelcomeMsg) == 11
	})
	flaky.mu.Lock()
	defer flaky.mu.Unlock()
	for _, code := range codes {
		times := flaky.welcomes[code]
		for i := 1; i < len(times); i++ {
			if gap := times[i].Sub(times[i-1]); gap < 450*time.Millisecond {
				t.Errorf("%s tried %v after its previous try: faster than the retry floor", code, gap)
			}
		}
		if len(times) > 6 {
			t.Errorf("%s tried %d times", code, len(times))
		}
	}
	for _, call := range fake.Calls(fakewecom.APISendWelcomeMsg) {
		if code, _ := call.Body["welcome_code"].(string); code != "WC-PRIME" && !slices.Contains(codes, code) {
			t.Errorf("unexpected welcome %s", code)
		}
	}
}

// newProxy serves f in front of target, which gets the calls f passes on.
func newProxy(t *testing.T, target string, f *flakyWeCom) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	f.next = httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestDataFileLockedOrCorruptExitCodes: the real binary refuses a data
// directory another process is serving (exit 3) and a corrupt data file
// (exit 4), fast, each with a message naming the fix.
func TestDataFileLockedOrCorruptExitCodes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	first := startProc(t, map[string]string{"WECOMBOT_DATA_DIR": dir})
	cases := []struct {
		name     string
		dir      string
		code     int
		messages []string
	}{
		{"locked by another process", dir, exitLocked, []string{"another wecombot is using", "WECOMBOT_DATA_DIR"}},
		{"corrupt", corruptDataDir(t), exitStore, []string{"not a usable wecombot database", "restore it from a backup"}},
		{"not a directory", filepath.Join(corruptDataDir(t), "wecombot.db"), exitStore, []string{"data directory"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(wecombotBinary(t), "serve")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "WECOMBOT_LISTEN=127.0.0.1:0", "WECOMBOT_DATA_DIR=" + tc.dir}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tc.code {
				t.Fatalf("exit %v, want code %d\n%s", err, tc.code, stderr.String())
			}
			for _, m := range tc.messages {
				if !strings.Contains(stderr.String(), m) {
					t.Errorf("stderr lacks %q:\n%s", m, stderr.String())
				}
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v to fail", d)
			}
		})
	}
	// The serving process was not disturbed.
	if resp, err := http.Get(first.base + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("first server after the refused second: %v", err)
	}
	first.term(t)
}

// corruptDataDir is a data directory whose wecombot.db is garbage.
func corruptDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	garbage := bytes.Repeat([]byte("\x00corrupt page\xff"), 4096)
	if err := os.WriteFile(filepath.Join(dir, "wecombot.db"), garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}
