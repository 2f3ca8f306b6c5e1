package main

// A manual measurement, not a suite test: WECOMBOT_MEASURE_OUTAGE=1 go test
// ./cmd/wecombot -run TestMeasureOutage -v -timeout 10m. It runs the built
// binary at 50 adds/s against a fake WeCom that is down for 60 s (every call
// but gettoken answers errcode -1, then HTTP 503), then rate-limited (45009
// beyond 20 calls/s per API) for 30 s, and logs the calls per second WeCom
// saw and how many welcomes went out inside their 20 s window. Figures are
// in docs/performance.md and the helper's note.

import (
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// measuredWeCom counts every call that reaches it (but gettoken) per
// second, and fails them as its mode says.
type measuredWeCom struct {
	mu     sync.Mutex
	mode   string // "", "down-1", "down503", "limit45009"
	perSec map[int64]int
	apiSec map[string]int // api|second → calls, for the rate limit
	limit  int
	next   http.Handler
}

func (m *measuredWeCom) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/gettoken") {
		m.next.ServeHTTP(w, r)
		return
	}
	now := time.Now()
	sec := now.Unix()
	m.mu.Lock()
	m.perSec[sec]++
	key := r.URL.Path + "|" + time.Unix(sec, 0).String()
	m.apiSec[key]++
	over := m.apiSec[key] > m.limit
	mode := m.mode
	m.mu.Unlock()
	switch {
	case mode == "down-1":
		_, _ = io.WriteString(w, `{"errcode":-1,"errmsg":"system busy"}`)
	case mode == "down503":
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
	case mode == "limit45009" && over:
		_, _ = io.WriteString(w, `{"errcode":45009,"errmsg":"api freq out of limit"}`)
	default:
		m.next.ServeHTTP(w, r)
	}
}

func (m *measuredWeCom) set(mode string) {
	m.mu.Lock()
	m.mode = mode
	m.mu.Unlock()
}

// rate is the mean calls per second over [from, to).
func (m *measuredWeCom) rate(from, to time.Time) (mean float64, peak int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	total := 0
	for s := from.Unix(); s < to.Unix(); s++ {
		total += m.perSec[s]
		peak = max(peak, m.perSec[s])
	}
	return float64(total) / max(to.Sub(from).Seconds(), 1), peak
}

func TestMeasureOutage(t *testing.T) {
	if os.Getenv("WECOMBOT_MEASURE_OUTAGE") == "" {
		t.Skip("a manual measurement: set WECOMBOT_MEASURE_OUTAGE=1 (takes about 2.5 minutes)")
	}
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, t.TempDir())
	m := &measuredWeCom{perSec: map[int64]int{}, apiSec: map[string]int{}, limit: 20}
	// newProxy serves fl in front of the fake; the measuring layer goes
	// between them (fl itself stays healthy).
	fl := &flakyWeCom{faulted: map[string]int{}}
	env["WECOM_API_BASE"] = newProxy(t, fake.URL(), fl)
	m.next = fl.next
	fl.next = m
	env["WECOMBOT_LOG_LEVEL"] = "error"
	wecombotBinary(t)
	p := startProc(t, env)

	send := func(prefix string, d time.Duration) []*signed {
		var all []*signed
		tick := time.NewTicker(20 * time.Millisecond) // 50 adds/s
		defer tick.Stop()
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			<-tick.C
			reqs := signAdds(t, c, 1, prefix+"-"+time.Now().Format("150405.000"))
			all = append(all, reqs...)
			go deliver(p.base, reqs, 1, nil)
		}
		return all
	}
	// Warm: 10 s healthy.
	send("warm", 10*time.Second)
	// Outage: 30 s of -1, 30 s of 503 (60 s in all).
	m.set("down-1")
	start := time.Now()
	go func() { time.Sleep(30 * time.Second); m.set("down503") }()
	out := send("out", 60*time.Second)
	end := time.Now()
	m.set("")
	mean, peak := m.rate(start.Add(2*time.Second), end)
	t.Logf("60 s outage at 50 adds/s (%d adds): WeCom saw %.1f calls/s on average, at most %d in one second", len(out), mean, peak)
	time.Sleep(25 * time.Second) // recovery; the outage's welcome codes are past their window anyway

	// Rate limit: 45009 beyond 20 calls/s per API, 30 s at 50 adds/s.
	before := fake.Count(fakewecom.APISendWelcomeMsg)
	m.set("limit45009")
	lstart := time.Now()
	limited := send("lim", 30*time.Second)
	lend := time.Now()
	time.Sleep(22 * time.Second) // every code's window has closed
	m.set("")
	lmean, lpeak := m.rate(lstart, lend)
	codes := map[string]bool{}
	for _, call := range fake.Calls(fakewecom.APISendWelcomeMsg)[before:] {
		code, _ := call.Body["welcome_code"].(string)
		codes[code] = true
	}
	in := 0
	for _, r := range limited {
		if codes[r.code] {
			in++
		}
	}
	t.Logf("45009 beyond 20 calls/s per API, 50 adds/s for 30 s (%d adds): %d welcomes delivered in their 20 s window (%.0f%%); WeCom saw %.1f calls/s, at most %d",
		len(limited), in, 100*float64(in)/float64(max(len(limited), 1)), lmean, lpeak)
	var st map[string]any
	p.getJSON(t, "/api/v1/status", &st)
	t.Logf("outbox at the end: %v", st["outbox"])
	p.term(t)
}
