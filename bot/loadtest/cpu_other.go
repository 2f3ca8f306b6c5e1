//go:build !unix

package loadtest

import "time"

// ProcessCPU is not known here: 0 (Result.CPU stays 0).
func ProcessCPU() time.Duration { return 0 }
