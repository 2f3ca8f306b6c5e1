// Package loadtest drives HTTP load at a callback endpoint for `wecombot
// bench` and the benchmarks: a fixed number of concurrent senders (closed
// loop) or a fixed request rate (open loop) for a bounded time, with every
// request's latency kept for percentiles. It also holds the bare handler the
// real server is compared with, and the process's memory figures.
package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wecombot/wecombot/bot/wecom"
)

// Request is one prepared POST: path with query, body, and what it carries.
type Request struct {
	Path string
	Body []byte
	// Kind names the mix entry (add, join, kf).
	Kind string
	// Key identifies the outbound action the request owes (the welcome code
	// of an add), empty when none is timed.
	Key string
}

// Options configure one run.
type Options struct {
	// Base is the server's base URL (http://127.0.0.1:port).
	Base string
	// Bases, when set, spreads requests round-robin over several servers
	// (nodes behind one callback URL) instead of Base.
	Bases []string
	// Concurrency is the number of senders (connections).
	Concurrency int
	// Duration bounds the run.
	Duration time.Duration
	// Rate, when > 0, paces requests at this many per second (open loop);
	// latency then counts from the scheduled send time, so a server that
	// falls behind is charged for the queueing it causes.
	Rate float64
	// Count, with Rate, sends exactly this many requests (a burst: Count
	// spread over Count/Rate seconds) and waits for their answers (up to
	// Duration plus 30 s) instead of stopping at Duration.
	Count int
	// Next builds request number i; it runs on the sender goroutines.
	Next func(i uint64) Request
	// Sent is called just before a request goes out (optional).
	Sent func(r Request, at time.Time)
	// Acked is called for every request answered 200 (optional).
	Acked func(r Request, at time.Time)
}

// Result is what one run measured.
type Result struct {
	Sent, Acked, Failed int
	Elapsed             time.Duration
	// Latencies of acknowledged requests, sorted ascending.
	Latencies []time.Duration
	// FirstError is the first failure seen, for the report.
	FirstError string
	// CPU is the CPU time (user + system) this process used during the
	// run — the load generator's and whatever else runs in it; 0 where
	// the platform does not say.
	CPU time.Duration
}

// Add merges run o into r, as if one run had done both (slices of one
// phase taking turns with others).
func (r *Result) Add(o Result) {
	r.Sent += o.Sent
	r.Acked += o.Acked
	r.Failed += o.Failed
	r.Elapsed += o.Elapsed
	r.CPU += o.CPU
	r.Latencies = append(r.Latencies, o.Latencies...)
	slices.Sort(r.Latencies)
	if r.FirstError == "" {
		r.FirstError = o.FirstError
	}
}

// CPUPerAck is the process's CPU time per acknowledged request.
func (r Result) CPUPerAck() time.Duration {
	if r.Acked == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Acked)
}

// RPS is acknowledged requests per second.
func (r Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Acked) / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted durations.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// Client returns an HTTP client with enough idle connections for n senders.
func Client(n int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        n * 2,
			MaxIdleConnsPerHost: n * 2,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// Run sends load as configured and returns what it measured.
func Run(ctx context.Context, o Options) Result {
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	client := Client(o.Concurrency)
	defer client.CloseIdleConnections()
	limit := o.Duration
	if o.Count > 0 && o.Rate > 0 {
		limit += 30 * time.Second // the burst's last requests get their answers
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	// In rate mode a pacer hands out scheduled send times; senders that find
	// none waiting block, and a full channel means the senders are behind.
	var slots chan time.Time
	if o.Rate > 0 {
		slots = make(chan time.Time, o.Concurrency*4)
		go func() {
			defer close(slots)
			start := time.Now()
			interval := time.Duration(float64(time.Second) / o.Rate)
			tick := time.NewTicker(min(interval, time.Millisecond))
			defer tick.Stop()
			var issued int64
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-tick.C:
					due := int64(now.Sub(start) / interval)
					if o.Count > 0 {
						if issued >= int64(o.Count) {
							return
						}
						due = min(due, int64(o.Count))
					}
					for ; issued < due; issued++ {
						select {
						case slots <- start.Add(time.Duration(issued) * interval):
						case <-ctx.Done():
							return
						}
					}
				}
			}
		}()
	}

	var seq atomic.Uint64
	type part struct {
		sent, acked, failed int
		lat                 []time.Duration
		firstErr            string
	}
	parts := make([]part, o.Concurrency)
	var wg sync.WaitGroup
	cpu0 := ProcessCPU()
	start := time.Now()
	for w := range o.Concurrency {
		wg.Add(1)
		go func(p *part) {
			defer wg.Done()
			for {
				var scheduled time.Time
				if slots != nil {
					var ok bool
					select {
					case scheduled, ok = <-slots:
						if !ok {
							return
						}
					case <-ctx.Done():
						return
					}
				} else if ctx.Err() != nil {
					return
				}
				r := o.Next(seq.Add(1))
				now := time.Now()
				if scheduled.IsZero() {
					scheduled = now
				}
				if o.Sent != nil {
					o.Sent(r, now)
				}
				p.sent++
				base := o.Base
				if len(o.Bases) > 0 {
					base = o.Bases[p.sent%len(o.Bases)]
				}
				code, err := post(client, base+r.Path, r.Body)
				done := time.Now()
				if err == nil && code == http.StatusOK {
					p.acked++
					p.lat = append(p.lat, done.Sub(scheduled))
					if o.Acked != nil {
						o.Acked(r, done)
					}
					continue
				}
				if ctx.Err() != nil && err != nil {
					p.sent-- // cut off by the end of the run, not a failure
					return
				}
				p.failed++
				if p.firstErr == "" {
					if err != nil {
						p.firstErr = err.Error()
					} else {
						p.firstErr = "HTTP " + strconv.Itoa(code)
					}
				}
			}
		}(&parts[w])
	}
	wg.Wait()
	res := Result{Elapsed: time.Since(start), CPU: ProcessCPU() - cpu0}
	for _, p := range parts {
		res.Sent += p.sent
		res.Acked += p.acked
		res.Failed += p.failed
		res.Latencies = append(res.Latencies, p.lat...)
		if res.FirstError == "" {
			res.FirstError = p.firstErr
		}
	}
	slices.Sort(res.Latencies)
	return res
}

func post(c *http.Client, url string, body []byte) (int, error) {
	// A request with no context: a run's end must not cut an exchange in
	// half (an acknowledged event whose 200 we dropped would look lost).
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Bare is the baseline the real callback handler is compared with: it
// verifies the signature, decrypts and answers 200, and does nothing else
// (no parsing, no storage, no fsync).
func Bare(c *wecom.Crypter) http.Handler { return Peer(c, nil) }

// Peer is Bare plus store: the callback is verified and decrypted, then
// store is given the plaintext before the 200 (the PostgreSQL peer: one
// INSERT per request). A failing store answers 500.
func Peer(c *wecom.Crypter, store func(ctx context.Context, plain []byte) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		plain, err := c.OpenXML(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), body)
		if err != nil {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		if store != nil {
			if err := store(r.Context(), plain); err != nil {
				http.Error(w, "store: "+err.Error(), http.StatusInternalServerError)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	})
}

// Memory is a process's resident memory from /proc/<pid>/status.
type Memory struct {
	RSS, Peak int64 // VmRSS and VmHWM, bytes
	// Anon is heap and stacks (RssAnon); File is mapped file pages
	// (RssFile: the bbolt file's pages the process touched, reclaimable).
	Anon, File int64
}

// ReadMemory reads this process's VmRSS, VmHWM, RssAnon and RssFile
// (Linux only; zero elsewhere).
func ReadMemory() Memory { return readMemory("/proc/self/status") }

// ReadMemoryOf is ReadMemory for process pid (zero when it is gone).
func ReadMemoryOf(pid int) Memory { return readMemory("/proc/" + strconv.Itoa(pid) + "/status") }

func readMemory(path string) Memory {
	f, err := os.Open(path)
	if err != nil {
		return Memory{}
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[0], 10, 64)
		switch name {
		case "VmRSS":
			m.RSS = kb << 10
		case "VmHWM":
			m.Peak = kb << 10
		case "RssAnon":
			m.Anon = kb << 10
		case "RssFile":
			m.File = kb << 10
		}
	}
	return m
}

// MB formats bytes as mebibytes.
func MB(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

// Ms formats a duration in milliseconds with two decimals.
func Ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
