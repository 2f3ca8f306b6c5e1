// Package metrics holds wecombot's Prometheus collectors. Each server builds
// its own registry (no globals), so tests and `bench` can run several servers
// in one process.
package metrics

import (
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the collectors every component records into. A nil *Metrics is
// valid and records nothing, so components can be used without one.
type Metrics struct {
	Registry *prometheus.Registry

	// Callbacks counts inbound callback requests by endpoint and result
	// (accepted, duplicate, bad_signature, bad_request, too_large, error, verified).
	Callbacks *prometheus.CounterVec
	// CallbackSeconds is the time to acknowledge a callback.
	CallbackSeconds *prometheus.HistogramVec
	// Events counts processed events by type and result (ok, error, skipped).
	Events *prometheus.CounterVec
	// EventSeconds is the time from receipt to processing of an event.
	EventSeconds prometheus.Histogram
	// StoreWritable is 1 while the store takes writes, 0 while it refuses
	// them (disk full, read-only file system).
	StoreWritable prometheus.Gauge
	// Outbox counts delivery attempts by kind and result (sent, retry, failed).
	Outbox *prometheus.CounterVec
	// ActionSeconds is the time from an action's due time to its delivery.
	ActionSeconds *prometheus.HistogramVec
	// WeComCalls counts WeCom API calls by api and errcode ("0" for success, "http" for transport errors).
	WeComCalls *prometheus.CounterVec
	// WeComSeconds is WeCom API latency by api.
	WeComSeconds *prometheus.HistogramVec
	// ScenarioReloads counts scenario reloads by result (ok, error).
	ScenarioReloads *prometheus.CounterVec
	// ScenarioLoaded is 1 when the last reload succeeded, 0 when it failed.
	ScenarioLoaded prometheus.Gauge

	couponOnce sync.Once
	couponC    *couponCollectors
	skipOnce   sync.Once
	skipped    *prometheus.CounterVec
	// resultOnce/sendResults: wecombot_send_results_total (sends.go).
	resultOnce  sync.Once
	sendResults *prometheus.CounterVec

	// The backlog gauges (event log, outbox: counts, oldest ages, dead
	// letters) are read at scrape time: ObserveStore. Breakers: ObserveBreaker.
	breakerOnce sync.Once
	breakers    *breakerCollector
	syncOnce    sync.Once
	syncC       *syncCollectors

	// callbackSeries are Callbacks' and CallbackSeconds' series looked
	// up once (callbackChildren): WithLabelValues hashes the labels and
	// takes a lock on every call, on every callback.
	callbackMu     sync.Mutex
	callbackSeries atomic.Pointer[callbackChildren]
}

// callbackChildren is an immutable snapshot of the callback series seen
// so far; a new label pair copies it (there are a dozen at most).
type callbackChildren struct {
	counts  map[[2]string]prometheus.Counter
	seconds map[string]prometheus.Observer
}

// New builds the collectors in a fresh registry, with Go and process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	latency := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &Metrics{
		Registry: r,
		Callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecombot_callbacks_total", Help: "Inbound callback requests by endpoint and result.",
		}, []string{"endpoint", "result"}),
		CallbackSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wecombot_callback_seconds", Help: "Time to acknowledge a callback.", Buckets: latency,
		}, []string{"endpoint"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecombot_events_total", Help: "Processed events by type and result.",
		}, []string{"type", "result"}),
		EventSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "wecombot_event_process_seconds", Help: "Time from receipt to processing of an event.", Buckets: latency,
		}),
		StoreWritable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wecombot_store_writable", Help: "1 while the store takes writes, 0 while it refuses them (disk full, read-only file system).",
		}),
		Outbox: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecombot_outbox_attempts_total", Help: "Outbox delivery attempts by kind and result.",
		}, []string{"kind", "result"}),
		ActionSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wecombot_action_delay_seconds", Help: "Time from an action's due time to its delivery.", Buckets: latency,
		}, []string{"kind"}),
		WeComCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecombot_wecom_api_calls_total", Help: "WeCom API calls by api and errcode.",
		}, []string{"api", "errcode"}),
		WeComSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wecombot_wecom_api_seconds", Help: "WeCom API call latency.", Buckets: latency,
		}, []string{"api"}),
		ScenarioReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecombot_scenario_reloads_total", Help: "Scenario reloads by result.",
		}, []string{"result"}),
		ScenarioLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wecombot_scenario_last_reload_ok", Help: "1 if the last scenario reload succeeded, else 0.",
		}),
	}
	m.StoreWritable.Set(1)
	r.MustRegister(m.Callbacks, m.CallbackSeconds, m.Events, m.EventSeconds, m.StoreWritable,
		m.Outbox, m.ActionSeconds, m.WeComCalls, m.WeComSeconds, m.ScenarioReloads, m.ScenarioLoaded)
	return m
}

// Callback records one callback request.
func (m *Metrics) Callback(endpoint, result string, d time.Duration) {
	if m == nil {
		return
	}
	c := m.callbackSeries.Load()
	count, ok := c.count(endpoint, result)
	seconds, ok2 := c.observer(endpoint)
	if !ok || !ok2 {
		count, seconds = m.addCallbackSeries(endpoint, result)
	}
	count.Inc()
	seconds.Observe(d.Seconds())
}

func (c *callbackChildren) count(endpoint, result string) (prometheus.Counter, bool) {
	if c == nil {
		return nil, false
	}
	v, ok := c.counts[[2]string{endpoint, result}]
	return v, ok
}

func (c *callbackChildren) observer(endpoint string) (prometheus.Observer, bool) {
	if c == nil {
		return nil, false
	}
	v, ok := c.seconds[endpoint]
	return v, ok
}

// addCallbackSeries looks the series up in the vectors and publishes a
// snapshot holding them.
func (m *Metrics) addCallbackSeries(endpoint, result string) (prometheus.Counter, prometheus.Observer) {
	m.callbackMu.Lock()
	defer m.callbackMu.Unlock()
	old := m.callbackSeries.Load()
	next := &callbackChildren{counts: map[[2]string]prometheus.Counter{}, seconds: map[string]prometheus.Observer{}}
	if old != nil {
		maps.Copy(next.counts, old.counts)
		maps.Copy(next.seconds, old.seconds)
	}
	count := m.Callbacks.WithLabelValues(endpoint, result)
	seconds := m.CallbackSeconds.WithLabelValues(endpoint)
	next.counts[[2]string{endpoint, result}] = count
	next.seconds[endpoint] = seconds
	m.callbackSeries.Store(next)
	return count, seconds
}

// WeComCall records one WeCom API call; errcode 0 is success, -2 a transport error.
func (m *Metrics) WeComCall(api string, errcode int64, d time.Duration) {
	if m == nil {
		return
	}
	code := strconv.FormatInt(errcode, 10)
	if errcode == -2 {
		code = "http"
	}
	m.WeComCalls.WithLabelValues(api, code).Inc()
	m.WeComSeconds.WithLabelValues(api).Observe(d.Seconds())
}

// Event records one processed event.
func (m *Metrics) Event(typ, result string, sinceReceived time.Duration) {
	if m == nil {
		return
	}
	m.Events.WithLabelValues(typ, result).Inc()
	m.EventSeconds.Observe(sinceReceived.Seconds())
}

// OutboxAttempt records one delivery attempt.
func (m *Metrics) OutboxAttempt(kind, result string, sinceDue time.Duration) {
	if m == nil {
		return
	}
	m.Outbox.WithLabelValues(kind, result).Inc()
	if result == "sent" {
		m.ActionSeconds.WithLabelValues(kind).Observe(sinceDue.Seconds())
	}
}

// Reload records a scenario reload.
func (m *Metrics) Reload(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.ScenarioReloads.WithLabelValues("ok").Inc()
		m.ScenarioLoaded.Set(1)
		return
	}
	m.ScenarioReloads.WithLabelValues("error").Inc()
	m.ScenarioLoaded.Set(0)
}
