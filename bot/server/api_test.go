package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/simulation"
	"github.com/wecombot/wecombot/scenarios"
	"github.com/wecombot/wecombot/scenarios/holder"
	"github.com/wecombot/wecombot/storage/bolt"
)

// fixture is a server over a bbolt store fed through the real engine with
// the embedded demo scenario and a fixed clock.
type fixture struct {
	t   *testing.T
	s   *Server
	st  *bolt.Store
	eng *engine.Engine
	sc  *scenarios.Scenario
	now time.Time
	m   *metrics.Metrics
	ctl *fakeScenarios
}

var fixtureNow = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC) // a Friday

func newFixture(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, st: st, sc: scenarios.LoadDefault(), now: fixtureNow, m: metrics.New()}
	f.ctl = &fakeScenarios{sc: f.sc}
	current := func() *scenarios.Scenario { return f.sc }
	f.eng = engine.New(current, zerolog.Nop(), func() time.Time { return f.now })
	o := Options{Store: st, Log: zerolog.Nop(), Metrics: f.m, Now: func() time.Time { return f.now },
		Scenario: current, Scenarios: f.ctl}
	if mod != nil {
		mod(&o)
	}
	f.s = New(o)
	return f
}

// feed appends ev and applies it through the engine, as the pipeline does.
func (f *fixture) feed(ev bot.Event) {
	f.t.Helper()
	ctx := context.Background()
	if ev.At.IsZero() {
		ev.At = f.now
	}
	if ev.Source == "" {
		ev.Source = bot.SourceSim
	}
	if _, err := f.st.AppendEvent(ctx, &ev); err != nil {
		f.t.Fatal(err)
	}
	err := f.st.Update(ctx, func(tx bot.Tx) error {
		if _, err := tx.MarkProcessed(ev.Seq, ""); err != nil {
			return err
		}
		return f.eng.Handle(ctx, tx, &ev)
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) add(id, name, state, staff string, at time.Time) {
	f.feed(bot.Event{Type: bot.EventContactAdd, ExternalUserID: id, StaffID: staff, State: state, At: at,
		WelcomeCode: "WC-" + id, Data: map[string]string{bot.DataName: name}})
}

func (f *fixture) kf(id, text string, at time.Time) {
	f.feed(bot.Event{Type: bot.EventKfText, ExternalUserID: id, Content: text, OpenKfID: "wk1", MsgID: fmt.Sprint(id, at.UnixNano()), At: at})
}

func (f *fixture) order(id, orderID string, fen int64, at time.Time) {
	f.feed(bot.Event{Type: bot.EventOrderPaid, ExternalUserID: id, At: at, Source: bot.SourceShop,
		Data: map[string]string{bot.DataOrderID: orderID, bot.DataAmountFen: fmt.Sprint(fen)}})
}

type response struct {
	code int
	body string
	json map[string]any
	hdr  http.Header
}

func (f *fixture) do(method, path string, body io.Reader, hdr ...string) response {
	f.t.Helper()
	req := httptest.NewRequest(method, path, body)
	req.RemoteAddr = "127.0.0.1:4000"
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	f.s.ServeHTTP(rec, req)
	r := response{code: rec.Code, body: rec.Body.String(), hdr: rec.Header()}
	_ = json.Unmarshal(rec.Body.Bytes(), &r.json)
	return r
}

func (f *fixture) get(path string) response { return f.do("GET", path, nil) }

// seedCommunity builds a small community across two weeks:
// xhs: alice (interest, checks in 3 days), bob (purchase, then loyal by 5 orders),
// douyin: carol (aware, lost), dave (purchase); store_poster: <script> eve (aware).
func (f *fixture) seedCommunity() {
	d := func(day, hour int) time.Time { return time.Date(2026, 11, day, hour, 0, 0, 0, time.UTC) }
	f.add("wm_alice", "Alice 小艾", "xhs", "zhangsan", d(10, 2))
	f.add("wm_bob", "Bob", "xhs", "lisi", d(11, 2))
	f.add("wm_carol", "Carol", "douyin", "zhangsan", d(12, 2))
	f.add("wm_dave", "Dave", "douyin", "lisi", d(17, 2))
	f.add("wm_eve", `<script>alert("x")</script><img src=x onerror=alert(1)>`, "store_poster", "zhangsan", d(18, 2))
	for _, day := range []int{17, 18, 19} {
		// 08:00 in Asia/Shanghai: inside the 早安打卡 campaign's 06:00-09:00 window.
		f.kf("wm_alice", "打卡", d(day, 0))
	}
	f.order("wm_bob", "SO1", 2990, d(12, 4))
	f.order("wm_bob", "SO2", 3600, d(18, 4))
	f.order("wm_bob", "SO3", 5800, d(19, 4))
	f.order("wm_bob", "SO5", 1000, d(19, 5))
	f.order("wm_bob", "SO6", 1000, d(19, 6)) // the fifth order: loyal
	f.order("wm_dave", "SO4", 1990, d(18, 5))
	f.feed(bot.Event{Type: bot.EventContactDelFollow, ExternalUserID: "wm_carol", StaffID: "zhangsan", At: d(18, 6)})
}

func ids(r response) []string {
	var out []string
	list, _ := r.json["members"].([]any)
	for _, m := range list {
		out = append(out, m.(map[string]any)["external_user_id"].(string))
	}
	return out
}

func TestMembersFilters(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.seedCommunity()
	member := func(id string) *bot.Member {
		var m *bot.Member
		_ = f.st.View(context.Background(), func(tx bot.Tx) error { m, _ = tx.Member(id); return nil })
		return m
	}
	if m := member("wm_bob"); m.Stage != bot.StageLoyal {
		t.Fatalf("seed: bob is %s (%+v)", m.Stage, m)
	}
	cases := []struct {
		query string
		want  []string
		// scanned is how many members the page read: the rarest indexed
		// term's, or everyone when the filter names none.
		scanned int
	}{
		{"", []string{"wm_alice", "wm_bob", "wm_carol", "wm_dave", "wm_eve"}, 5},
		{"stage=aware", []string{"wm_carol", "wm_eve"}, 2},
		{"stage=interest", []string{"wm_alice"}, 1},
		{"stage=loyal", []string{"wm_bob"}, 1},
		{"stage=purchase", []string{"wm_dave"}, 1},
		{"channel=小红书", []string{"wm_alice", "wm_bob"}, 2},
		{"channel=douyin", []string{"wm_carol", "wm_dave"}, 2}, // by state too
		{"staff=lisi", []string{"wm_bob", "wm_dave"}, 2},
		{"staff=zhangsan", []string{"wm_alice", "wm_eve"}, 2}, // carol deleted zhangsan
		{"lost=true", []string{"wm_carol"}, 1},
		{"lost=false&stage=aware", []string{"wm_eve"}, 2},
		// A name search reads the members its characters' bitmaps leave,
		// and those whose id starts with it.
		{"q=ALI", []string{"wm_alice"}, 1},
		{"q=小艾", []string{"wm_alice"}, 1},
		{"q=wm_d", []string{"wm_dave"}, 1},
		{"q=%3Cscript", []string{"wm_eve"}, 1},
		{"q=nobody", nil, 0},
		{"q=ALI&stage=loyal", nil, 0},
		{"tag=" + f.sc.Funnel.StageTag(bot.StageLoyal), []string{"wm_bob"}, 1},
		{"level=" + member("wm_alice").Level, []string{"wm_alice", "wm_bob", "wm_carol", "wm_dave", "wm_eve"}, 5},
		{"level=尊享", nil, 0},
		{"stage=none", nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			r := f.get("/api/v1/members?" + tc.query)
			if r.code != 200 {
				t.Fatalf("%d %s", r.code, r.body)
			}
			if got := ids(r); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if r.json["total"].(float64) != 5 {
				t.Errorf("total %v", r.json["total"])
			}
			if r.json["scanned"].(float64) != float64(tc.scanned) {
				t.Errorf("scanned %v, want %d", r.json["scanned"], tc.scanned)
			}
			if _, ok := r.json["next_cursor"]; ok {
				t.Errorf("next_cursor on the only page: %v", r.json["next_cursor"])
			}
		})
	}
}

// TestMembersNameSearch: a name search pages through the same members in
// external_userid order whether it reads the bitmaps' candidates or walks
// every member (too many candidates): those whose name holds q (any case)
// or whose id starts with it.
func TestMembersNameSearch(t *testing.T) {
	f := newFixture(t, nil)
	var all []*bot.Member
	if err := f.st.Update(context.Background(), func(tx bot.Tx) error {
		for i := range 300 {
			m := &bot.Member{ExternalUserID: fmt.Sprintf("wm%04d", (i*7919)%300), Name: fmt.Sprintf("会员%d", i), Stage: bot.Stages[i%4]}
			switch i % 10 {
			case 3:
				m.Name = fmt.Sprintf("张三Li%d", i)
			case 5:
				m.Name = strings.Repeat("长", 70) + "张三"
			}
			all = append(all, m)
			if err := tx.PutMember(m); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ q, extra string }{
		{"会员1", ""}, {"张三", ""}, {"三l", ""}, {"LI1", ""}, {"wm02", ""}, {"员2", "&stage=aware"}, {"张三", "&stage=loyal"}, {"没有", ""},
	} {
		var want []string
		for _, m := range all {
			if (strings.Contains(strings.ToLower(m.Name), strings.ToLower(tc.q)) || strings.HasPrefix(m.ExternalUserID, tc.q)) &&
				(tc.extra == "" || m.Stage == bot.Stage(strings.TrimPrefix(tc.extra, "&stage="))) {
				want = append(want, m.ExternalUserID)
			}
		}
		slices.Sort(want)
		for _, candidates := range []int{5000, 3, -1} {
			t.Run(fmt.Sprintf("%s%s/candidates=%d", tc.q, tc.extra, candidates), func(t *testing.T) {
				old := maxSearchCandidates
				maxSearchCandidates = candidates
				defer func() { maxSearchCandidates = old }()
				var got []string
				cursor := ""
				for page := 0; ; page++ {
					r := f.get("/api/v1/members?limit=7&q=" + url.QueryEscape(tc.q) + tc.extra + "&cursor=" + url.QueryEscape(cursor))
					if r.code != 200 {
						t.Fatalf("%d %s", r.code, r.body)
					}
					got = append(got, ids(r)...)
					next, _ := r.json["next_cursor"].(string)
					if next == "" || page > 100 {
						break
					}
					cursor = next
				}
				if !slices.Equal(got, want) {
					t.Errorf("got %v\nwant %v", got, want)
				}
			})
		}
	}
}

// TestMembersIndexedPages: pages along an indexed term follow the cursor
// and end without a next_cursor on the term's last member.
func TestMembersIndexedPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.seedCommunity()
	var got []string
	cursor := ""
	for page := 0; page < 5; page++ {
		r := f.get("/api/v1/members?stage=aware&limit=1&cursor=" + cursor)
		got = append(got, ids(r)...)
		next, ok := r.json["next_cursor"].(string)
		if !ok {
			break
		}
		cursor = next
	}
	if !slices.Equal(got, []string{"wm_carol", "wm_eve"}) {
		t.Errorf("pages: %v", got)
	}
}

func TestMembersBadParameters(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	cases := []struct{ query, param string }{
		{"stage=vip", "stage"},
		{"limit=0", "limit"},
		{"limit=501", "limit"},
		{"limit=ten", "limit"},
		{"lost=maybe", "lost"},
		{"sort=name", "sort"},
		{"q=" + strings.Repeat("x", 200), "q"},
		{"stage=aware&stage=loyal", "stage"},
		{"cursor=" + strings.Repeat("c", 300), "cursor"},
	}
	for _, tc := range cases {
		r := f.get("/api/v1/members?" + tc.query)
		if r.code != 400 || r.json["param"] != tc.param || r.json["code"] != "bad_parameter" || !strings.Contains(r.json["error"].(string), tc.param) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.query, r.code, r.body, tc.param)
		}
	}
	for _, path := range []string{"/api/v1/members/x?foo=1", "/api/v1/events?cursor=x", "/api/v1/outbox?limit=1001",
		"/api/v1/funnel?weeks=0", "/api/v1/funnel?weeks=abc", "/api/v1/campaigns?days=400", "/api/v1/operations?failed=-1",
		"/api/v1/export/members.csv?stage=gold", "/api/v1/status?x=1", "/api/v1/coupons?y=2", "/api/v1/scenarios?z=3"} {
		if r := f.get(path); r.code != 400 || r.json["param"] == nil {
			t.Errorf("%s: %d %s, want 400 naming a parameter", path, r.code, r.body)
		}
	}
}

func TestMembersPaginationVisitsEachOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	err := f.st.Update(context.Background(), func(tx bot.Tx) error {
		for i := range 23 {
			st := bot.StageAware
			if i%3 == 0 {
				st = bot.StageInterest
			}
			if err := tx.PutMember(&bot.Member{ExternalUserID: fmt.Sprintf("wm%03d", i), Stage: st, CreatedAt: f.now}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func(n int) { maxScanPage = n }(maxScanPage)
	for _, tc := range []struct {
		filter string
		want   int
		scan   int
	}{{"", 23, 50000}, {"&stage=interest", 8, 50000}, {"&stage=interest", 8, 5}} {
		maxScanPage = tc.scan
		var seen []string
		cursor, pages := "", 0
		for {
			r := f.get("/api/v1/members?limit=4&cursor=" + cursor + tc.filter)
			if r.code != 200 {
				t.Fatal(r.body)
			}
			got := ids(r)
			if len(got) > 4 {
				t.Fatalf("page of %d", len(got))
			}
			seen = append(seen, got...)
			pages++
			cursor, _ = r.json["next_cursor"].(string)
			if cursor == "" {
				break
			}
			if pages > 12 {
				t.Fatal("pagination does not end")
			}
		}
		if len(seen) != tc.want || !slices.IsSorted(seen) || len(slices.Compact(slices.Clone(seen))) != tc.want {
			t.Errorf("filter %q: visited %v, want %d distinct in order", tc.filter, seen, tc.want)
		}
	}
}

func TestMemberDetail(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.seedCommunity()
	r := f.get("/api/v1/members/wm_alice")
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	days := r.json["check_in_days"].([]any)
	if len(days) != 3 || days[0] != "2026-11-17" {
		t.Errorf("check-in days %v", days)
	}
	m := r.json["member"].(map[string]any)
	if len(m["stage_history"].([]any)) != 2 || len(m["follows"].([]any)) != 1 || len(m["tags"].([]any)) == 0 {
		t.Errorf("member sections: %v", m)
	}
	var kinds []string
	for _, it := range r.json["timeline"].([]any) {
		kinds = append(kinds, it.(map[string]any)["kind"].(string)+":"+it.(map[string]any)["type"].(string))
	}
	for _, want := range []string{"stage:stage", "event:contact.add", "event:kf.text", "action:welcome"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("timeline lacks %s: %v", want, kinds)
		}
	}
	conv := r.json["conversation"].([]any)
	if len(conv) < 4 || conv[0].(map[string]any)["from"] != "bot" { // welcome first, then 打卡 and replies
		t.Errorf("conversation: %v", conv)
	}
	if r.json["sections"] == nil {
		t.Errorf("no sections object")
	}

	// Member-supplied text stays inert in JSON.
	r = f.get("/api/v1/members/wm_eve")
	if strings.Contains(r.body, "<script>") || strings.Contains(r.body, "<img") {
		t.Errorf("unescaped member text in JSON: %s", r.body)
	}
	if r.json["member"].(map[string]any)["name"] != `<script>alert("x")</script><img src=x onerror=alert(1)>` {
		t.Errorf("name mangled: %v", r.json["member"])
	}

	if r := f.get("/api/v1/members/nobody"); r.code != 404 || r.json["code"] != "not_found" || !strings.Contains(r.body, "nobody") {
		t.Errorf("unknown member: %d %s", r.code, r.body)
	}
}

func TestMemberDetailSections(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) {
		o.MemberSections = []MemberSection{{Name: "points_ledger", Read: func(tx bot.Tx, m *bot.Member) (any, error) {
			return []map[string]any{{"delta": 10, "reason": "check-in " + m.ExternalUserID}}, nil
		}}}
	})
	f.add("wm1", "One", "xhs", "s1", f.now)
	r := f.get("/api/v1/members/wm1")
	if !strings.Contains(r.body, `"points_ledger":[{"delta":10,"reason":"check-in wm1"}]`) {
		t.Errorf("section missing: %s", r.body)
	}
}

func stageOf(r response, key string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range r.json["stages"].([]any) {
		sm := s.(map[string]any)
		out[sm["stage"].(string)] = sm[key].(float64)
	}
	return out
}

func TestFunnel(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.seedCommunity()
	r := f.get("/api/v1/funnel?weeks=3")
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	if got, want := stageOf(r, "current"), map[string]float64{"aware": 2, "interest": 1, "purchase": 1, "loyal": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("current %v, want %v", got, want)
	}
	// Reached: everyone aware; alice, bob, dave past interest? bob and dave
	// jumped to purchase (they reached interest by rank), alice interest.
	if got, want := stageOf(r, "reached"), map[string]float64{"aware": 5, "interest": 3, "purchase": 2, "loyal": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("reached %v, want %v", got, want)
	}
	conv := r.json["conversions"].([]any)
	if len(conv) != 3 || conv[0].(map[string]any)["rate"].(float64) != 0.6 || conv[2].(map[string]any)["rate"].(float64) != 0.5 {
		t.Errorf("conversions %v", conv)
	}
	if r.json["members"].(float64) != 5 || r.json["lost"].(float64) != 1 {
		t.Errorf("members/lost: %v %v", r.json["members"], r.json["lost"])
	}
	chans := map[string]map[string]any{}
	for _, c := range r.json["channels"].([]any) {
		chans[c.(map[string]any)["channel"].(string)] = c.(map[string]any)
	}
	if chans["小红书"]["members"].(float64) != 2 || chans["小红书"]["purchase_rate"].(float64) != 0.5 || chans["抖音"]["state"] != "douyin" {
		t.Errorf("channels %v", chans)
	}
	weeks := r.json["weeks"].([]any)
	if len(weeks) != 3 {
		t.Fatalf("weeks %v", weeks)
	}
	// Weeks start Monday: 11-09 (alice, bob, carol added; bob's first order 11-12),
	// 11-16 (dave, eve; alice interest; bob loyal; dave purchase).
	w1 := weeks[1].(map[string]any)
	w2 := weeks[2].(map[string]any)
	if w1["week"] != "2026-11-09" || w2["week"] != "2026-11-16" {
		t.Fatalf("week keys %v", weeks)
	}
	e1, e2 := w1["entered"].(map[string]any), w2["entered"].(map[string]any)
	if e1["aware"].(float64) != 3 || e1["purchase"].(float64) != 1 || e2["aware"].(float64) != 2 || e2["loyal"].(float64) != 1 || e2["interest"].(float64) != 1 {
		t.Errorf("weekly entries %v / %v", e1, e2)
	}

	// By channel.
	r = f.get("/api/v1/funnel?channel=" + "抖音")
	if got := stageOf(r, "reached"); got["aware"] != 2 || got["purchase"] != 1 {
		t.Errorf("douyin funnel %v", got)
	}
	if r := f.get("/api/v1/funnel?channel=tiktok"); r.code != 400 || r.json["param"] != "channel" {
		t.Errorf("unknown channel: %d %s", r.code, r.body)
	}
}

// TestFunnelIsCurrent: the funnel reads the tallies the store keeps in
// each member's transaction, so it counts a member added a moment ago,
// without ?fresh and within the check-in report's TTL.
func TestFunnelIsCurrent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.FunnelTTL = time.Minute })
	f.add("wm1", "One", "xhs", "s1", f.now)
	if r := f.get("/api/v1/funnel"); r.json["members"].(float64) != 1 {
		t.Fatal(r.body)
	}
	f.add("wm2", "Two", "xhs", "s1", f.now)
	r := f.get("/api/v1/funnel")
	if r.json["members"].(float64) != 2 || stageOf(r, "current")["aware"] != 2 {
		t.Errorf("not current: %s", r.body)
	}
	if r := f.get("/api/v1/funnel?channel=小红书"); r.json["members"].(float64) != 2 {
		t.Errorf("channel: %s", r.body)
	}
}

func TestAggregateCacheOnePassAtATime(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	passes := 0
	now := time.Unix(0, 0)
	c := newAggregateCache(time.Minute, func() time.Time { return now }, func(context.Context) (*aggregate, error) {
		mu.Lock()
		passes++
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		return &aggregate{ComputedAt: now}, nil
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.get(context.Background(), false); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if passes != 1 {
		t.Errorf("%d passes for 8 concurrent first requests, want 1", passes)
	}
}

func TestCampaignsAndCoupons(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.seedCommunity()
	r := f.get("/api/v1/campaigns?days=7")
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	ci := r.json["check_ins"].(map[string]any)
	days := ci["days"].([]any)
	if len(days) != 7 || days[6].(map[string]any)["day"] != "2026-11-20" {
		t.Fatalf("days %v", days)
	}
	byDay := map[string]float64{}
	for _, d := range days {
		byDay[d.(map[string]any)["day"].(string)] = d.(map[string]any)["members"].(float64)
	}
	if byDay["2026-11-17"] != 1 || byDay["2026-11-19"] != 1 || byDay["2026-11-20"] != 0 {
		t.Errorf("per day %v", byDay)
	}
	if s := fmt.Sprint(ci["longest_streaks"]); s != "[map[days:3 members:1]]" {
		t.Errorf("streaks %s", s)
	}
	lb := ci["leaderboard"].([]any)
	if len(lb) != 1 || lb[0].(map[string]any)["external_user_id"] != "wm_alice" || lb[0].(map[string]any)["check_ins"].(float64) != 3 {
		t.Errorf("leaderboard %v", lb)
	}
	if r.json["available"] != false || len(r.json["campaigns"].([]any)) != 0 {
		t.Errorf("campaign feature not wired yet must show empty: %v", r.json)
	}

	r = f.get("/api/v1/coupons")
	if r.code != 200 || r.json["available"] != false || len(r.json["pools"].([]any)) != 0 || len(r.json["configured"].([]any)) != len(f.sc.Coupons) {
		t.Errorf("coupons: %d %s", r.code, r.body)
	}

	wired := newFixture(t, func(o *Options) {
		o.Campaigns = fakeCampaigns{}
		o.Coupons = fakeCoupons{}
	})
	if r := wired.get("/api/v1/campaigns"); r.json["available"] != true || !strings.Contains(r.body, `"name":"21天早安打卡"`) {
		t.Errorf("wired campaigns: %s", r.body)
	}
	if r := wired.get("/api/v1/coupons"); r.json["available"] != true || !strings.Contains(r.body, `"redeemed":3`) {
		t.Errorf("wired coupons: %s", r.body)
	}
	broken := newFixture(t, func(o *Options) { o.Coupons = fakeCoupons{err: errors.New("disk on fire")} })
	if r := broken.get("/api/v1/coupons"); r.code != 500 || r.json["code"] != "internal" {
		t.Errorf("reader error: %d %s", r.code, r.body)
	}
}

type fakeCampaigns struct{}

func (fakeCampaigns) Campaigns(context.Context, int) ([]CampaignReport, error) {
	return []CampaignReport{{Name: "21天早安打卡", Days: []DayCount{{Day: "2026-11-20", Members: 4}}}}, nil
}

type fakeCoupons struct{ err error }

func (c fakeCoupons) CouponPools(context.Context) ([]CouponPoolReport, error) {
	return []CouponPoolReport{{Pool: "新人券", Hook: "welcome", Issued: 10, Redeemed: 3, Expired: 1, Stock: 89}}, c.err
}

// fakeScenarios is a ScenarioControl over the embedded demo.
type fakeScenarios struct {
	sc        *scenarios.Scenario
	reloadErr error
	reloads   int
}

func (c *fakeScenarios) Status() holder.Status {
	st := holder.Status{Source: c.sc.Source, Version: c.sc.Version, LoadedAt: c.sc.LoadedAt, Files: c.sc.Files, Reloads: c.reloads}
	if c.reloadErr != nil {
		st.LastError = c.reloadErr.Error()
	}
	return st
}

func (c *fakeScenarios) Files() ([]ScenarioFile, error) {
	var out []ScenarioFile
	for name, data := range scenarios.DefaultFiles() {
		out = append(out, ScenarioFile{Name: "embedded:default/" + name, YAML: string(data)})
	}
	slices.SortFunc(out, func(a, b ScenarioFile) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (c *fakeScenarios) Reload() error {
	c.reloads++
	return c.reloadErr
}

func (c *fakeScenarios) Simulate(ctx context.Context, script io.Reader, out io.Writer) error {
	dir, err := os.MkdirTemp("", "wecombot-test-sim-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := bolt.Open(filepath.Join(dir, "sim.db"), bolt.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer st.Close()
	return simulation.Run(ctx, c.sc, st, script, out)
}

func TestScenarioEndpoints(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)

	r := f.get("/api/v1/scenarios")
	if r.code != 200 || len(r.json["files"].([]any)) != len(scenarios.DefaultFiles()) || r.json["status"].(map[string]any)["version"] != f.sc.Version {
		t.Fatalf("status: %d %.300s", r.code, r.body)
	}
	if !strings.Contains(r.body, `"channels":[{"state":"xhs"`) {
		t.Errorf("channels for the sandbox panel missing: %.400s", r.body)
	}

	// A valid edit of one file, validated with the others.
	brand := scenarios.DefaultFiles()["00-brand.yaml"]
	r = f.do("POST", "/api/v1/scenarios/validate?name=00-brand.yaml", bytes.NewReader(brand))
	if r.code != 200 || r.json["valid"] != true {
		t.Errorf("valid file: %d %s", r.code, r.body)
	}
	// Alone, the brand file lacks what the others define? It must still compile or name problems.
	if r := f.do("POST", "/api/v1/scenarios/validate?name=00-brand.yaml&alone=true", bytes.NewReader(brand)); r.code != 200 && r.code != 422 {
		t.Errorf("alone: %d %s", r.code, r.body)
	}
	// A broken edit: problems with file:line.
	broken := strings.Replace(string(scenarios.DefaultFiles()["10-channels.yaml"]), "state: xhs", "state: xhs\n    colour: red", 1)
	r = f.do("POST", "/api/v1/scenarios/validate?name=10-channels.yaml", strings.NewReader(broken))
	if r.code != 422 || r.json["code"] != "invalid_scenario" {
		t.Fatalf("broken file: %d %s", r.code, r.body)
	}
	p := r.json["problems"].([]any)[0].(map[string]any)
	if p["file"] != "10-channels.yaml" || p["line"].(float64) < 1 || !strings.Contains(p["text"].(string), "10-channels.yaml:") || !strings.Contains(r.body, "colour") {
		t.Errorf("problem: %v", p)
	}
	// Multipart upload.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "10-channels.yaml")
	_, _ = fw.Write([]byte(broken))
	mw.Close()
	if r := f.do("POST", "/api/v1/scenarios/validate", &mp, "Content-Type", mw.FormDataContentType()); r.code != 422 || !strings.Contains(r.body, "10-channels.yaml") {
		t.Errorf("multipart: %d %s", r.code, r.body)
	}
	if r := f.do("POST", "/api/v1/scenarios/validate", strings.NewReader("   ")); r.code != 400 || r.json["param"] != "body" {
		t.Errorf("empty body: %d %s", r.code, r.body)
	}
	if r := f.do("POST", "/api/v1/scenarios/validate", strings.NewReader(strings.Repeat("a", maxScenarioUpload+10))); r.code != 400 {
		t.Errorf("huge body: %d", r.code)
	}

	// Reload: ok, then failing with problems (the last good one stays).
	if r := f.do("POST", "/api/v1/scenarios/reload", nil); r.code != 200 || f.ctl.reloads != 1 {
		t.Errorf("reload: %d %s", r.code, r.body)
	}
	f.ctl.reloadErr = scenarios.ValidationError{{File: "/etc/wecombot/s.yaml", Line: 7, Field: "channels[0].state", Msg: "is required"}}
	if r := f.do("POST", "/api/v1/scenarios/reload", nil); r.code != 422 || !strings.Contains(r.body, "/etc/wecombot/s.yaml:7: channels[0].state: is required") {
		t.Errorf("failed reload: %d %s", r.code, r.body)
	}
	if r := f.get("/api/v1/scenarios"); !strings.Contains(r.body, `"last_error":"/etc/wecombot/s.yaml:7`) {
		t.Errorf("last reload error not shown: %.300s", r.body)
	}

	// Simulate on a temporary store: the transcript, and nothing in the live store.
	script := "start: \"2025-03-03 07:30\"\nzone: Asia/Shanghai\nstaff: chayi01\nsteps:\n  - {add: wm_sim, state: xhs, name: 小试}\n  - {at: +1h, kf: wm_sim, text: 打卡}\n"
	r = f.do("POST", "/api/v1/scenarios/simulate", strings.NewReader(script))
	if r.code != 200 || !strings.Contains(r.body, "wm_sim") || !strings.HasPrefix(r.hdr.Get("Content-Type"), "text/plain") {
		t.Errorf("simulate: %d %s", r.code, r.body)
	}
	if r := f.get("/api/v1/members/wm_sim"); r.code != 404 {
		t.Errorf("simulation leaked into the live store: %d", r.code)
	}
	if r := f.do("POST", "/api/v1/scenarios/simulate", strings.NewReader("steps: [{bogus: 1}]")); r.code != 400 || r.json["param"] != "body" {
		t.Errorf("bad script: %d %s", r.code, r.body)
	}

	// Without a scenario control: 501.
	bare := newFixture(t, func(o *Options) { o.Scenarios = nil })
	for _, rt := range []string{"GET /api/v1/scenarios", "POST /api/v1/scenarios/reload", "POST /api/v1/scenarios/validate", "POST /api/v1/scenarios/simulate"} {
		m, p, _ := strings.Cut(rt, " ")
		if r := bare.do(m, p, strings.NewReader("x: 1")); r.code != 501 || r.json["code"] != "not_configured" {
			t.Errorf("%s without scenarios: %d %s", rt, r.code, r.body)
		}
	}
}

func TestOperationsAndRetry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.add("wm1", "One", "xhs", "s1", f.now)
	ctx := context.Background()
	acts, _ := f.st.Actions(ctx, 0, 10)
	if len(acts) < 2 {
		t.Fatalf("seed actions: %v", acts)
	}
	if err := f.st.MarkFailed(ctx, acts[0].ID, f.now, "errcode 41096 welcome code expired"); err != nil {
		t.Fatal(err)
	}
	f.m.WeComCall("externalcontact/send_welcome_msg", 41096, time.Millisecond)
	f.m.WeComCall("externalcontact/send_welcome_msg", 41096, time.Millisecond)
	f.m.WeComCall("externalcontact/mark_tag", 0, time.Millisecond)
	f.m.WeComCall("gettoken", -2, time.Millisecond)

	r := f.get("/api/v1/operations")
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	failed := r.json["failed_actions"].([]any)
	if len(failed) != 1 || failed[0].(map[string]any)["id"].(float64) != float64(acts[0].ID) {
		t.Errorf("failed actions %v", failed)
	}
	if r.json["outbox"].(map[string]any)["failed"].(float64) != 1 || r.json["event_lag"].(float64) != 0 {
		t.Errorf("stats %v", r.json)
	}
	werr := fmt.Sprint(r.json["wecom_errors"])
	if !strings.Contains(werr, "errcode:41096") || !strings.Contains(werr, "count:2") || !strings.Contains(werr, "errcode:http") || strings.Contains(werr, "errcode:0 ") {
		t.Errorf("wecom errors %s", werr)
	}

	path := fmt.Sprintf("/api/v1/outbox/%d/retry", acts[0].ID)
	r = f.do("POST", path, nil)
	if r.code != 200 || r.json["action"].(map[string]any)["status"] != "pending" {
		t.Fatalf("retry: %d %s", r.code, r.body)
	}
	ob, _ := f.st.OutboxStats(ctx)
	outboxed := 0 // batched mass sends wait for their task, outside the pending count
	for _, a := range acts {
		if a.Status != bot.ActionBatched {
			outboxed++
		}
	}
	if ob.Failed != 0 || ob.Pending != outboxed {
		t.Errorf("after retry %+v (actions %d)", ob, outboxed)
	}
	due, _ := f.st.DueActions(ctx, f.now, 10)
	if !slices.ContainsFunc(due, func(a bot.Action) bool { return a.ID == acts[0].ID }) {
		t.Errorf("retried action not due: %v", due)
	}
	cases := []struct {
		path string
		code int
		want string
	}{
		{path, 409, "conflict"},
		{"/api/v1/outbox/999/retry", 404, "not_found"},
		{"/api/v1/outbox/abc/retry", 400, "bad_parameter"},
		{"/api/v1/outbox/0/retry", 400, "bad_parameter"},
	}
	for _, tc := range cases {
		if r := f.do("POST", tc.path, nil); r.code != tc.code || r.json["code"] != tc.want {
			t.Errorf("%s: %d %s, want %d %s", tc.path, r.code, r.body, tc.code, tc.want)
		}
	}
}

func TestSandboxEvents(t *testing.T) {
	t.Parallel()
	live := newFixture(t, nil)
	if r := live.do("POST", "/api/v1/sandbox/events", strings.NewReader(`{"action":"add"}`)); r.code != 403 || r.json["code"] != "sandbox_only" {
		t.Errorf("live mode: %d %s", r.code, r.body)
	}
	if evs, _ := live.st.Events(context.Background(), 0, 10); len(evs) != 0 {
		t.Errorf("refused event was stored: %v", evs)
	}

	f := newFixture(t, func(o *Options) { o.Sandbox = true })
	bad := []struct{ body, param string }{
		{`{"action":"fly"}`, "action"},
		{`{}`, "action"},
		{`{"action":"add","member":"bad id!"}`, "member"},
		{`{"action":"order","member":"wm1","amount":"-3"}`, "amount"},
		{`{"action":"order","member":"wm1","amount":"1.234"}`, "amount"},
		{`{"action":"kf","member":"wm1"}`, "text"},
		{`{"action":"add","state":"` + strings.Repeat("s", 31) + `"}`, "state"},
		{`{"action":"add","extra":1}`, "body"},
		{`not json`, "body"},
	}
	for _, tc := range bad {
		if r := f.do("POST", "/api/v1/sandbox/events", strings.NewReader(tc.body)); r.code != 400 || r.json["param"] != tc.param {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.body, r.code, r.body, tc.param)
		}
	}
	want := map[string]bot.EventType{"add": bot.EventContactAdd, "join_group": bot.EventGroupUpdate, "check_in": bot.EventKfText, "order": bot.EventOrderPaid}
	for _, action := range []string{"add", "join_group", "check_in", "order"} {
		r := f.do("POST", "/api/v1/sandbox/events", strings.NewReader(`{"action":"`+action+`","member":"wm_new","name":"<b>新人</b>","state":"xhs"}`))
		if r.code != 202 {
			t.Fatalf("%s: %d %s", action, r.code, r.body)
		}
	}
	evs, _ := f.st.Events(context.Background(), 0, 10)
	if len(evs) != 4 {
		t.Fatalf("events %v", evs)
	}
	for i, action := range []string{"add", "join_group", "check_in", "order"} {
		ev := evs[i]
		if ev.Type != want[action] || ev.Source != bot.SourceOperator || ev.ExternalUserID != "wm_new" || ev.DedupeKey == "" {
			t.Errorf("%s stored as %+v", action, ev)
		}
	}
	if evs[2].Content != "打卡" || evs[3].Data[bot.DataAmountFen] != "2990" || evs[1].MemChangeList[0] != "wm_new" || evs[0].State != "xhs" {
		t.Errorf("event fields: %+v", evs)
	}
}

// TestSandboxAmountAndAt: the sandbox API takes an order's amount as a JSON
// number ("amount": 88, as the docs say) and, for older clients, as a
// string; at moves an event to a past time (within 7 days).
func TestSandboxAmountAndAt(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.Sandbox = true })
	for body, fen := range map[string]string{
		`{"action":"order","member":"wm1","amount":88}`:      "8800",
		`{"action":"order","member":"wm2","amount":29.9}`:    "2990",
		`{"action":"order","member":"wm3","amount":"12.50"}`: "1250",
	} {
		r := f.do("POST", "/api/v1/sandbox/events", strings.NewReader(body))
		if r.code != 202 {
			t.Fatalf("%s: %d %s", body, r.code, r.body)
		}
		ev := r.json["event"].(map[string]any)
		if data, _ := ev["data"].(map[string]any); data[bot.DataAmountFen] != fen {
			t.Errorf("%s: stored %v, want %s fen", body, ev["data"], fen)
		}
	}
	for _, tc := range []struct{ body, param string }{
		{`{"action":"order","amount":1.234}`, "amount"},
		{`{"action":"order","amount":-5}`, "amount"},
		{`{"action":"order","amount":true}`, "body"},
		{`{"action":"kf","text":"打卡","at":"yesterday"}`, "at"},
		{`{"action":"kf","text":"打卡","at":"` + f.now.Add(time.Hour).Format(time.RFC3339) + `"}`, "at"},
		{`{"action":"kf","text":"打卡","at":"` + f.now.AddDate(0, 0, -8).Format(time.RFC3339) + `"}`, "at"},
	} {
		if r := f.do("POST", "/api/v1/sandbox/events", strings.NewReader(tc.body)); r.code != 400 || r.json["param"] != tc.param {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.body, r.code, r.body, tc.param)
		}
	}
	at := f.now.Add(-20 * time.Hour).Truncate(time.Second)
	r := f.do("POST", "/api/v1/sandbox/events", strings.NewReader(`{"action":"kf","member":"wm_at","text":"打卡","at":"`+at.Format(time.RFC3339)+`"}`))
	if r.code != 202 {
		t.Fatalf("at: %d %s", r.code, r.body)
	}
	if got, _ := time.Parse(time.RFC3339Nano, r.json["event"].(map[string]any)["at"].(string)); !got.Equal(at) {
		t.Errorf("event at %v, want %v", got, at)
	}
}

func TestParseYuan(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"29.9": 2990, "29.90": 2990, "30": 3000, "0.01": 1, "0": -1, "": -1, "1.234": -1, "abc": -1, "-1": -1, "2000000": -1} {
		got, ok := parseYuan(in)
		if (want < 0 && ok) || (want >= 0 && (!ok || got != want)) {
			t.Errorf("parseYuan(%q) = %d %v, want %d", in, got, ok, want)
		}
	}
}

func TestErrorTable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		code int
		name string
	}{
		{fmt.Errorf("member x: %w", bot.ErrNotFound), 404, "not_found"},
		{fmt.Errorf("action 3: %w", bot.ErrConflict), 409, "conflict"},
		{errSandboxOnly, 403, "sandbox_only"},
		{errUnauthorized, 401, "unauthorized"},
		{errLoopbackOnly, 403, "loopback_only"},
		{errNotConfigured, 501, "not_configured"},
		{fmt.Errorf("scan: %w", context.DeadlineExceeded), 504, "timeout"},
		{badParam("limit", "must be small"), 400, "bad_parameter"},
		{fmt.Errorf("reload: %w", scenarios.ValidationError{{File: "a.yaml", Line: 2, Msg: "bad"}}), 422, "invalid_scenario"},
		{errors.New("disk on fire"), 500, "internal"},
	}
	for _, tc := range cases {
		code, body := apiError(tc.err)
		if code != tc.code || body.Code != tc.name || body.Status != code || body.Error == "" {
			t.Errorf("%v: %d %+v, want %d %s", tc.err, code, body, tc.code, tc.name)
		}
	}
}

func TestSandboxCheckInLandsInsideTheWindow(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	camp := f.sc.Campaigns[0]
	if len(camp.Windows) == 0 {
		t.Skip("the demo campaign has no check-in window")
	}
	w := camp.Windows[0]
	zone := camp.Zone
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, zone)
	inside := day.Add(w.Start + time.Minute)
	before := day.Add(w.Start - time.Hour)
	after := day.Add(w.End + time.Hour)
	cases := []struct{ now, want time.Time }{
		{inside, inside},
		{before, day.AddDate(0, 0, -1).Add(w.End - time.Minute)},
		{after, day.Add(w.End - time.Minute)},
	}
	for _, tc := range cases {
		if got := f.s.checkInAt(tc.now); !got.Equal(tc.want) {
			t.Errorf("now %v: check-in at %v, want %v", tc.now, got, tc.want)
		}
	}
}

func TestAggregateRefreshStretchesWithSlowPasses(t *testing.T) {
	t.Parallel()
	c := newAggregateCache(30*time.Second, time.Now, nil)
	if got := c.maxAge(&aggregate{Took: time.Second}); got != 30*time.Second {
		t.Errorf("fast pass: %v", got)
	}
	if got := c.maxAge(&aggregate{Took: 7 * time.Second}); got != 70*time.Second {
		t.Errorf("slow pass: %v", got)
	}
}

func TestEventsAndOutboxPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.add("wm1", "One", "xhs", "s1", f.now)
	f.add("wm2", "Two", "douyin", "s1", f.now)
	// One pagination style: ?cursor=&limit=, next_cursor until the last
	// page, which has none (the old after/next_after never ended).
	for _, tc := range []struct{ path, list string }{{"/api/v1/events", "events"}, {"/api/v1/outbox", "actions"}} {
		for _, limit := range []int{1, 2, 1000} {
			var seen []float64
			cursor, pages, ended := "", 0, false
			for range 100 {
				r := f.get(fmt.Sprintf("%s?limit=%d&cursor=%s", tc.path, limit, cursor))
				if r.code != 200 {
					t.Fatalf("%s: %d %s", tc.path, r.code, r.body)
				}
				pages++
				key := "seq"
				if tc.list == "actions" {
					key = "id"
				}
				for _, item := range r.json[tc.list].([]any) {
					seen = append(seen, item.(map[string]any)[key].(float64))
				}
				next, has := r.json["next_cursor"].(string)
				if !has {
					ended = true
					break
				}
				cursor = next
			}
			if !ended || len(seen) < 2 || !slices.IsSorted(seen) || len(slices.Compact(slices.Clone(seen))) != len(seen) {
				t.Errorf("%s limit %d: pages %d ended %v, items %v", tc.path, limit, pages, ended, seen)
			}
			if limit == 1000 && pages != 1 {
				t.Errorf("%s: everything fits one page but got %d pages", tc.path, pages)
			}
		}
	}
	if r := f.get("/api/v1/events?after=1"); r.code != 400 || r.json["param"] != "after" {
		t.Errorf("after is gone (use cursor): %d %s", r.code, r.body)
	}
	if r := f.get("/api/v1/status"); r.code != 200 || r.json["events"].(map[string]any)["last_seq"].(float64) != 2 || r.json["sandbox"] != false {
		t.Errorf("status: %s", r.body)
	}
}

func TestWarmConsoleComputesTheFunnel(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.add("wm1", "One", "xhs", "s1", f.now)
	f.kf("wm1", "打卡", time.Date(2026, 11, 17, 0, 0, 0, 0, time.UTC)) // 08:00 in Asia/Shanghai
	f.s.WarmConsole(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.s.agg.mu.Lock()
		cur := f.s.agg.cur
		f.s.agg.mu.Unlock()
		if cur != nil {
			if len(cur.Leaders) != 1 || len(cur.CheckInsByDay) != 1 {
				t.Errorf("warm pass: leaders %v, days %v", cur.Leaders, cur.CheckInsByDay)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no warm pass")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFunnelChunkedPassCountsEveryone: the aggregate reads members in many
// short read transactions (the CSV export too); chunk boundaries neither
// drop nor repeat anyone.
func TestFunnelChunkedPassCountsEveryone(t *testing.T) {
	t.Parallel()
	counts := func() string {
		f := newFixture(t, nil)
		f.seedCommunity()
		r := f.get("/api/v1/funnel?fresh=true")
		if r.code != 200 {
			t.Fatalf("%d %s", r.code, r.body)
		}
		export := f.get("/api/v1/export/members.csv")
		if export.code != 200 || strings.Count(export.body, "\n") != 6 || strings.Contains(export.body, "incomplete") {
			t.Fatalf("export %d:\n%s", export.code, export.body)
		}
		return fmt.Sprint(r.json["members"], stageOf(r, "current"), stageOf(r, "reached"), r.json["channels"]) + export.body
	}
	want := counts()
	defer func(n int) { aggregateChunk = n }(aggregateChunk)
	for _, n := range []int{1, 2, 4} {
		aggregateChunk = n
		if got := counts(); got != want {
			t.Errorf("chunk %d: %s\nwant %s", n, got, want)
		}
	}
}

// TestCheckInReportPages: the per-day counts and longest streaks are the
// same whether the member-day index is read in one transaction or in
// pages that split a member's days and a day's campaigns.
func TestCheckInReportPages(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if err := st.Update(ctx, func(tx bot.Tx) error {
		for _, k := range []string{
			"wm1|2026-11-01|早安", "wm1|2026-11-01|夜读", "wm1|2026-11-02|早安", "wm1|2026-11-03|夜读", "wm1|2026-11-05|早安",
			"wm2|2026-11-01|早安", "wm2|2026-11-03|早安", "wm2|2026-11-04|早安",
			"wm3|2026-11-02|夜读", "wm3|2026-11-02|早安",
			"wm4|2026-11-01|早安", "wm4|2026-11-02|早安", "wm4|2026-11-03|早安", "wm4|2026-11-04|早安",
		} {
			if err := tx.Put(checkin.BucketMemberDays, k, []byte{1}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	old := checkInPage
	t.Cleanup(func() { checkInPage = old })
	for _, page := range []int{0, 1, 2, 3, 5} {
		checkInPage = page
		a := &aggregate{CheckInsByDay: map[string]int{}, Streaks: map[int]int{}}
		if err := a.addCheckIns(ctx, st); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(a.Streaks, a.CheckInsByDay); got != "map[1:1 2:1 3:1 4:1] map[2026-11-01:3 2026-11-02:3 2026-11-03:3 2026-11-04:2 2026-11-05:1]" {
			t.Errorf("pages of %d: %s", page, got)
		}
	}
}

// A welcome follow-up planned for a later slot shows on her detail before
// its slot begins: what she gets next, when, status planned.
func TestMemberDetailShowsPlannedFollowUps(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	sc, err := scenarios.LoadBytes("fu.yaml", []byte("brand: {name: 测试}\nwelcome:\n  default:\n    text: 你好\n    follow_ups:\n"+
		"      - {after: 1d, via: mass_send, text: 明天见}\n      - {after: 3d, text: 三天后见}\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.sc = sc
	f.add("wm_plan", "Plan", "", "s1", f.now)
	r := f.get("/api/v1/members/wm_plan")
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	got := map[string]map[string]any{}
	for _, it := range r.json["timeline"].([]any) {
		it := it.(map[string]any)
		if it["status"] == StatusPlanned {
			got[it["text"].(string)] = it
		}
	}
	for text, due := range map[string]time.Time{"明天见": f.now.Add(24 * time.Hour), "三天后见": f.now.Add(72 * time.Hour)} {
		it, ok := got[text]
		if !ok {
			t.Fatalf("timeline lacks the planned follow-up %q: %s", text, r.body)
		}
		if at, _ := time.Parse(time.RFC3339Nano, it["at"].(string)); !at.Equal(due) || it["kind"] != "action" || it["type"] != "mass_send" {
			t.Errorf("planned %q: %v, want an action due %v", text, it, due)
		}
	}
	if len(got) != 2 {
		t.Errorf("planned items %v, want 2", got)
	}
}
