package wecomapi

import (
	"math/rand/v2"
	"time"
)

// Backoff base and cap.
const (
	BackoffBase = time.Second
	BackoffCap  = 5 * time.Minute
)

// Backoff is the wait before retry number attempt (1-based; values below 1
// count as 1): jittered exponential, uniformly random in [ceil/2, ceil] with
// ceil = 1 s × 2^(attempt-1) capped at 5 min. Half the ceiling is kept so a
// busy WeCom is never hammered with near-zero waits; the other half is
// jitter, so workers that failed together don't retry together.
func Backoff(attempt int) time.Duration {
	attempt = max(attempt, 1)
	ceil := BackoffCap
	if attempt-1 < 20 { // 2^20 s is far past the cap; avoids shift overflow
		ceil = min(BackoffBase<<(attempt-1), BackoffCap)
	}
	return ceil/2 + rand.N(ceil/2+1)
}
