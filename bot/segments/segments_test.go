package segments_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/segments"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/storage/bolt"
)

const scenarioYAML = `brand:
  name: 测试茶
tags:
  偏好: [爱领券, 需人工跟进]
channels:
  - state: xhs
    name: 小红书
  - state: dy
    name: 抖音
segments:
  - name: 小红书新客
    stages: [aware, interest]
    channels: [xhs]
    tags_none: [需人工跟进]
  - name: 沉默
    silent_days: 14
`

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// member i: channel xhs for even i, stage by i%4, staff by i%3, every
// fifth needs a person, every seventh silent for 20 days.
func member(i int) *bot.Member {
	ch, st := "小红书", "xhs"
	if i%2 == 1 {
		ch, st = "抖音", "dy"
	}
	m := &bot.Member{ExternalUserID: fmt.Sprintf("wm%07d", i), Channel: ch, State: st, Stage: bot.Stages[i%4],
		CreatedAt: now.Add(-30 * 24 * time.Hour), LastActiveAt: now.Add(-time.Hour),
		Follows: []bot.Follow{{StaffID: fmt.Sprintf("staff%d", i%3), AddedAt: now.Add(-30 * 24 * time.Hour)}}}
	if i%5 == 0 {
		m.Tags = []string{"需人工跟进"}
	}
	if i%7 == 0 {
		m.LastActiveAt = now.Add(-20 * 24 * time.Hour)
	}
	return m
}

func openStore(tb testing.TB, n int) *bolt.Store {
	tb.Helper()
	st, err := bolt.Open(filepath.Join(tb.TempDir(), "t.db"), bolt.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	for lo := 0; lo < n; lo += 10000 {
		if err := st.Update(context.Background(), func(tx bot.Tx) error {
			for i := lo; i < lo+10000 && i < n; i++ {
				if err := tx.PutMember(member(i)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			tb.Fatal(err)
		}
	}
	return st
}

func loadScenario(tb testing.TB) *scenarios.Scenario {
	tb.Helper()
	sc, err := scenarios.LoadBytes("s.yaml", []byte(scenarioYAML))
	if err != nil {
		tb.Fatal(err)
	}
	return sc
}

// countingViewer counts the read transactions a scan takes.
type countingViewer struct {
	segments.Viewer
	mu    sync.Mutex
	views int
}

func (c *countingViewer) View(ctx context.Context, fn func(bot.Tx) error) error {
	c.mu.Lock()
	c.views++
	c.mu.Unlock()
	return c.Viewer.View(ctx, fn)
}

func TestCountPagesAndSplits(t *testing.T) {
	old := segments.PageSize
	segments.PageSize = 100
	t.Cleanup(func() { segments.PageSize = old })
	const n = 1050
	st := openStore(t, n)
	sc := loadScenario(t)
	for _, name := range []string{"小红书新客", "沉默"} {
		t.Run(name, func(t *testing.T) {
			seg := sc.Segment(name)
			want, byStaff := 0, map[string]int{}
			var first []string
			for i := 0; i < n; i++ {
				if m := member(i); seg.Match(m, now) {
					want++
					byStaff[m.PrimaryStaff()]++
					if len(first) < 5 {
						first = append(first, m.ExternalUserID)
					}
				}
			}
			if want == 0 || want == n {
				t.Fatalf("fixture: %d of %d match; the test needs some of each", want, n)
			}
			for _, bitmaps := range []bool{true, false} {
				segments.Bitmaps = bitmaps
				t.Cleanup(func() { segments.Bitmaps = true })
				v := &countingViewer{Viewer: st}
				res, err := segments.Count(context.Background(), v, seg, now, 5)
				if err != nil {
					t.Fatal(err)
				}
				checkCount(t, res, want, first, byStaff)
				if !bitmaps {
					// Without bitmaps a segment with an indexed rule reads
					// only the members of its rarest one (and at least every
					// member that matches); one without reads everyone.
					if res.Scanned < want || res.Scanned > n {
						t.Errorf("total %d of %d scanned, want %d", res.Total, res.Scanned, want)
					}
					if indexed := len(seg.IndexTerms()) > 0; indexed && res.Scanned == n || !indexed && res.Scanned != n {
						t.Errorf("indexed rules %v, yet %d of %d members read", seg.IndexTerms(), res.Scanned, n)
					}
				} else if res.Scanned > n/20 {
					// With them only the members of a cutoff day are read.
					t.Errorf("bitmaps: %d of %d members read", res.Scanned, n)
				}
				if v.views < res.Scanned/segments.PageSize {
					t.Errorf("%d read transactions for %d members in pages of %d: not paging", v.views, res.Scanned, segments.PageSize)
				}
			}
			// Paging through the members finds the same ones, in order.
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				list, next, err := segments.Page(context.Background(), st, seg, now, cursor, 37, 250)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range list {
					got = append(got, m.ExternalUserID)
				}
				if next == "" {
					break
				}
				if pages > n {
					t.Fatal("paging does not end")
				}
				cursor = next
			}
			if len(got) != want {
				t.Errorf("paged %d members, want %d", len(got), want)
			}
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Fatalf("page order broken at %d: %s after %s", i, got[i], got[i-1])
				}
			}
		})
	}
}

// checkCount compares a count with the members' own Match: total, split, sample.
func checkCount(t *testing.T, res segments.Result, want int, first []string, byStaff map[string]int) {
	t.Helper()
	if res.Total != want {
		t.Errorf("total %d, want %d", res.Total, want)
	}
	sum := 0
	for i, sc := range res.ByStaff {
		sum += sc.Members
		if sc.Members != byStaff[sc.StaffID] {
			t.Errorf("%s: %d, want %d", sc.StaffID, sc.Members, byStaff[sc.StaffID])
		}
		if i > 0 && sc.Members > res.ByStaff[i-1].Members {
			t.Errorf("by_staff not largest first: %+v", res.ByStaff)
		}
	}
	if sum != want || len(res.ByStaff) != len(byStaff) {
		t.Errorf("split %+v does not add up to %d", res.ByStaff, want)
	}
	if len(res.Sample) != 5 {
		t.Fatalf("sample %d, want 5", len(res.Sample))
	}
	for i, m := range res.Sample {
		if m.ExternalUserID != first[i] {
			t.Errorf("sample[%d] = %s, want %s", i, m.ExternalUserID, first[i])
		}
	}
}

func TestCountStopsWhenCanceled(t *testing.T) {
	old := segments.PageSize
	segments.PageSize = 10
	t.Cleanup(func() { segments.PageSize = old })
	st := openStore(t, 200)
	seg := loadScenario(t).Segment("沉默")
	ctx, cancel := context.WithCancel(context.Background())
	seen := 0
	_, err := segments.Each(ctx, st, seg, now, "", func(*bot.Member) bool {
		seen++
		cancel()
		return true
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if seen > segments.PageSize {
		t.Errorf("%d members after the cancel: the scan went on past its page", seen)
	}
}

// BenchmarkCount counts a segment over the member store while a writer
// keeps committing, and reports the writer's slowest commit during the
// count: the count's short read transactions must not hold writes up.
//
//	go test ./bot/segments -run '^$' -bench Count -benchtime 3x
func BenchmarkCount(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			st := openStore(b, n)
			seg := loadScenario(b).Segment("小红书新客")
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var mu sync.Mutex
			var worst time.Duration
			writes := 0
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					start := time.Now()
					_ = st.Update(ctx, func(tx bot.Tx) error { return tx.PutMember(member(n + i%1000)) })
					d := time.Since(start)
					mu.Lock()
					writes++
					if d > worst {
						worst = d
					}
					mu.Unlock()
					time.Sleep(time.Millisecond)
				}
			}()
			b.ResetTimer()
			var res segments.Result
			for i := 0; i < b.N; i++ {
				var err error
				if res, err = segments.Count(ctx, st, seg, now, 10); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cancel()
			wg.Wait()
			b.ReportMetric(float64(res.Scanned)/(float64(b.Elapsed().Seconds())/float64(b.N)), "members/s")
			b.ReportMetric(float64(worst.Microseconds())/1000, "worst-write-ms")
			b.ReportMetric(float64(writes), "writes")
		})
	}
}

// TestCountBitsMatchesTheEvaluator: over members with every field a rule
// reads varied (some rewritten, so their bitmaps moved), the bitmap count
// of many segments — cutoff days, straddling spend buckets, several staff,
// groups — equals Match over every member: total, split and sample.
func TestCountBitsMatchesTheEvaluator(t *testing.T) {
	old := segments.PageSize
	segments.PageSize = 50
	t.Cleanup(func() { segments.PageSize = old })
	st, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rnd := rand.New(rand.NewPCG(1, 2))
	pick := func(xs ...string) string { return xs[rnd.IntN(len(xs))] }
	gen := func(i int) *bot.Member {
		m := member(i)
		m.Stage = bot.Stages[rnd.IntN(len(bot.Stages))]
		m.Tags = nil
		for _, tag := range []string{"爱领券", "需人工跟进"} {
			if rnd.IntN(3) == 0 {
				m.Tags = append(m.Tags, tag)
			}
		}
		m.Follows = nil
		for _, s := range []string{"staff0", "staff1", "staff2"} {
			if rnd.IntN(2) == 0 {
				f := bot.Follow{StaffID: s, AddedAt: now.Add(-time.Duration(rnd.IntN(60*24)) * time.Hour)}
				if rnd.IntN(5) == 0 {
					f.DeletedAt = now.Add(-time.Hour)
				}
				m.Follows = append(m.Follows, f)
			}
		}
		m.Lost = rnd.IntN(10) == 0
		m.LastActiveAt = now.Add(-time.Duration(rnd.IntN(40*24*60)) * time.Minute)
		if rnd.IntN(10) == 0 {
			m.LastActiveAt = time.Time{}
		}
		m.SpendFen = int64(rnd.IntN(30000)) - 1000
		m.Orders = rnd.IntN(25)
		if rnd.IntN(4) == 0 {
			m.Groups = []string{pick("wrA", "wrB")}
		}
		return m
	}
	const n = 800
	members := make([]*bot.Member, n)
	for round := range 2 {
		if err := st.Update(context.Background(), func(tx bot.Tx) error {
			for i := range n {
				if round == 1 && i%3 != 0 {
					continue // the second round rewrites a third of them
				}
				members[i] = gen(i)
				if err := tx.PutMember(members[i]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	sc := loadScenario(t)
	for _, f := range []scenarios.SegmentFilter{
		{},
		{Lost: true},
		{Stages: []string{"aware", "loyal"}, Channels: []string{"xhs"}},
		{TagsAny: []string{"爱领券"}, TagsNone: []string{"需人工跟进"}},
		{TagsAll: []string{"爱领券", "需人工跟进"}},
		{Staff: []string{"staff1"}},
		{Staff: []string{"staff0", "staff2"}, Stages: []string{"interest"}},
		{SilentDays: 14},
		{ActiveDays: 3, Channels: []string{"dy"}},
		{AddedWithin: scenarios.Duration(20 * 24 * time.Hour)},
		{MinSpendYuan: 10000},
		{MinSpendYuan: 12345, MinOrders: 3},
		{MinOrders: 22},
		{Groups: []string{"wrA"}, Stages: []string{"aware"}},
		{Groups: []string{"any"}, SilentDays: 10, MinSpendYuan: 5000},
	} {
		seg, err := sc.CompileSegment(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprintf("%+v", f), func(t *testing.T) {
			want, byStaff := 0, map[string]int{}
			var first []string
			for _, m := range members {
				if seg.Match(m, now) {
					want++
					byStaff[seg.Sender(m)]++
					if len(first) < 5 {
						first = append(first, m.ExternalUserID)
					}
				}
			}
			res, err := segments.Count(context.Background(), st, seg, now, 5)
			if err != nil {
				t.Fatal(err)
			}
			if want < 5 {
				t.Fatalf("fixture: %d match; the test needs more", want)
			}
			checkCount(t, res, want, first, byStaff)
			t.Logf("%d members, %d read", res.Total, res.Scanned)
		})
	}
}
