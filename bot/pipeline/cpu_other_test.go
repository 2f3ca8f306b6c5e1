//go:build !linux && !darwin

package pipeline_test

import "time"

// processCPU is unknown here (0: not reported).
func processCPU() time.Duration { return 0 }
