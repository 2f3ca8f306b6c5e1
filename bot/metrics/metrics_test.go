package metrics

import (
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// TestCallbackCountsEverySeries: the series Callback keeps looked up are
// the vectors' own, for every endpoint and result, from many goroutines.
func TestCallbackCountsEverySeries(t *testing.T) {
	m := New()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 300 {
				m.Callback([]string{"wecom", "aibot", "shop"}[i%3], []string{"accepted", "duplicate"}[i%2], time.Millisecond)
			}
		})
	}
	wg.Wait()
	for _, ep := range []string{"wecom", "aibot", "shop"} {
		for _, res := range []string{"accepted", "duplicate"} {
			var got dto.Metric
			if err := m.Callbacks.WithLabelValues(ep, res).Write(&got); err != nil || got.GetCounter().GetValue() != 400 {
				t.Errorf("callbacks{%s,%s} = %v (%v), want 400", ep, res, got.GetCounter().GetValue(), err)
			}
		}
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "wecombot_callback_seconds" {
			n := uint64(0)
			for _, s := range f.GetMetric() {
				n += s.GetHistogram().GetSampleCount()
			}
			if len(f.GetMetric()) != 3 || n != 2400 {
				t.Errorf("callback_seconds: %d series, %d observations; want 3, 2400", len(f.GetMetric()), n)
			}
		}
	}
	var nilMetrics *Metrics
	nilMetrics.Callback("wecom", "accepted", time.Millisecond) // records nothing, no panic
}

// BenchmarkCallback is what every callback pays for its two series.
func BenchmarkCallback(b *testing.B) {
	m := New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Callback("wecom", "accepted", time.Millisecond)
		}
	})
}
