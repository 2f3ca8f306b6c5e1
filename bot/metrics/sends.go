package metrics

import "github.com/prometheus/client_golang/prometheus"

// SendSkipped counts a message wecombot did not attempt because WeCom would
// refuse it (surface kf; reason never_wrote, person_holds, window_48h,
// over_5; mass_send over_quota), as wecombot_sends_skipped_total.
func (m *Metrics) SendSkipped(surface, reason string) {
	if m == nil {
		return
	}
	m.skipOnce.Do(func() {
		m.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecombot_sends_skipped_total",
			Help: "Messages not attempted because WeCom would refuse them (outside the 微信客服 window or budget, a person holds the session, over the mass-send quota), by surface and reason.",
		}, []string{"surface", "reason"})
		m.Registry.MustRegister(m.skipped)
	})
	m.skipped.WithLabelValues(surface, reason).Inc()
}

// SendResult counts what WeCom reported about a message after accepting
// it, by surface and result — mass_send: delivered, not_confirmed,
// over_quota, not_friend, left_out, canceled, task_failed; kf: undelivered
// (msg_send_fail) — as wecombot_send_results_total.
func (m *Metrics) SendResult(surface, result string) {
	if m == nil {
		return
	}
	m.resultOnce.Do(func() {
		m.sendResults = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecombot_send_results_total",
			Help: "What became of messages WeCom accepted: per-customer mass-send results read back (get_groupmsg_send_result) or concluded, and 微信客服 messages reported undelivered (msg_send_fail), by surface and result.",
		}, []string{"surface", "result"})
		m.Registry.MustRegister(m.sendResults)
	})
	m.sendResults.WithLabelValues(surface, result).Inc()
}
