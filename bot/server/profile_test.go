package server

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/signlink"
)

// TestProfileForm walks the demo's profile form: forged and expired links
// and refused answers (an unknown choice, oversized text) change nothing
// and name the field; a good submission is applied by the engine and shows
// in the member detail and the export; the API refuses with problem+json.
func TestProfileForm(t *testing.T) {
	t.Parallel()
	f, signer := checkinFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.process(ctx)
	good := signer.Sign(engine.ProfilePurpose, "wm_eve", time.Hour)
	expired := signer.Sign(engine.ProfilePurpose, "wm_eve", -time.Minute)
	other, _ := signlink.New([]byte("another-secret-0123456789"), nil)
	forged := other.Sign(engine.ProfilePurpose, "wm_eve", time.Hour)
	checkinLink := signer.Sign("checkin", "wm_eve", time.Hour)

	if r := f.get("/profile?t=" + url.QueryEscape(good)); r.code != 200 || !strings.Contains(r.body, "完善资料领 50 积分") ||
		!strings.Contains(r.body, `name="f.birthday"`) || !strings.Contains(r.body, `value="less_sugar"`) {
		t.Fatalf("page: %d %s", r.code, r.body)
	}
	answers := url.Values{"f.birthday": {"1993-07-21"}, "f.city": {"杭州"}, "f.gender": {"female"}, "f.taste": {"milk", "less_sugar"}, "f.note": {"多出新品"}}
	with := func(token string, edit func(url.Values)) url.Values {
		v := url.Values{"t": {token}}
		for k, vs := range answers {
			v[k] = append([]string(nil), vs...)
		}
		if edit != nil {
			edit(v)
		}
		return v
	}
	seq := f.lastSeq()
	for _, tc := range []struct {
		name string
		form url.Values
		code int
		want string
	}{
		{"forged", with(forged, nil), 403, "链接无效"},
		{"expired", with(expired, nil), 410, "已经过期"},
		{"another purpose", with(checkinLink, nil), 403, "链接无效"},
		{"unknown choice", with(good, func(v url.Values) { v["f.gender"] = []string{"other"} }), 400, "请检查「性别」"},
		{"oversized text", with(good, func(v url.Values) { v["f.city"] = []string{strings.Repeat("城", 21)} }), 400, "请检查「所在城市」：最多 20 个字"},
		{"unknown field", with(good, func(v url.Values) { v["f.phone"] = []string{"138"} }), 400, "表单里没有这一项"},
		{"no birthday", with(good, func(v url.Values) { delete(v, "f.birthday") }), 400, "请检查「生日」：这一项必填"},
		{"future birthday", with(good, func(v url.Values) { v["f.birthday"] = []string{"2030-01-01"} }), 400, "请检查「生日」"},
	} {
		r := f.post("/profile", tc.form)
		if r.code != tc.code || !strings.Contains(r.body, tc.want) {
			t.Errorf("%s: %d, want %d with %q:\n%s", tc.name, r.code, tc.code, tc.want, r.body)
		}
		if tc.code == 400 && tc.name != "unknown field" && !strings.Contains(r.body, `class="why"`) {
			t.Errorf("%s: the field itself is not marked", tc.name)
		}
	}
	if got := f.lastSeq(); got != seq {
		t.Fatalf("refused submissions appended %d events", got-seq)
	}
	if m := f.member("wm_eve"); m.Profile != nil || m.Birthday != "" {
		t.Fatalf("refused submissions changed the member: %+v", m.Profile)
	}

	r := f.post("/profile", with(good, nil))
	if r.code != 200 || !strings.Contains(r.body, "感谢填写！你现在有 50 积分") || !strings.Contains(r.body, "更新资料") {
		t.Fatalf("submit: %d %s", r.code, r.body)
	}
	m := f.member("wm_eve")
	if m.Birthday != "1993-07-21" || m.Points != 50 || !m.HasTag("性别-女") || !m.HasTag("偏好-奶茶") || !m.HasTag("偏好-低糖") {
		t.Fatalf("member after the form: birthday %q points %d tags %v", m.Birthday, m.Points, m.Tags)
	}
	// A double tap is one event; the points came once.
	seq = f.lastSeq()
	if r := f.post("/profile", with(good, nil)); r.code != 200 || f.lastSeq() != seq {
		t.Errorf("resubmitting the same answers: %d, %d new events", r.code, f.lastSeq()-seq)
	}

	d := f.get("/api/v1/members/wm_eve")
	prof, _ := d.json["profile"].(map[string]any)
	if prof == nil || prof["birthday"] != "1993-07-21" || !strings.Contains(d.body, `"label":"喜欢的口味（可多选）","answer":"奶茶、少糖"`) {
		t.Errorf("member detail profile: %s", d.body)
	}
	_, rows := readExport(t, f, "/api/v1/export/members.csv")
	head := strings.Join(rows[0], "|")
	eve := rowOf(rows, "wm_eve")
	if !strings.Contains(head, "生日|资料填写时间（Asia/Shanghai）|所在城市|性别|喜欢的口味（可多选）|想对我们说的话") ||
		!strings.Contains(strings.Join(eve, "|"), "1993-07-21|2026-11-21 07:30:00|杭州|女|奶茶、少糖|多出新品") {
		t.Errorf("export: %q / %q", head, eve)
	}

	// The API: refusals are problem+json naming the field; a good call is the same event.
	for _, tc := range []struct{ body, param string }{
		{`{"answers": {"birthday": "1993-07-21", "gender": "other"}}`, "answers.gender"},
		{`{"answers": {"birthday": "1993-07-21", "city": "` + strings.Repeat("城", 21) + `"}}`, "answers.city"},
		{`{"answers": {"birthday": 1993}}`, "answers.birthday"},
		{`{"answer": {}}`, "body"},
	} {
		r := f.do("PUT", "/api/v1/members/wm_eve/profile", strings.NewReader(tc.body), "Content-Type", "application/json")
		if r.code != 400 || r.hdr.Get("Content-Type") != problemContentType || r.json["param"] != tc.param {
			t.Errorf("API %s: %d %s %s", tc.body, r.code, r.hdr.Get("Content-Type"), r.body)
		}
	}
	if r := f.do("PUT", "/api/v1/members/wm_nobody/profile", strings.NewReader(`{"answers": {"birthday": "1993-07-21"}}`)); r.code != 404 {
		t.Errorf("unknown member: %d %s", r.code, r.body)
	}
	r = f.do("PUT", "/api/v1/members/wm_eve/profile", strings.NewReader(`{"answers": {"birthday": "1993-07-22", "gender": "male", "taste": ["tea"]}}`))
	if r.code != 202 {
		t.Fatalf("API update: %d %s", r.code, r.body)
	}
	if m := f.member("wm_eve"); m.Birthday != "1993-07-22" || m.Points != 50 || m.HasTag("性别-女") || !m.HasTag("性别-男") || m.HasTag("偏好-奶茶") {
		t.Errorf("after the API update: birthday %q points %d tags %v", m.Birthday, m.Points, m.Tags)
	}
}

func (f *fixture) member(id string) *bot.Member {
	f.t.Helper()
	var m *bot.Member
	if err := f.st.View(context.Background(), func(tx bot.Tx) (err error) { m, err = tx.Member(id); return err }); err != nil {
		f.t.Fatal(err)
	}
	return m
}
