package metrics

import "github.com/prometheus/client_golang/prometheus"

// couponCollectors are registered lazily by the first coupon call, so the
// core New stays as it was; a server without coupons exports none.
type couponCollectors struct {
	issued, redeemed *prometheus.CounterVec
	empty, alerts    *prometheus.CounterVec
	stock            *prometheus.GaugeVec
	referrals        *prometheus.CounterVec
	redemptions      *prometheus.CounterVec
}

func (m *Metrics) coupons() *couponCollectors {
	m.couponOnce.Do(func() {
		c := &couponCollectors{
			issued: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "wecombot_coupon_issued_total", Help: "Coupon codes issued by pool and hook.",
			}, []string{"pool", "hook"}),
			redeemed: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "wecombot_coupon_redeemed_total", Help: "Coupon codes redeemed in paid orders by pool and hook.",
			}, []string{"pool", "hook"}),
			empty: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "wecombot_coupon_pool_empty_total", Help: "Issue attempts that found the pool empty (the member got the fallback text).",
			}, []string{"pool"}),
			alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "wecombot_coupon_stock_alerts_total", Help: "Times a pool's stock fell to its stock_alert (once per crossing).",
			}, []string{"pool"}),
			stock: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "wecombot_coupon_stock", Help: "Codes a pool can still issue, as of its last issue.",
			}, []string{"pool"}),
			referrals: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "wecombot_referrals_total", Help: "Invitees by result (pending, counted, void, self, repeat).",
			}, []string{"result"}),
			redemptions: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "wecombot_redemptions_total", Help: "Points redemptions (积分兑换) by catalogue item and outcome (ok, no_points, no_stock, limit, audience, closed, no_coupon).",
			}, []string{"item", "outcome"}),
		}
		m.Registry.MustRegister(c.issued, c.redeemed, c.empty, c.alerts, c.stock, c.referrals, c.redemptions)
		m.couponC = c
	})
	return m.couponC
}

// CouponIssued counts one issued code.
func (m *Metrics) CouponIssued(pool, hook string) {
	if m != nil {
		m.coupons().issued.WithLabelValues(pool, hook).Inc()
	}
}

// CouponRedeemed counts one redeemed code.
func (m *Metrics) CouponRedeemed(pool, hook string) {
	if m != nil {
		m.coupons().redeemed.WithLabelValues(pool, hook).Inc()
	}
}

// CouponEmpty counts an issue attempt against an empty pool.
func (m *Metrics) CouponEmpty(pool string) {
	if m != nil {
		m.coupons().empty.WithLabelValues(pool).Inc()
	}
}

// CouponStockAlert counts a stock-alert crossing.
func (m *Metrics) CouponStockAlert(pool string) {
	if m != nil {
		m.coupons().alerts.WithLabelValues(pool).Inc()
	}
}

// CouponStock sets a pool's remaining stock.
func (m *Metrics) CouponStock(pool string, n int) {
	if m != nil {
		m.coupons().stock.WithLabelValues(pool).Set(float64(n))
	}
}

// Referral counts an invitee by result.
func (m *Metrics) Referral(result string) {
	if m != nil {
		m.coupons().referrals.WithLabelValues(result).Inc()
	}
}

// Redemption counts a catalogue redemption attempt by item and outcome.
func (m *Metrics) Redemption(item, outcome string) {
	if m != nil {
		m.coupons().redemptions.WithLabelValues(item, outcome).Inc()
	}
}
