package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/server"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// TestCouponsAndShopWebhookEndToEnd runs the real server against a fake
// WeCom: codes are imported with the CLI (a bad file imports nothing), the
// welcome carries a generated 新人券 code, a signed shop order redeems it
// and moves the member to Purchase, which issues a 第二杯半价券 from the
// imported codes by mass-send (a task of one: the code is hers alone); the report shows it all; a retried order is
// stored once and a forged one not at all.
func TestCouponsAndShopWebhookEndToEnd(t *testing.T) {
	t.Parallel()
	fake := fakewecom.New(t)
	env, c := liveEnv(t, fake, t.TempDir())
	const secret = "shop-e2e-secret"
	env["WECOMBOT_SHOP_SECRET"] = secret
	// The demo, with mass sends going the moment they are due (not batched
	// over the default 10-minute window).
	env["WECOMBOT_SCENARIOS"] = scenarioDirWith(t, map[string]string{"90-limits.yaml": "limits: {mass_send_window: 0s}\n"})
	in := startServe(t, env)
	cli := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"coupons"}, append(args, "--server", in.base)...),
			func(k string) string { return env[k] }, nil, &out, &errb)
		return out.String() + errb.String(), err
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	good := filepath.Join(dir, "good.csv")
	_ = os.WriteFile(bad, []byte("code\nHALF-E2E-1\nHALF E2E 2\n"), 0o600)
	_ = os.WriteFile(good, []byte("code\nHALF-E2E-1\nHALF-E2E-2\n"), 0o600)
	if out, err := cli("import", "第二杯半价券", bad); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("bad CSV: %v %s", err, out)
	}
	if out, err := cli("import", "第二杯半价券", good); err != nil || !strings.Contains(out, "imported 2 codes") {
		t.Fatalf("import: %v %s", err, out)
	}
	if out, err := cli("import", "没有这个池", good); err == nil {
		t.Fatalf("unknown pool accepted: %s", out)
	}

	in.sendEvent(t, c, callbackEvent{Type: "contact.add", Staff: "chayi01", ExternalUser: "wm_coupon", State: "xhs", WelcomeCode: "WC-COUPON"}, 2)
	eventuallyT(t, "welcome sent", 5*time.Second, func() bool { return fake.Count(fakewecom.APISendWelcomeMsg) == 1 })
	welcome := fmt.Sprint(fake.Calls(fakewecom.APISendWelcomeMsg)[0].Body["text"])
	newCode := regexp.MustCompile(`NEW-[0-9A-Z]{8}`).FindString(welcome)
	if newCode == "" {
		t.Fatalf("welcome carries no 新人券 code: %s", welcome)
	}

	post := func(body string, ts int64, key string) (int, string) { return in.postOrder(t, body, ts, key) }
	order := `{"event":"order.paid","order_id":"E2E-1","external_userid":"wm_coupon","unionid":"u_e2e","amount_fen":3600,"coupon_code":"` + newCode + `"}`
	if code, body := post(order, time.Now().Unix(), "forged"); code != 401 {
		t.Fatalf("forged order: %d %s", code, body)
	}
	if code, body := post(order, time.Now().Add(-time.Hour).Unix(), secret); code != 401 {
		t.Fatalf("stale order: %d %s", code, body)
	}
	if code, body := post(order, time.Now().Unix(), secret); code != 200 || !strings.Contains(body, `"duplicate":false`) {
		t.Fatalf("order: %d %s", code, body)
	}
	if code, body := post(order, time.Now().Unix(), secret); code != 200 || !strings.Contains(body, `"duplicate":true`) {
		t.Fatalf("retried order: %d %s", code, body)
	}
	// Purchase issues 第二杯半价券 (an imported code) as a mass-send task from chayi01.
	eventuallyT(t, "stage coupon sent", 5*time.Second, func() bool {
		for _, call := range fake.Calls(fakewecom.APIAddMsgTemplate) {
			if strings.Contains(string(call.RawBody), "HALF-E2E-1") {
				return true
			}
		}
		return false
	})
	code, body := in.get(t, "/api/v1/members/wm_coupon")
	if code != 200 || !strings.Contains(body, `"stage":"purchase"`) || !strings.Contains(body, newCode) {
		t.Fatalf("member: %d %s", code, body)
	}
	// The unionid came with the first order: a later order may name the member by it alone.
	if code, body := post(`{"event":"order.paid","order_id":"E2E-2","unionid":"u_e2e","amount_fen":1200}`, time.Now().Unix(), secret); code != 200 {
		t.Fatalf("order by unionid: %d %s", code, body)
	}
	if code, body := post(`{"event":"order.paid","order_id":"E2E-3","unionid":"u_other","amount_fen":1200}`, time.Now().Unix(), secret); code != 422 {
		t.Fatalf("order by an unknown unionid: %d %s", code, body)
	}
	eventuallyT(t, "second order counted", 5*time.Second, func() bool {
		_, body := in.get(t, "/api/v1/members/wm_coupon")
		return strings.Contains(body, `"orders":2`)
	})
	out, err := cli("report")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"新人券", "welcome", "第二杯半价券", "stage:purchase"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`新人券\s+welcome\s+1\s+1\s+0\s+100%`).MatchString(out) {
		t.Errorf("report should show the welcome code redeemed:\n%s", out)
	}
	if !regexp.MustCompile(`第二杯半价券\s+\(all\)\s+501\s+1\s+0\s+0\s+0%`).MatchString(out) {
		t.Errorf("report should show one imported code and 500 to generate left, one issued:\n%s", out)
	}
}

// TestReferralEndToEndInSandbox: through the real server (sandbox sender,
// which makes up WeCom's answers), a member asking 「邀请」 in 微信客服 gets
// a contact me code whose result comes back through the event log and is
// sent to them; a friend adding through it is attributed and pending.
func TestReferralEndToEndInSandbox(t *testing.T) {
	t.Parallel()
	env := map[string]string{"WECOMBOT_DATA_DIR": t.TempDir()}
	in := startServe(t, env)
	sandbox := func(body string) {
		t.Helper()
		resp, err := http.Post(in.base+"/api/v1/sandbox/events", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("sandbox event %s: %s", body, resp.Status)
		}
	}
	sandbox(`{"action":"add","member":"wm_ref","state":"xhs","staff":"chayi01","name":"小艾"}`)
	sandbox(`{"action":"kf","member":"wm_ref","text":"邀请好友"}`)
	eventuallyT(t, "invite code sent to the member", 5*time.Second, func() bool {
		_, body := in.get(t, "/api/v1/outbox?limit=1000")
		return strings.Contains(body, "contact_me/r:1.png")
	})
	sandbox(`{"action":"add","member":"wm_friend","state":"r:1","staff":"chayi01","name":"小林"}`)
	eventuallyT(t, "invite pending", 5*time.Second, func() bool {
		_, body := in.get(t, "/api/v1/members/wm_ref")
		return strings.Contains(body, `"state":"r:1"`) && strings.Contains(body, `"pending":1`)
	})
	if code, body := in.get(t, "/api/v1/members/wm_friend"); code != 200 || !strings.Contains(body, "好友推荐") {
		t.Fatalf("invitee: %d %s", code, body)
	}
}

// postOrder posts a shop webhook body signed with key at ts (Unix seconds).
func (in *instance) postOrder(t *testing.T, body string, ts int64, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", in.base+"/hooks/orders", strings.NewReader(body))
	tss := strconv.FormatInt(ts, 10)
	req.Header.Set(server.HeaderShopTimestamp, tss)
	req.Header.Set(server.HeaderShopSignature, server.SignShopRequest([]byte(key), tss, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}
