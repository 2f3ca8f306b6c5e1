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
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond) // calls overlap
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
	client := &http.Client{Transport: newTransport(nil, 5*time.Second)}
	const parallel = 16
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
	if extra := opened.Load() - first; extra > 2 {
		t.Fatalf("rounds 2 and 3 opened %d new connections (round 1: %d): connections aren't kept", extra, first)
	}
}
