package main

import (
	"math"
	"runtime/debug"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/config"
)

// setsMemoryLimit is true in a `wecombot serve` process (main): serve then
// sets the Go runtime's soft memory limit. Tests that call run() and
// bench's in-process servers leave it false: that process's limit is its
// own.
var setsMemoryLimit bool

// applyMemoryLimit sets the runtime's soft memory limit for serve:
// GOMEMLIMIT when the operator set it (the runtime applied it already),
// else cfg.MemoryLimit (WECOMBOT_MEMORY_LIMIT, default
// config.DefaultMemoryLimit; 0: none). It returns the limit in force
// (0: none) and where it came from.
func applyMemoryLimit(cfg *config.Config, getenv func(string) string, apply bool) (limit int64, from string) {
	if getenv("GOMEMLIMIT") != "" {
		limit, from = debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	} else {
		limit, from = cfg.MemoryLimit, "WECOMBOT_MEMORY_LIMIT"
		if limit <= 0 {
			limit = math.MaxInt64 // none
		}
		if getenv("WECOMBOT_MEMORY_LIMIT") == "" {
			from = "default"
		}
		if apply {
			debug.SetMemoryLimit(limit)
		}
	}
	if limit == math.MaxInt64 {
		limit = 0
	}
	return limit, from
}

// logMemoryLimit adds the limit to the start-up log.
func logMemoryLimit(ev *zerolog.Event, limit int64, from string) *zerolog.Event {
	if limit == 0 {
		return ev.Str("memory_limit", "off").Str("memory_limit_from", from)
	}
	return ev.Int64("memory_limit_mib", limit>>20).Str("memory_limit_from", from)
}
