package main

// Fault tests on the built binary for bad input and what the API serves:
// oversized callback fields, out-of-range shop amounts, refunds ahead of
// their order, proxy headers on tokenless admin, redaction of stored WeCom
// error texts, and the admin routes the docs name.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/server"
	"github.com/wecombot/wecombot/bot/wecom"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

const testShopSecret = "shop-secret-for-tests"

// postShop signs and posts one shop order notification.
func (p *proc) postShop(t *testing.T, order map[string]any) (int, string) {
	t.Helper()
	body, err := json.Marshal(order)
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, _ := http.NewRequest(http.MethodPost, p.base+"/hooks/orders", bytes.NewReader(body))
	req.Header.Set(server.HeaderShopTimestamp, ts)
	req.Header.Set(server.HeaderShopSignature, server.SignShopRequest([]byte(testShopSecret), ts, body))
	return doReq(t, req)
}

func doReq(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// postCallback signs and posts one callback, returning the answer.
func (p *proc) postCallback(t *testing.T, c *wecom.Crypter, ev callbackEvent) (int, string) {
	t.Helper()
	path, body := signEvent(t, c, ev)
	req, _ := http.NewRequest(http.MethodPost, p.base+path, bytes.NewReader(body))
	return doReq(t, req)
}

// memberSpend reads a member's orders and spend from the admin API.
func (p *proc) memberSpend(t *testing.T, id string) (orders int, spend int64, stage string) {
	t.Helper()
	var body struct {
		Member struct {
			Orders   int    `json:"orders"`
			SpendFen int64  `json:"spend_fen"`
			Stage    string `json:"stage"`
		} `json:"member"`
	}
	p.getJSON(t, "/api/v1/members/"+id, &body)
	return body.Member.Orders, body.Member.SpendFen, body.Member.Stage
}

// TestBinaryRefusesOversizedFieldsAndAmounts covers defects 4, 5, 7 and 9
// of issue 15 on the real binary: a 40 KB ExternalUserID is a 400 naming
// the field (not a 500 that makes WeCom retry forever) and stores nothing;
// an amount beyond bot.MaxAmountFen is a 422 naming amount_fen and spend
// can't wrap negative; a refund that arrives before its paid order is held
// and applied when the order comes; a tokenless admin request whose
// X-Forwarded-For has an empty first line and a real second one is refused.
func TestBinaryRefusesOversizedFieldsAndAmounts(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, t.TempDir())
	env["WECOMBOT_SHOP_SECRET"] = testShopSecret
	env["WECOMBOT_LOG_LEVEL"] = "warn"
	p := startProc(t, env)

	// 7: oversized callback fields.
	// Drained, not just no pending event: the start-up group welcome
	// templates are sent after their event is processed, and each send's
	// result comes back as one more event.
	st := p.drained(t, 10*time.Second)
	before := num(st, "events", "last_seq")
	huge := strings.Repeat("x", 40<<10)
	for _, tc := range []struct {
		field string
		ev    callbackEvent
	}{
		{"ExternalUserID", callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_" + huge, WelcomeCode: "WC-HUGE-1"}},
		{"UserID", callbackEvent{Type: "contact.add", Staff: huge, ExternalUser: "wm_ok_1", WelcomeCode: "WC-HUGE-2"}},
		{"State", callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_ok_2", State: huge, WelcomeCode: "WC-HUGE-3"}},
		{"WelcomeCode", callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_ok_3", WelcomeCode: huge}},
	} {
		code, body := p.postCallback(t, c, tc.ev)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.field) {
			t.Errorf("oversized %s: %d %.200s, want 400 naming the field", tc.field, code, body)
		}
	}
	// Other start-up work (scheduled ticks, syncs) may append events of its
	// own meanwhile, so look at what was stored rather than at the count.
	var page struct {
		Events []bot.Event `json:"events"`
	}
	p.getJSON(t, fmt.Sprintf("/api/v1/events?cursor=%d&limit=1000", uint64(before)), &page)
	for _, ev := range page.Events {
		if strings.HasPrefix(ev.WelcomeCode, "WC-HUGE-") || len(ev.WelcomeCode) > 1000 || len(ev.ExternalUserID) > 1000 ||
			len(ev.StaffID) > 1000 || len(ev.State) > 1000 {
			t.Errorf("an oversized callback was stored: seq %d type %s welcome code %.40q", ev.Seq, ev.Type, ev.WelcomeCode)
		}
	}

	// A member to buy things.
	if code, body := p.postCallback(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_buyer", WelcomeCode: "WC-BUYER"}); code != http.StatusOK {
		t.Fatalf("add: %d %s", code, body)
	}
	eventuallyT(t, "the buyer to be a member", 10*time.Second, func() bool {
		code, _ := doReq(t, mustReq(t, http.MethodGet, p.base+"/api/v1/members/wm_buyer"))
		return code == http.StatusOK
	})

	// 4: a refund ahead of its order is held, then applied.
	if code, body := p.postShop(t, map[string]any{"event": "order.refunded", "order_id": "o-early", "external_userid": "wm_buyer", "amount_fen": 500, "refund_id": "r1"}); code != http.StatusOK {
		t.Fatalf("early refund: %d %s", code, body)
	}
	if code, body := p.postShop(t, map[string]any{"event": "order.paid", "order_id": "o-early", "external_userid": "wm_buyer", "amount_fen": 3000}); code != http.StatusOK {
		t.Fatalf("order: %d %s", code, body)
	}
	eventuallyT(t, "the order net of its early refund", 10*time.Second, func() bool {
		orders, spend, _ := p.memberSpend(t, "wm_buyer")
		return orders == 1 && spend == 2500
	})
	// The refund's resend is a duplicate, and changes nothing.
	if code, body := p.postShop(t, map[string]any{"event": "order.refunded", "order_id": "o-early", "external_userid": "wm_buyer", "amount_fen": 500, "refund_id": "r1"}); code != http.StatusOK || !strings.Contains(body, `"duplicate":true`) {
		t.Fatalf("refund resend: %d %s", code, body)
	}

	// 5: amounts out of range are refused naming the field; spend never wraps.
	code, body := p.postShop(t, map[string]any{"event": "order.paid", "order_id": "o-max", "external_userid": "wm_buyer", "amount_fen": int64(9223372036854775807)})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "amount_fen") {
		t.Errorf("amount 2^63-1: %d %s, want 422 naming amount_fen", code, body)
	}
	code, body = p.postShop(t, map[string]any{"event": "order.paid", "order_id": "o-long", "external_userid": "wm_" + huge, "amount_fen": 1})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "external_userid") {
		t.Errorf("oversized external_userid: %d %.200s, want 422 naming it", code, body)
	}
	if code, body := p.postShop(t, map[string]any{"event": "order.paid", "order_id": "o-one", "external_userid": "wm_buyer", "amount_fen": 1}); code != http.StatusOK {
		t.Fatalf("order of 1 fen: %d %s", code, body)
	}
	eventuallyT(t, "the 1 fen order", 10*time.Second, func() bool {
		orders, spend, _ := p.memberSpend(t, "wm_buyer")
		return orders == 2 && spend == 2501
	})

	// 9: tokenless admin through a proxy whose first X-Forwarded-For line is empty.
	req := mustReq(t, http.MethodGet, p.base+"/api/v1/status")
	req.Header["X-Forwarded-For"] = []string{"", "203.0.113.9"}
	if code, body := doReq(t, req); code != http.StatusForbidden {
		t.Errorf("X-Forwarded-For with an empty first line: %d %.200s, want 403", code, body)
	}
	for _, h := range []string{"X-Real-Ip", "Forwarded", "Via", "X-Forwarded-Host"} {
		req := mustReq(t, http.MethodGet, p.base+"/api/v1/status")
		req.Header[h] = []string{"", "for=203.0.113.9"}
		if code, _ := doReq(t, req); code != http.StatusForbidden {
			t.Errorf("%s with an empty first line: %d, want 403", h, code)
		}
	}
	// The healthy server is still healthy after all that.
	if code, body := doReq(t, mustReq(t, http.MethodGet, p.base+"/healthz")); code != http.StatusOK {
		t.Errorf("healthz after bad input: %d %s", code, body)
	}
	p.term(t)
}

func mustReq(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestBinaryRedactsStoredWeComErrors covers defect 10: WeCom's error text
// quoting the app secret is stored as an action's last_error; the admin
// API (/api/v1/outbox, /api/v1/operations) serves it redacted, like the
// logs.
func TestBinaryRedactsStoredWeComErrors(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, t.TempDir())
	flaky := &flakyWeCom{faulted: map[string]int{}}
	env["WECOM_API_BASE"] = newProxy(t, fake.URL(), flaky)
	env["WECOMBOT_LOG_LEVEL"] = "warn"
	p := startProc(t, env)
	flaky.set("leaky48002")
	if code, body := p.postCallback(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_leak", WelcomeCode: "WC-LEAK"}); code != http.StatusOK {
		t.Fatalf("add: %d %s", code, body)
	}
	eventuallyT(t, "the refused actions to be failed", 15*time.Second, func() bool {
		var st map[string]any
		p.getJSON(t, "/api/v1/status", &st)
		return num(st, "outbox", "failed") >= 1
	})
	for _, path := range []string{"/api/v1/outbox", "/api/v1/operations"} {
		code, body := doReq(t, mustReq(t, http.MethodGet, p.base+path))
		if code != http.StatusOK {
			t.Fatalf("%s: %d", path, code)
		}
		if strings.Contains(body, "e2e-secret") {
			t.Errorf("%s serves the secret WeCom quoted: %.600s", path, body)
		}
		if !strings.Contains(body, "REDACTED") {
			t.Errorf("%s: no redacted last_error in %.600s", path, body)
		}
	}
	if strings.Contains(p.stderr.String(), "e2e-secret") {
		t.Error("the logs carry the secret")
	}
	p.term(t)
}

// TestDocumentedAdminRoutesExist covers defect 11: every GET /api/v1 route
// docs/shop-webhook.md names answers on the real binary (not 404).
func TestDocumentedAdminRoutesExist(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	doc, err := os.ReadFile("../../docs/shop-webhook.md")
	if err != nil {
		t.Fatal(err)
	}
	routes := regexp.MustCompile("`GET (/api/v1/[^`?]*)").FindAllStringSubmatch(string(doc), -1)
	if len(routes) < 2 {
		t.Fatalf("found %d GET routes in the doc", len(routes))
	}
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, t.TempDir())
	p := startProc(t, env)
	if code, body := p.postCallback(t, c, callbackEvent{Type: "contact.add", Staff: "zhangsan", ExternalUser: "wm_doc", WelcomeCode: "WC-DOC"}); code != http.StatusOK {
		t.Fatalf("add: %d %s", code, body)
	}
	eventuallyT(t, "the member", 10*time.Second, func() bool {
		code, _ := doReq(t, mustReq(t, http.MethodGet, p.base+"/api/v1/members/wm_doc"))
		return code == http.StatusOK
	})
	for _, m := range routes {
		path := regexp.MustCompile(`\{[a-z_]+\}`).ReplaceAllString(m[1], "wm_doc")
		if code, body := doReq(t, mustReq(t, http.MethodGet, p.base+path)); code == http.StatusNotFound || code >= 500 {
			t.Errorf("docs name GET %s; the binary answers %d %.200s", m[1], code, body)
		}
	}
	p.term(t)
}
