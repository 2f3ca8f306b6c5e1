package metrics

import "github.com/prometheus/client_golang/prometheus"

// syncCollectors are registered by the first sync call.
type syncCollectors struct {
	running  prometheus.Gauge
	progress prometheus.Gauge
	read     *prometheus.GaugeVec
	changes  *prometheus.CounterVec
	runs     *prometheus.CounterVec
}

func (m *Metrics) sync() *syncCollectors {
	m.syncOnce.Do(func() {
		c := &syncCollectors{
			running: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "wecombot_sync_running", Help: "1 while a sync of customers and groups from WeCom runs.",
			}),
			progress: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "wecombot_sync_progress_ratio", Help: "How far the running (or last) sync is, 0-1.",
			}),
			read: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "wecombot_sync_items", Help: "What the running (or last) sync read so far: relations (customer, staff), customers, groups.",
			}, []string{"item"}),
			changes: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "wecombot_sync_changes_total", Help: "Members and groups finished syncs found new, updated or gone.",
			}, []string{"item", "change"}),
			runs: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "wecombot_sync_runs_total", Help: "Syncs by result (done, failed).",
			}, []string{"result"}),
		}
		m.Registry.MustRegister(c.running, c.progress, c.read, c.changes, c.runs)
		m.syncC = c
	})
	return m.syncC
}

// SyncProgress records a running sync's progress.
func (m *Metrics) SyncProgress(running bool, ratio float64, relations, customers, groups int) {
	if m == nil {
		return
	}
	c := m.sync()
	if running {
		c.running.Set(1)
	} else {
		c.running.Set(0)
	}
	c.progress.Set(ratio)
	c.read.WithLabelValues("relations").Set(float64(relations))
	c.read.WithLabelValues("customers").Set(float64(customers))
	c.read.WithLabelValues("groups").Set(float64(groups))
}

// SyncFinished counts a finished (or failed) sync and what it changed.
func (m *Metrics) SyncFinished(result string, membersNew, membersUpdated, membersGone, groupsNew, groupsUpdated, groupsGone int) {
	if m == nil {
		return
	}
	c := m.sync()
	c.running.Set(0)
	c.runs.WithLabelValues(result).Inc()
	c.changes.WithLabelValues("member", "new").Add(float64(membersNew))
	c.changes.WithLabelValues("member", "updated").Add(float64(membersUpdated))
	c.changes.WithLabelValues("member", "gone").Add(float64(membersGone))
	c.changes.WithLabelValues("group", "new").Add(float64(groupsNew))
	c.changes.WithLabelValues("group", "updated").Add(float64(groupsUpdated))
	c.changes.WithLabelValues("group", "gone").Add(float64(groupsGone))
}
