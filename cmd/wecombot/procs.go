package main

import (
	"runtime"

	"github.com/rs/zerolog"
)

// procsFrom says where the process's GOMAXPROCS came from, for serve's
// start-up log: "GOMAXPROCS" (the operator's), "cores+1" (main's, for
// serve and bench) or "runtime" (the runtime's default: tests, other
// commands).
var procsFrom = "runtime"

// applyProcs gives a serve or bench process one more P than the runtime's
// default (the CPUs it may use, cgroup limits included), unless the
// operator set GOMAXPROCS. A callback is acknowledged once the ingest
// log's fdatasync returns, and a thread blocked in that syscall keeps its
// P until the runtime's monitor takes it back (tens of µs to ms): with
// one P per core, a core then sits idle with requests queued. The extra P
// lets both cores run Go code meanwhile. Measured with `wecombot bench`
// on 2 vCPUs, 16 connections, alternated runs: the ack path 15.5–18.0k
// acks/s with 3 Ps vs 13.2–15.8k with 2, the serve phase 3.2–3.6k vs
// 1.6–2.0k (docs/performance.md). Setting it stops the runtime's own
// updates of GOMAXPROCS when a container's CPU limit changes; a restart
// picks up a new limit. It returns the GOMAXPROCS in force.
func applyProcs(getenv func(string) string, apply bool) int {
	switch {
	case getenv("GOMAXPROCS") != "":
		procsFrom = "GOMAXPROCS"
	case apply:
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
		procsFrom = "cores+1"
	}
	return runtime.GOMAXPROCS(0)
}

// logProcs adds GOMAXPROCS and where it came from to the start-up log.
func logProcs(ev *zerolog.Event) *zerolog.Event {
	return ev.Int("gomaxprocs", runtime.GOMAXPROCS(0)).Int("cpus", runtime.NumCPU()).Str("gomaxprocs_from", procsFrom)
}
