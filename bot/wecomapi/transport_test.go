package wecomapi

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent senders keep their connections to WeCom: a second and third
// round of parallel calls opens (almost) no new connections, where Go's
// default of 2 idle connections per host would redial (a TCP+TLS handshake
// per call against qyapi.weixin.qq.com).
func TestTransportReusesConnectionsUnderConcurrency(t *testing.T) {
	t.Parallel()
	const parallel = 16
	var opened atomic.Int64
	// Each round's calls are answered only when all of them have arrived, so
	// every round holds exactly `parallel` connections at once, however the
	// (loaded) test machine schedules the goroutines.
	var mu sync.Mutex
	arrived, release := 0, make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived++
		wait := release
		if arrived == parallel {
			close(release)
			arrived, release = 0, make(chan struct{})
		}
		mu.Unlock()
		select {
		case <-wait:
		case <-time.After(10 * time.Second):
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"errcode":0,"errmsg":"ok"}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	client := &http.Client{Transport: newTransport(nil, 15*time.Second)}
	round := func() {
		var wg sync.WaitGroup
		for i := 0; i < parallel; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Get(srv.URL + "/cgi-bin/x")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}()
		}
		wg.Wait()
	}
	round()
	first := opened.Load()
	round()
	round()
	if first != parallel {
		t.Fatalf("round 1 opened %d connections, want %d (one per call held open)", first, parallel)
	}
	if extra := opened.Load() - first; extra > 2 {
		t.Fatalf("rounds 2 and 3 opened %d new connections (round 1: %d): connections aren't kept", extra, first)
	}
}
