package server

import (
	"context"
	"flag"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

// benchMembers sizes the console benchmarks' community:
//
//	go test ./bot/server -run '^$' -bench Console -benchtime=1x -console.members=1000000
var benchMembers = flag.Int("console.members", 20000, "members seeded for the console benchmarks")

// seedBench writes n members with realistic stage histories, tags and follows.
func seedBench(b *testing.B, n int) *Server {
	b.Helper()
	st, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	sc := scenarios.LoadDefault()
	start := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	states := []string{"xhs", "douyin", "store_poster", "website"}
	names := []string{"小红书", "抖音", "门店海报", "官网"}
	const batch = 5000
	for i := 0; i < n; i += batch {
		err := st.Update(context.Background(), func(tx bot.Tx) error {
			for j := i; j < min(i+batch, n); j++ {
				at := start.Add(time.Duration(j%(180*24)) * time.Hour)
				m := &bot.Member{ExternalUserID: fmt.Sprintf("wm%09d", j), Name: fmt.Sprintf("会员%d", j),
					Channel: names[j%4], State: states[j%4], CreatedAt: at, UpdatedAt: at,
					Follows: []bot.Follow{{StaffID: fmt.Sprintf("staff%02d", j%20), State: states[j%4], AddedAt: at}},
					Tags:    []string{"来源-" + names[j%4]}, Level: "普通"}
				stages := 1 + j%7%4 // a skewed funnel
				prev := bot.StageNone
				for k := 0; k < stages; k++ {
					m.StageHistory = append(m.StageHistory, bot.StageChange{From: prev, To: bot.Stages[k], At: at.Add(time.Duration(k) * 48 * time.Hour), Cause: "bench"})
					prev = bot.Stages[k]
				}
				m.Stage = prev
				if j%3 == 0 {
					m.CheckIns = j % 21
				}
				if err := tx.PutMember(m); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return New(Options{Store: st, Log: zerolog.Nop(), Scenario: func() *scenarios.Scenario { return sc },
		Now: func() time.Time { return start.AddDate(0, 7, 0) }, FunnelTTL: time.Hour})
}

// BenchmarkConsoleAggregate is one full pass over the members (what a funnel
// refresh costs every FunnelTTL).
func BenchmarkConsoleAggregate(b *testing.B) {
	s := seedBench(b, *benchMembers)
	b.ResetTimer()
	for b.Loop() {
		a, err := s.computeAggregate(context.Background())
		if err != nil || a.Members != *benchMembers {
			b.Fatal(err, a.Members)
		}
	}
	b.ReportMetric(float64(*benchMembers)*float64(b.N)/b.Elapsed().Seconds(), "members/s")
}

// BenchmarkConsoleFunnelCached is GET /api/v1/funnel answered from the cached aggregate.
func BenchmarkConsoleFunnelCached(b *testing.B) {
	s := seedBench(b, *benchMembers)
	if _, err := s.agg.get(context.Background(), false); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/api/v1/funnel", nil)
		req.RemoteAddr = "127.0.0.1:1"
		s.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Body.String())
		}
	}
}

// BenchmarkConsoleMemberSearch is a name search that matches nothing: the
// worst case, one page scanning maxScanPage members.
func BenchmarkConsoleMemberSearch(b *testing.B) {
	s := seedBench(b, *benchMembers)
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/api/v1/members?q=nobody&limit=50", nil)
		req.RemoteAddr = "127.0.0.1:1"
		s.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Body.String())
		}
	}
}

// BenchmarkConsoleExport is the members export of the whole community, as
// CSV (streamed) and as .xlsx (built whole, then sent).
func BenchmarkConsoleExport(b *testing.B) {
	s := seedBench(b, *benchMembers)
	for _, ext := range []string{"csv", "xlsx"} {
		b.Run(ext, func(b *testing.B) {
			var size int
			for b.Loop() {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", "/api/v1/export/members."+ext, nil)
				req.RemoteAddr = "127.0.0.1:1"
				s.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatal(rec.Body.String())
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(*benchMembers)*float64(b.N)/b.Elapsed().Seconds(), "members/s")
			b.ReportMetric(float64(size), "bytes")
		})
	}
}
