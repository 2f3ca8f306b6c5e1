package loadtest

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"
)

// TestRunMeasuresProcessCPU: a run reports the CPU time the process used
// while it ran (user + system), so the bench can put the CPU each
// acknowledged request cost beside its throughput.
func TestRunMeasuresProcessCPU(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no getrusage here: Result.CPU stays 0")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.Sum256([]byte(r.URL.Path))
		for range 2000 { // some CPU per request
			sum = sha256.Sum256(sum[:])
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	res := Run(context.Background(), Options{Base: srv.URL, Concurrency: 2, Duration: 300 * time.Millisecond,
		Next: func(uint64) Request { return Request{Path: "/x"} }})
	if res.Acked == 0 {
		t.Fatalf("nothing acknowledged: %+v", res.FirstError)
	}
	// 2,000 hashes are ≥ 50 µs of CPU on any machine this runs on, and
	// the process cannot use more CPU than its GOMAXPROCS cores (+1 for
	// threads in system calls) for the run's time.
	if per := res.CPUPerAck(); per < 50*time.Microsecond || res.CPU > time.Duration(runtime.GOMAXPROCS(0)+1)*res.Elapsed {
		t.Fatalf("CPU %v for %d acks in %v (%v per ack): not the process's CPU time", res.CPU, res.Acked, res.Elapsed, per)
	}
	var sum Result
	sum.Add(res)
	sum.Add(res)
	if sum.CPU != 2*res.CPU {
		t.Fatalf("Add: CPU %v, want %v", sum.CPU, 2*res.CPU)
	}
}
