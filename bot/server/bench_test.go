package server

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot/loadtest"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/wecom"
	"github.com/wecombot/wecombot/storage/bolt"
)

// sealedRequests pre-builds n distinct signed add_external_contact callbacks.
func sealedRequests(b *testing.B, c *wecom.Crypter, n int) (paths []string, bodies [][]byte) {
	b.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	for i := 0; i < n; i++ {
		plain := fmt.Sprintf("<xml><ToUserName><![CDATA[wwbench]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"+
			"<CreateTime>%s</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event>"+
			"<ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID>"+
			"<ExternalUserID><![CDATA[wm_bench_%d]]></ExternalUserID><State><![CDATA[xhs]]></State>"+
			"<WelcomeCode><![CDATA[WC%d]]></WelcomeCode></xml>", ts, i, i)
		nonce := strconv.Itoa(i)
		body, sig, err := c.SealXML([]byte(plain), ts, nonce)
		if err != nil {
			b.Fatal(err)
		}
		paths = append(paths, "/wecom/callback?"+url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {nonce}}.Encode())
		bodies = append(bodies, body)
	}
	return paths, bodies
}

// BenchmarkCallbackIngest measures the acknowledged-callback path: verify,
// decrypt, parse, durable (fsync'd, group-committed) append with dedupe,
// 200. Compare with BenchmarkCallbackVerifyOnly, the bare crypto handler.
func BenchmarkCallbackIngest(b *testing.B) {
	c, err := wecom.NewCrypter("benchToken", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wwbench")
	if err != nil {
		b.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s := New(Options{Store: st, Crypter: c, Log: zerolog.Nop(), Metrics: metrics.New()})
	// Every request is a new event (retries are cheaper: see the dedupe test).
	paths, bodies := sealedRequests(b, c, b.N)
	var next, failed atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16) // WeCom delivers concurrently; group commit needs company
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)) % len(paths)
			req := httptest.NewRequest(http.MethodPost, paths[i], bytes.NewReader(bodies[i]))
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				failed.Add(1)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	if failed.Load() > 0 {
		b.Fatalf("%d requests not acknowledged", failed.Load())
	}
}

// BenchmarkCallbackVerifyOnly is the bare handler: verify + decrypt + 200, no storage.
func BenchmarkCallbackVerifyOnly(b *testing.B) {
	c, err := wecom.NewCrypter("benchToken", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wwbench")
	if err != nil {
		b.Fatal(err)
	}
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r.Body)
		if _, err := c.OpenXML(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), buf.Bytes()); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	paths, bodies := sealedRequests(b, c, 4096)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)) % len(paths)
			rec := httptest.NewRecorder()
			bare.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, paths[i], bytes.NewReader(bodies[i])))
			if rec.Code != http.StatusOK {
				b.Error(rec.Code)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkCallbackHandlerCPU is the ack path's CPU and allocations per
// callback in the server alone: one request at a time, no fsync
// (Options.NoSync) and the move into bbolt held, as in bench's ack phase.
func BenchmarkCallbackHandlerCPU(b *testing.B) {
	c, err := wecom.NewCrypter("benchToken", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wwbench")
	if err != nil {
		b.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	release := make(chan struct{})
	defer close(release)
	st.HoldMoves(release)
	s := New(Options{Store: st, Crypter: c, Log: zerolog.Nop(), Metrics: metrics.New()})
	paths, bodies := sealedRequests(b, c, b.N)
	reqs := make([]*http.Request, len(paths))
	for i := range paths {
		reqs[i] = httptest.NewRequest(http.MethodPost, paths[i], bytes.NewReader(bodies[i]))
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := loadtest.ProcessCPU() // on a shared machine CPU time, not wall time, is what compares
	for i := range b.N {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, reqs[i])
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code, rec.Body.String())
		}
	}
	b.ReportMetric(float64(loadtest.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
}
