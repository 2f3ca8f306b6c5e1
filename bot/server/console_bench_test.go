package server

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/bot/segments"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

// benchMembers sizes the console benchmarks' community; benchDB keeps it
// in a file that later runs reuse (writing a million members takes minutes):
//
//	go test ./bot/server -run '^$' -bench Console -benchtime=1x -console.members=1000000 -console.db=/tmp/console-1m.db
var (
	benchMembers = flag.Int("console.members", 20000, "members seeded for the console benchmarks")
	benchDB      = flag.String("console.db", "", "bbolt file holding the console benchmarks' community (written when missing or smaller, then reused)")
	benchNoBase  = flag.Bool("console.nobase", false, "skip the benchmarks' slow before-the-index baselines")
)

var benchStart = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// benchRareTag is a catalog tag one member in a thousand carries.
const benchRareTag = "需人工跟进"

// benchFile returns a bbolt file holding n members with realistic stage
// histories, tags and follows.
func benchFile(b *testing.B, n int) string {
	b.Helper()
	path := *benchDB
	if path == "" {
		path = filepath.Join(b.TempDir(), "bench.db")
	}
	st, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	have := 0
	_ = st.View(context.Background(), func(tx bot.Tx) (err error) { have, err = tx.MemberCount(); return err })
	states := []string{"xhs", "douyin", "store_poster", "website"}
	names := []string{"小红书", "抖音", "门店海报", "官网"}
	const batch = 5000
	for i := have; i < n; i += batch {
		err := st.Update(context.Background(), func(tx bot.Tx) error {
			for j := i; j < min(i+batch, n); j++ {
				at := benchStart.Add(time.Duration(j%(180*24)) * time.Hour)
				m := &bot.Member{ExternalUserID: fmt.Sprintf("wm%09d", j), Name: fmt.Sprintf("会员%d", j),
					Channel: names[j%4], State: states[j%4], CreatedAt: at, UpdatedAt: at,
					Follows: []bot.Follow{{StaffID: fmt.Sprintf("staff%02d", j%20), State: states[j%4], AddedAt: at}},
					Tags:    []string{"来源-" + names[j%4]}, Level: "普通"}
				if j%1000 == 7 {
					m.Tags = append(m.Tags, benchRareTag) // one in a thousand
				}
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
	seedCheckInDays(b, st, n)
	return path
}

// seedCheckInDays gives one member in ten 1–13 check-in days in a row
// (some in two campaigns), unless the file has them: the check-in
// report's member-day index at 1M members holds ~1.2M keys.
func seedCheckInDays(b *testing.B, st *bolt.Store, n int) {
	b.Helper()
	ctx := context.Background()
	key := func(j, d int, camp string) string {
		return fmt.Sprintf("wm%09d|%s|%s", j, benchStart.AddDate(0, 0, j%90+d).Format(time.DateOnly), camp)
	}
	seeded := false
	_ = st.View(ctx, func(tx bot.Tx) error {
		_, err := tx.Get(checkin.BucketMemberDays, key(7, 0, "早安打卡"))
		seeded = err == nil
		return nil
	})
	if seeded {
		return
	}
	for lo := 7; lo < n; lo += 50000 {
		if err := st.Update(ctx, func(tx bot.Tx) error {
			for j := lo; j < min(lo+50000, n); j += 10 {
				for d := range 1 + j%13 {
					for _, camp := range []string{"早安打卡", "夜读打卡"}[:1+j%2] {
						if err := tx.Put(checkin.BucketMemberDays, key(j, d, camp), []byte{1}); err != nil {
							return err
						}
					}
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// openBench opens the file as serve would after a restart: a new store and
// server, nothing cached.
// The returned close closes the store.
func openBench(b *testing.B, path string) (*Server, func()) {
	b.Helper()
	st, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	sc := scenarios.LoadDefault()
	return New(Options{Store: st, Log: zerolog.Nop(), Scenario: func() *scenarios.Scenario { return sc },
		Now: func() time.Time { return benchStart.AddDate(0, 7, 0) }, FunnelTTL: time.Hour}), func() { st.Close() }
}

// seedBench is openBench on a benchFile of n members, closed when b ends.
func seedBench(b *testing.B, n int) *Server {
	s, closeStore := openBench(b, benchFile(b, n))
	b.Cleanup(closeStore)
	return s
}

func benchGet(b *testing.B, s *Server, url string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", url, nil)
	req.RemoteAddr = "127.0.0.1:1"
	s.ServeHTTP(rec, req)
	if rec.Code != 200 {
		b.Fatal(rec.Body.String())
	}
	return rec
}

// BenchmarkConsoleFunnelCold is GET /api/v1/funnel on a store just opened
// (a restart): "tallies" is the funnel as served, read from the member
// tallies; "member-pass" is, in the same run, what it cost before — one
// pass over every member counting stages, channels and tags (the pass the
// funnel made after each restart and every FunnelTTL).
func BenchmarkConsoleFunnelCold(b *testing.B) {
	path := benchFile(b, *benchMembers)
	b.Run("tallies", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			s, closeStore := openBench(b, path)
			b.StartTimer()
			rec := benchGet(b, s, "/api/v1/funnel")
			if want := fmt.Sprintf(`"members":%d,`, *benchMembers); !strings.Contains(rec.Body.String(), want) {
				b.Fatalf("want %s in %s", want, rec.Body.String())
			}
			closeStore()
		}
	})
	b.Run("member-pass", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			s, closeStore := openBench(b, path)
			b.StartTimer()
			n, current, tags := 0, map[bot.Stage]int{}, map[string]int{}
			channels := map[string]map[bot.Stage]int{}
			if err := s.eachMember(context.Background(), func(m *bot.Member) bool {
				n++
				current[m.Stage]++
				if channels[m.Channel] == nil {
					channels[m.Channel] = map[bot.Stage]int{}
				}
				channels[m.Channel][m.Reached()]++
				for _, t := range m.Tags {
					tags[t]++
				}
				return true
			}); err != nil || n != *benchMembers {
				b.Fatal(err, n)
			}
			closeStore()
		}
	})
}

// BenchmarkConsoleCheckInReport is the check-in report's pass (leaders
// from the member index, per-day counts and streaks over the check-in
// days), made every FunnelTTL in the background: "pages" as served (read
// transactions of checkInPage keys), "one-tx" the whole index in one read
// transaction, as before.
func BenchmarkConsoleCheckInReport(b *testing.B) {
	s := seedBench(b, *benchMembers)
	for _, mode := range []string{"pages", "one-tx"} {
		b.Run(mode, func(b *testing.B) {
			if mode == "one-tx" {
				old := checkInPage
				checkInPage = 0
				defer func() { checkInPage = old }()
			}
			var a *aggregate
			for b.Loop() {
				var err error
				if a, err = s.computeAggregate(context.Background()); err != nil || len(a.Leaders) != leaderboardSize {
					b.Fatal(err, a.Leaders)
				}
			}
			members := 0
			for _, n := range a.Streaks {
				members += n
			}
			b.ReportMetric(float64(members), "members")
		})
	}
}

// BenchmarkConsoleFunnel is GET /api/v1/funnel on an open store.
func BenchmarkConsoleFunnel(b *testing.B) {
	s := seedBench(b, *benchMembers)
	b.ResetTimer()
	for b.Loop() {
		benchGet(b, s, "/api/v1/funnel")
	}
}

// BenchmarkConsoleMemberSearch is GET /api/v1/members: name searches
// (q) that match nothing, a few members, or a few of one stage — through
// the member bitmaps ("bitmaps") and, in the same run, by walking the
// members as before them ("walk": one page reads maxScanPage members when
// nothing matches) — then a rare tag, a stage and a rare tag (walks the
// tag's members), and a common stage (the first page of it).
func BenchmarkConsoleMemberSearch(b *testing.B) {
	s := seedBench(b, *benchMembers)
	for _, tc := range []struct{ name, query string }{
		{"q-no-match", "q=nobody&limit=50"},
		{"q-name-few", "q=" + url.QueryEscape(fmt.Sprintf("会员%d", *benchMembers/10+7)) + "&limit=50"},
		{"q-name-and-stage", "q=" + url.QueryEscape(fmt.Sprintf("会员%d", *benchMembers/100+3)) + "&stage=loyal&limit=50"},
		{"tag-rare", "tag=" + benchRareTag + "&limit=50"},
		{"stage-and-rare-tag", "stage=loyal&tag=" + benchRareTag + "&limit=50"},
		{"stage-common", "stage=aware&limit=50"},
	} {
		modes := []string{""}
		if strings.HasPrefix(tc.name, "q-") {
			modes = []string{"/bitmaps", "/walk"}
		}
		for _, mode := range modes {
			if mode == "/walk" && *benchNoBase {
				continue
			}
			b.Run(tc.name+mode, func(b *testing.B) {
				if mode == "/walk" {
					old := maxSearchCandidates
					maxSearchCandidates = -1
					defer func() { maxSearchCandidates = old }()
				}
				var rec *httptest.ResponseRecorder
				for b.Loop() {
					rec = benchGet(b, s, "/api/v1/members?"+tc.query)
				}
				var body struct {
					Members []any `json:"members"`
					Scanned int   `json:"scanned"`
				}
				_ = json.Unmarshal(rec.Body.Bytes(), &body)
				b.ReportMetric(float64(len(body.Members)), "members")
				b.ReportMetric(float64(body.Scanned), "scanned")
			})
		}
	}
}

// BenchmarkConsoleSegmentCount counts segments over the community with
// the member bitmaps ("bitmaps": algebra over term bitmaps; only members
// on a cutoff day are read) and, in the same run, by reading the members
// of the rarest indexed rule ("members", what a count cost before the
// bitmaps; a segment without an indexed rule read every member).
// -console.nobase skips the slow "members" runs.
func BenchmarkConsoleSegmentCount(b *testing.B) {
	s := seedBench(b, *benchMembers)
	sc := scenarios.LoadDefault()
	for _, tc := range []struct {
		name string
		f    scenarios.SegmentFilter
	}{
		{"rare-tag", scenarios.SegmentFilter{TagsAny: []string{benchRareTag}}},
		{"stage-in-channel", scenarios.SegmentFilter{Stages: []string{"loyal"}, Channels: []string{"xhs"}}},
		{"broad-stages-two-staff", scenarios.SegmentFilter{Stages: []string{"aware", "interest"}, Staff: []string{"staff03", "staff07"}}},
		{"silent", scenarios.SegmentFilter{SilentDays: 14}},
		{"added-within-tags-none", scenarios.SegmentFilter{AddedWithin: scenarios.Duration(60 * 24 * time.Hour), TagsNone: []string{benchRareTag}}},
	} {
		seg, err := sc.CompileSegment(tc.f)
		if err != nil {
			b.Fatal(err)
		}
		for _, mode := range []string{"bitmaps", "members"} {
			if mode == "members" && *benchNoBase {
				continue
			}
			b.Run(tc.name+"/"+mode, func(b *testing.B) {
				segments.Bitmaps = mode == "bitmaps"
				defer func() { segments.Bitmaps = true }()
				var res segments.Result
				for b.Loop() {
					if res, err = segments.Count(context.Background(), s.o.Store, seg, s.o.Now(), 5); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(res.Total), "members")
				b.ReportMetric(float64(res.Scanned), "scanned")
			})
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

// BenchmarkConsoleMemberDetail is GET /api/v1/members/{id}: the member,
// her check-in days and her newest events and actions (50 of each here,
// read from her history index), on the benchmarks' community.
func BenchmarkConsoleMemberDetail(b *testing.B) {
	s := seedBench(b, *benchMembers)
	id := fmt.Sprintf("wm%09d", *benchMembers/2)
	ctx := context.Background()
	for i := range 50 {
		if _, err := s.o.Store.AppendEvent(ctx, &bot.Event{Type: bot.EventKfText, Source: bot.SourceSim, ExternalUserID: id,
			Content: fmt.Sprint("你好 ", i), DedupeKey: fmt.Sprint("bench|detail|", id, "|", i)}); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.o.Store.Update(ctx, func(tx bot.Tx) error {
		for i := range 50 {
			a, _ := bot.NewAction(bot.ActionKfMessage, fmt.Sprint("bench|detail|", id, "|", i), bot.KfMessage{ExternalUserID: id, Text: "您好"})
			a.MemberID = id
			if _, err := tx.Enqueue(a); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		rec := benchGet(b, s, "/api/v1/members/"+id)
		if !strings.Contains(rec.Body.String(), "你好 49") {
			b.Fatal(rec.Body.String())
		}
	}
}
