package metrics

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/wecombot/wecombot/bot"
)

type fakeStats struct {
	mu  sync.Mutex
	ev  bot.EventStats
	ob  bot.OutboxStats
	err error
}

func (f *fakeStats) EventStats(context.Context) (bot.EventStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ev, f.err
}

func (f *fakeStats) OutboxStats(context.Context) (bot.OutboxStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ob, f.err
}

// gather returns every exported sample as name{label=value,…} → value.
func gather(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			key := f.GetName()
			if labels := labelString(s.GetLabel()); labels != "" {
				key += "{" + labels + "}"
			}
			switch {
			case s.Gauge != nil:
				out[key] = s.GetGauge().GetValue()
			case s.Counter != nil:
				out[key] = s.GetCounter().GetValue()
			default:
				out[key] = 1
			}
		}
	}
	return out
}

func labelString(ls []*dto.LabelPair) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(parts, ",")
}

// TestBacklogGaugesAtScrapeTime: counts and ages come from the store when
// Prometheus scrapes, so an age keeps growing while nothing processes (a
// stalled pipeline), and the old count name stays for one release.
func TestBacklogGaugesAtScrapeTime(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	clock := now
	st := &fakeStats{
		ev: bot.EventStats{Pending: 3, OldestPending: now.Add(-90 * time.Second), Failed: 2},
		ob: bot.OutboxStats{Pending: 5, OldestDue: now.Add(-30 * time.Second), Failed: 1},
	}
	m := New()
	m.ObserveStore(st, func() time.Time { return clock })
	want := map[string]float64{
		"wecombot_event_log_pending_events":             3,
		"wecombot_event_log_lag":                        3,
		"wecombot_event_log_oldest_pending_age_seconds": 90,
		"wecombot_event_log_dead_letter_events":         2,
		"wecombot_outbox_depth":                         5,
		"wecombot_outbox_oldest_due_age_seconds":        30,
		"wecombot_outbox_dead_letter_actions":           1,
		"wecombot_store_stats_up":                       1,
	}
	got := gather(t, m)
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	// A minute later with nothing processed, the ages have grown by it.
	clock = now.Add(time.Minute)
	got = gather(t, m)
	if got["wecombot_event_log_oldest_pending_age_seconds"] != 150 || got["wecombot_outbox_oldest_due_age_seconds"] != 90 {
		t.Errorf("ages did not grow: %v", got)
	}
	// Nothing overdue (the oldest is due later) and nothing pending: 0.
	st.mu.Lock()
	st.ev = bot.EventStats{}
	st.ob = bot.OutboxStats{Pending: 1, OldestDue: clock.Add(time.Hour)}
	st.mu.Unlock()
	got = gather(t, m)
	if got["wecombot_event_log_oldest_pending_age_seconds"] != 0 || got["wecombot_outbox_oldest_due_age_seconds"] != 0 {
		t.Errorf("ages with nothing overdue: %v", got)
	}
	// A store that doesn't answer: up 0, no stale values.
	st.mu.Lock()
	st.err = errors.New("disk gone")
	st.mu.Unlock()
	got = gather(t, m)
	if got["wecombot_store_stats_up"] != 0 {
		t.Errorf("store_stats_up = %v, want 0", got["wecombot_store_stats_up"])
	}
	if _, ok := got["wecombot_outbox_depth"]; ok {
		t.Errorf("outbox depth exported while the store failed")
	}
}

func TestBreakerStateAndBuildInfo(t *testing.T) {
	m := New()
	state := "closed"
	m.ObserveBreaker("ai_model", func() string { return state })
	m.BuildInfo("v1.2.3")
	got := gather(t, m)
	if got["wecombot_breaker_state{breaker=ai_model,state=closed}"] != 1 || got["wecombot_breaker_state{breaker=ai_model,state=open}"] != 0 {
		t.Errorf("closed breaker: %v", got)
	}
	state = "open"
	got = gather(t, m)
	if got["wecombot_breaker_state{breaker=ai_model,state=open}"] != 1 || got["wecombot_breaker_state{breaker=ai_model,state=closed}"] != 0 {
		t.Errorf("open breaker: %v", got)
	}
	found := false
	for k, v := range got {
		if strings.HasPrefix(k, "wecombot_build_info{") && strings.Contains(k, "version=v1.2.3") && strings.Contains(k, "goversion=go") && v == 1 {
			found = true
		}
	}
	if !found {
		t.Errorf("no wecombot_build_info with the version: %v", got)
	}
}

// TestCouponMetricPrefix: every coupon metric is wecombot_coupon_… (one
// prefix, not coupon_ and coupons_ mixed).
func TestCouponMetricPrefix(t *testing.T) {
	m := New()
	m.CouponIssued("p", "welcome")
	m.CouponRedeemed("p", "welcome")
	m.CouponEmpty("p")
	m.CouponStockAlert("p")
	m.CouponStock("p", 3)
	n := 0
	for name := range gather(t, m) {
		if strings.HasPrefix(name, "wecombot_coupons_") {
			t.Errorf("%s: use the wecombot_coupon_ prefix", name)
		}
		if strings.HasPrefix(name, "wecombot_coupon_") {
			n++
		}
	}
	if n != 5 {
		t.Errorf("want 5 coupon series, got %d", n)
	}
}

func TestRedemptionMetric(t *testing.T) {
	m := New()
	m.Redemption("满30减10券", "ok")
	m.Redemption("满30减10券", "ok")
	m.Redemption("满30减10券", "no_stock")
	got := gather(t, m)
	if n := got["wecombot_redemptions_total{item=满30减10券,outcome=ok}"]; n != 2 {
		t.Fatalf("ok = %v in %v", n, got)
	}
	if n := got["wecombot_redemptions_total{item=满30减10券,outcome=no_stock}"]; n != 1 {
		t.Fatalf("no_stock = %v", n)
	}
}

// unmovedStats is a store with an ingest log (storage/bolt's).
type unmovedStats struct {
	fakeStats
	unmoved atomic.Int64
}

func (u *unmovedStats) UnmovedEvents() int { return int(u.unmoved.Load()) }

// TestUnmovedEventsGauge: a store that acknowledges events before they
// reach its event log exports how many have not yet, read at each scrape
// and exported even while its other reads fail; a store without one
// exports no such gauge.
func TestUnmovedEventsGauge(t *testing.T) {
	const name = "wecombot_ingest_log_unmoved_events"
	st := &unmovedStats{}
	m := New()
	m.ObserveStore(st, nil)
	st.unmoved.Store(42)
	if got := gather(t, m); got[name] != 42 {
		t.Errorf("%s = %v, want 42", name, got[name])
	}
	st.mu.Lock()
	st.err = errors.New("disk gone")
	st.mu.Unlock()
	st.unmoved.Store(43)
	if got := gather(t, m); got[name] != 43 {
		t.Errorf("%s = %v while the store's reads fail, want 43", name, got[name])
	}
	plain := New()
	plain.ObserveStore(&fakeStats{}, nil)
	if _, ok := gather(t, plain)[name]; ok {
		t.Errorf("%s exported for a store without an ingest log", name)
	}
}
