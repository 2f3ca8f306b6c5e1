package server

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// Money metrics from the engine's weekly counters: 4 new customers on two
// channels, 3 orders (one a repeat), a refund; the decomposition multiplies
// back to the GMV.
func TestMetricsAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	week := f.now.Add(-2 * time.Hour)
	f.add("wmX1", "甲", "xhs", "chayi01", week)
	f.add("wmX2", "乙", "xhs", "chayi01", week)
	f.add("wmD1", "丙", "douyin", "chayi01", week)
	f.add("wmD2", "丁", "douyin", "chayi01", week)
	f.order("wmX1", "o1", 3000, week.Add(time.Minute))
	f.order("wmX1", "o2", 5000, week.Add(2*time.Minute))
	f.order("wmD1", "o3", 4000, week.Add(3*time.Minute))
	f.feed(bot.Event{Type: bot.EventOrderRefunded, ExternalUserID: "wmD1", At: week.Add(4 * time.Minute), Source: bot.SourceShop,
		Data: map[string]string{bot.DataOrderID: "o3", bot.DataAmountFen: "1000"}})
	f.feed(bot.Event{Type: bot.EventContactDelFollow, ExternalUserID: "wmD2", StaffID: "chayi01", At: week.Add(5 * time.Minute)})

	r := f.do("GET", "/api/v1/metrics?weeks=4", nil)
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	total := r.json["total"].(map[string]any)
	for k, want := range map[string]float64{"added": 4, "buyers": 2, "repeat_buyers": 1, "orders": 3, "gmv_fen": 12000, "refund_fen": 1000,
		"net_gmv_fen": 11000, "conversion": 0.5, "frequency": 1.5, "aov_fen": 4000, "repeat_rate": 0.5, "ltv_fen": 2750, "lost": 1} {
		if total[k] != want {
			t.Errorf("total %s = %v, want %v", k, total[k], want)
		}
	}
	d := r.json["decomposition"].(map[string]any)
	product := d["traffic"].(float64) * d["conversion"].(float64) * d["frequency"].(float64) * d["aov_fen"].(float64)
	if math.Abs(product-d["gmv_fen"].(float64)) > 1 {
		t.Errorf("decomposition %v multiplies to %v, not the GMV", d, product)
	}
	if weeks := r.json["weeks"].([]any); len(weeks) != 4 || weeks[3].(map[string]any)["gmv_fen"] != float64(12000) {
		t.Errorf("weeks: %v", weeks)
	}
	if !strings.Contains(r.body, `"channel":"小红书","added":2`) || !strings.Contains(r.body, `"channel":"抖音","added":2`) {
		t.Errorf("by channel: %s", r.body)
	}

	// One channel.
	r = f.do("GET", "/api/v1/metrics?weeks=4&channel="+"%E6%8A%96%E9%9F%B3", nil) // 抖音
	if tot := r.json["total"].(map[string]any); tot["added"] != float64(2) || tot["gmv_fen"] != float64(4000) || tot["lost"] != float64(1) {
		t.Errorf("抖音: %v", tot)
	}
	// Lost per channel in the funnel's channel table.
	r = f.do("GET", "/api/v1/funnel?fresh=true", nil)
	if !strings.Contains(r.body, `"lost":1,"lost_rate":0.5`) {
		t.Errorf("funnel channel lost: %s", r.body)
	}
	if r := f.do("GET", "/api/v1/metrics?weeks=0", nil); r.code != 400 || r.json["param"] != "weeks" {
		t.Errorf("weeks=0: %d %s", r.code, r.body)
	}
}
