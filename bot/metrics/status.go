package metrics

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wecombot/wecombot/bot"
)

// StoreStats is what the backlog gauges read from the store at scrape time.
type StoreStats interface {
	EventStats(ctx context.Context) (bot.EventStats, error)
	OutboxStats(ctx context.Context) (bot.OutboxStats, error)
}

// Backlog gauges are computed when Prometheus scrapes, not pushed by the
// pipeline: an age that only a running pipeline updates would freeze at the
// moment the pipeline stalls — exactly when an alert needs it to grow.
var (
	eventsPendingDesc = prometheus.NewDesc("wecombot_event_log_pending_events",
		"Events appended to the log and not yet processed (a count).", nil, nil)
	eventLagDeprecatedDesc = prometheus.NewDesc("wecombot_event_log_lag",
		"DEPRECATED, removed in the next release: the same count as wecombot_event_log_pending_events (it is not seconds; for time see wecombot_event_log_oldest_pending_age_seconds).", nil, nil)
	eventsOldestDesc = prometheus.NewDesc("wecombot_event_log_oldest_pending_age_seconds",
		"Age of the oldest unprocessed event (since it was received); 0 when none is pending.", nil, nil)
	eventsDeadDesc = prometheus.NewDesc("wecombot_event_log_dead_letter_events",
		"Events whose handling failed permanently (dead letters; retry them from the console or `wecombot events retry`).", nil, nil)
	outboxDepthDesc = prometheus.NewDesc("wecombot_outbox_depth",
		"Outbox actions pending delivery (a count, due or not yet due).", nil, nil)
	outboxOldestDesc = prometheus.NewDesc("wecombot_outbox_oldest_due_age_seconds",
		"How long the most overdue pending action has been due; 0 when nothing is overdue.", nil, nil)
	outboxDeadDesc = prometheus.NewDesc("wecombot_outbox_dead_letter_actions",
		"Outbox actions that failed permanently (dead letters; retry them from the console's operations page).", nil, nil)
	outboxUnknownDesc = prometheus.NewDesc("wecombot_outbox_possibly_delivered_actions",
		"Outbox actions whose attempt's outcome is unknown (a crash mid-send, a lost answer) and that are not resent on their own: check and retry them from the console.", nil, nil)
	storeUpDesc = prometheus.NewDesc("wecombot_store_stats_up",
		"1 when the store answered the backlog gauges' read at this scrape, else 0.", nil, nil)
	breakerDesc = prometheus.NewDesc("wecombot_breaker_state",
		"Circuit breaker state: 1 for the breaker's current state (closed, half-open, open), 0 for the others.",
		[]string{"breaker", "state"}, nil)
)

// backlogCollector reads the store's event-log and outbox statistics at
// scrape time.
type backlogCollector struct {
	store StoreStats
	now   func() time.Time
}

func (c backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{eventsPendingDesc, eventLagDeprecatedDesc, eventsOldestDesc, eventsDeadDesc,
		outboxDepthDesc, outboxOldestDesc, outboxDeadDesc, outboxUnknownDesc, storeUpDesc} {
		ch <- d
	}
}

func (c backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	ev, evErr := c.store.EventStats(ctx)
	ob, obErr := c.store.OutboxStats(ctx)
	if evErr != nil || obErr != nil {
		gauge(storeUpDesc, 0)
		return
	}
	gauge(storeUpDesc, 1)
	now := c.now()
	gauge(eventsPendingDesc, float64(ev.Pending))
	gauge(eventLagDeprecatedDesc, float64(ev.Pending))
	gauge(eventsOldestDesc, ageSeconds(now, ev.OldestPending, ev.Pending > 0))
	gauge(eventsDeadDesc, float64(ev.Failed))
	gauge(outboxDepthDesc, float64(ob.Pending))
	gauge(outboxOldestDesc, ageSeconds(now, ob.OldestDue, ob.Pending > 0))
	gauge(outboxDeadDesc, float64(ob.Failed))
	gauge(outboxUnknownDesc, float64(ob.PossiblyDelivered))
}

// ageSeconds is now-since in seconds, 0 when there is nothing or it is in
// the future (an action not yet due).
func ageSeconds(now, since time.Time, any bool) float64 {
	if !any || since.IsZero() || since.After(now) {
		return 0
	}
	return now.Sub(since).Seconds()
}

// unmovedCounter is a store that acknowledges events before they reach
// its event log and counts those that have not yet (storage/bolt's
// ingest log).
type unmovedCounter interface {
	UnmovedEvents() int
}

// ObserveStore exports the event log's and the outbox's backlog (counts,
// oldest ages, dead letters), read from store at every scrape, and the
// events acknowledged but not yet in the event log when store has such.
func (m *Metrics) ObserveStore(store StoreStats, now func() time.Time) {
	if m == nil || store == nil {
		return
	}
	if now == nil {
		now = time.Now
	}
	m.Registry.MustRegister(backlogCollector{store: store, now: now})
	if u, ok := store.(unmovedCounter); ok {
		// Apart from the backlog collector: it reads no transaction, so
		// it is still exported when the store's reads fail (bbolt may give
		// up its mapping after a failed grow) — while events pile up.
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wecombot_ingest_log_unmoved_events",
			Help: "Callbacks acknowledged into the ingest log beside the database and not yet moved into it (a count); it grows while the database refuses writes, and they are not processed until moved.",
		}, func() float64 { return float64(u.UnmovedEvents()) }))
	}
}

// breakerStates are the states wecombot_breaker_state reports, in order.
var breakerStates = []string{"closed", "half-open", "open"}

type breakerCollector struct {
	mu       sync.Mutex
	breakers map[string]func() string
}

func (c *breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- breakerDesc }

func (c *breakerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, state := range c.breakers {
		cur := state()
		for _, s := range breakerStates {
			v := 0.0
			if s == cur {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, v, name, s)
		}
	}
}

// ObserveBreaker exports a circuit breaker's state as
// wecombot_breaker_state{breaker=name, state=…}. state returns "closed",
// "half-open" or "open".
func (m *Metrics) ObserveBreaker(name string, state func() string) {
	if m == nil || state == nil {
		return
	}
	m.breakerOnce.Do(func() {
		m.breakers = &breakerCollector{breakers: map[string]func() string{}}
		m.Registry.MustRegister(m.breakers)
	})
	m.breakers.mu.Lock()
	m.breakers.breakers[name] = state
	m.breakers.mu.Unlock()
}

// BuildInfo exports wecombot_build_info{version, revision, goversion} = 1,
// so dashboards can show which build runs and mark deploys.
func (m *Metrics) BuildInfo(version string) {
	if m == nil {
		return
	}
	revision := "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "wecombot_build_info",
		Help:        "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": runtime.Version()},
	})
	g.Set(1)
	m.Registry.MustRegister(g)
}
