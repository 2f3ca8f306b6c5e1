package wecomsync_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// BenchmarkSync imports a community against the fake with its latency on
// (WECOMBOT_BENCH_SYNC_CUSTOMERS customers, default 10,000; the note's
// figure is 100,000; WECOMBOT_BENCH_SYNC_RATE calls/s, default 20; the
// fake answers every call after WECOMBOT_BENCH_SYNC_LATENCY, default 30ms)
// and reports the time and the WeCom calls it took:
//
//	WECOMBOT_BENCH_SYNC_CUSTOMERS=100000 go test ./bot/wecomsync -run x -bench Sync -benchtime 1x
func BenchmarkSync(b *testing.B) {
	n := envInt("WECOMBOT_BENCH_SYNC_CUSTOMERS", 10000)
	rate := envInt("WECOMBOT_BENCH_SYNC_RATE", 20)
	latency, err := time.ParseDuration(envStr("WECOMBOT_BENCH_SYNC_LATENCY", "30ms"))
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		h := newHarness(b, fakewecom.Community{Staff: 20, Customers: n, SharedEvery: 5, Groups: n / 100, GroupMembers: n * 3 / 10,
			GroupOnlyEvery: 10, States: []string{"xhs", "douyin"}, TagGroup: "客户画像", Tags: []string{"高意向", "老客户"}})
		h.syncer = h.withRate(float64(rate))
		h.fake.SetLatency(latency)
		h.fake.Reset()
		start := time.Now()
		run, err := h.runFor(b, 30*time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		calls := 0
		for _, api := range []string{fakewecom.APIGetCorpTagList, fakewecom.APIGetFollowUserList, fakewecom.APIContactList,
			fakewecom.APIBatchGetByUser, fakewecom.APIGroupChatList, fakewecom.APIGroupChatGet} {
			calls += h.fake.Count(api)
		}
		b.ReportMetric(took.Seconds(), "s/sync")
		b.ReportMetric(float64(calls), "calls")
		b.ReportMetric(float64(run.Customers), "customers")
		b.ReportMetric(float64(run.Relations), "relations")
		b.ReportMetric(float64(run.Groups), "groups")
		b.Logf("%d customers (%d relations), %d groups in %s with %d directory calls (%d batch/get_by_user, %d groupchat/get) at %d calls/s, latency %s; mark_tag write-back queued: %d calls so far",
			run.Customers, run.Relations, run.Groups, took.Round(time.Millisecond), calls, h.fake.Count(fakewecom.APIBatchGetByUser),
			h.fake.Count(fakewecom.APIGroupChatGet), rate, latency, h.fake.Count(fakewecom.APIMarkTag))
	}
}

func envStr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}
