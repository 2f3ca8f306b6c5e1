package engine

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/scenarios"
)

func profileScenario(t *testing.T) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.LoadBytes("profile.yaml", []byte(`brand: {name: 测试, zone: Asia/Shanghai}
tags:
  画像: [女, 男, 纯茶, 奶茶]
channels:
  - {state: xhs, name: 小红书}
welcome:
  default: {text: "欢迎！完善资料：{{.ProfileLink}}"}
profile_form:
  title: 完善资料
  keywords: [完善资料]
  reply: "点这里：{{.ProfileLink}}"
  points: 50
  done: "谢谢，{{.Points}} 积分"
  fields:
    - {key: birthday, label: 生日, type: birthday, required: true}
    - {key: city, label: 城市, type: text, max_chars: 10}
    - key: gender
      label: 性别
      type: choice
      choices: [{key: f, label: 女, tag: 女}, {key: m, label: 男, tag: 男}]
    - key: taste
      label: 口味
      type: choices
      choices: [{key: tea, label: 纯茶, tag: 纯茶}, {key: milk, label: 奶茶, tag: 奶茶}]
`))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func profileEvent(member string, answers map[string][]string) *bot.Event {
	raw, _ := json.Marshal(answers)
	return &bot.Event{Type: EventProfileSubmit, Source: "h5", ExternalUserID: member,
		DedupeKey: ProfileDedupeKey(member, answers), Data: map[string]string{DataProfileAnswers: string(raw)}}
}

func (h *harness) result(key string) string {
	h.t.Helper()
	var text string
	if err := h.store.View(context.Background(), func(tx bot.Tx) (err error) { text, _, err = checkin.LoadResult(tx, key); return err }); err != nil {
		h.t.Fatal(err)
	}
	return text
}

func (h *harness) pointsReasons(member string) []string {
	h.t.Helper()
	var out []string
	err := h.store.View(context.Background(), func(tx bot.Tx) error {
		es, err := checkin.PointsHistory(tx, member, 0, 100)
		for _, e := range es {
			out = append(out, e.Reason)
		}
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// lastMarkTag returns the tags of the latest mark_tag action for member.
func (h *harness) markTags(member string) (add, remove []string) {
	for _, a := range h.actions(bot.ActionMarkTag) {
		var p bot.MarkTag
		_ = a.Decode(&p)
		if p.ExternalUserID == member {
			add, remove = append(add, p.Add...), append(remove, p.Remove...)
		}
	}
	return add, remove
}

// TestProfileSubmit: a submission stores the answers and birthday, marks
// the choices' tags in WeCom, gives the points once; a resubmission with
// other choices swaps the tags and gives nothing; a refused answer and a
// replay change nothing.
func TestProfileSubmit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, profileScenario(t))
	h.send(add("wmA", "s1", "xhs", ""))
	first := h.send(profileEvent("wmA", map[string][]string{"birthday": {"1992-03-08"}, "city": {"杭州"}, "gender": {"f"}, "taste": {"tea", "milk"}}))
	h.handle(first) // replay
	m := h.member("wmA")
	if m.Birthday != "1992-03-08" || m.Profile == nil || m.Profile.Form != "完善资料" || len(m.Profile.Answers) != 4 {
		t.Fatalf("member after the form: birthday %q profile %+v", m.Birthday, m.Profile)
	}
	if m.Points != 50 || !m.HasTag("女") || !m.HasTag("纯茶") || !m.HasTag("奶茶") {
		t.Fatalf("points %d tags %v", m.Points, m.Tags)
	}
	if got := h.pointsReasons("wmA"); !slices.Equal(got, []string{ReasonProfile}) {
		t.Errorf("ledger = %v, want one %s entry", got, ReasonProfile)
	}
	if add, _ := h.markTags("wmA"); !slices.Contains(add, "女") || !slices.Contains(add, "纯茶") {
		t.Errorf("mark_tag add = %v", add)
	}
	if got := h.result(first.DedupeKey); got != "谢谢，50 积分" {
		t.Errorf("result = %q", got)
	}
	completed := m.Profile.CompletedAt

	h.advance(24 * time.Hour)
	h.send(profileEvent("wmA", map[string][]string{"birthday": {"1992-03-09"}, "gender": {"m"}, "taste": {"milk"}}))
	m = h.member("wmA")
	if m.Points != 50 || m.Birthday != "1992-03-09" || m.HasTag("女") || !m.HasTag("男") || m.HasTag("纯茶") || !m.HasTag("奶茶") {
		t.Fatalf("after the update: points %d birthday %s tags %v", m.Points, m.Birthday, m.Tags)
	}
	if !m.Profile.CompletedAt.Equal(completed) || !m.Profile.UpdatedAt.After(completed) || m.Profile.Answer("city") != nil {
		t.Errorf("profile times/answers after the update: %+v", m.Profile)
	}
	if _, remove := h.markTags("wmA"); !slices.Contains(remove, "女") || !slices.Contains(remove, "纯茶") {
		t.Errorf("mark_tag remove = %v", remove)
	}

	// Refused (an unknown choice, oversized text, an unknown field): nothing changes.
	for _, bad := range []map[string][]string{
		{"birthday": {"1992-03-08"}, "gender": {"x"}},
		{"birthday": {"1992-03-08"}, "city": {strings.Repeat("城", 11)}},
		{"birthday": {"1992-03-08"}, "phone": {"138"}},
		{"city": {"杭州"}},
	} {
		ev := h.send(profileEvent("wmA", bad))
		if got := h.member("wmA"); got.Birthday != "1992-03-09" || got.Points != 50 || !got.Profile.UpdatedAt.Equal(m.Profile.UpdatedAt) {
			t.Errorf("refused %v changed the member: %+v", bad, got.Profile)
		}
		if res := h.result(ev.DedupeKey); !strings.HasPrefix(res, "未能保存") {
			t.Errorf("refused %v: result %q", bad, res)
		}
	}
	// An unknown member's form changes nothing.
	h.send(profileEvent("wmNobody", map[string][]string{"birthday": {"1992-03-08"}}))
	if h.memberCount() != 1 {
		t.Errorf("members = %d", h.memberCount())
	}
}

// TestProfileLinks: the welcome and the kf command carry her signed form link.
func TestProfileLinks(t *testing.T) {
	t.Parallel()
	h := newHarness(t, profileScenario(t))
	signer, err := signlink.New([]byte("0123456789abcdef0123"), func() time.Time { return h.clock })
	if err != nil {
		t.Fatal(err)
	}
	h.eng.WithLinks(signer, "https://bot.example/")
	h.send(add("wmA", "s1", "xhs", "WC1"))
	var welcome bot.WelcomeMessage
	if ws := h.actions(bot.ActionWelcome); len(ws) != 1 {
		t.Fatalf("welcomes = %d", len(ws))
	} else {
		_ = ws[0].Decode(&welcome)
	}
	h.send(kf("wmA", "我想完善资料"))
	texts := kfTexts(h)
	if len(texts) != 1 {
		t.Fatalf("kf replies = %q", texts)
	}
	for _, text := range []string{welcome.Text, texts[0]} {
		_, link, ok := strings.Cut(text, "https://bot.example/profile?t=")
		if !ok {
			t.Fatalf("no form link in %q", text)
		}
		subject, _, err := signer.Verify(ProfilePurpose, link)
		if err != nil || subject != "wmA" {
			t.Errorf("link subject %q err %v", subject, err)
		}
	}
}
