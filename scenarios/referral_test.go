package scenarios

import (
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
)

const couponBase = base + `
coupons:
  - {name: 新人券, generate: {prefix: N-, length: 8}}
`

// TestCouponHookValidation: the coupon keys on stages and keyword rules and
// the referral section name file:line for each mistake.
func TestCouponHookValidation(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown stage coupon", `
funnel:
  stages:
    purchase: {tag: P, coupon: 没有} #<-
`, `unknown coupon pool "没有"`},
		{"keyword coupon on app", `
keywords:
  rules:
    - name: 领券
      keywords: [领券]
      coupon: 新人券 #<-
`, "on: [kf] only"},
		{"keyword unknown coupon", `
keywords:
  rules:
    - name: 领券
      keywords: [领券]
      on: [kf]
      coupon: 旧券 #<-
`, `unknown coupon pool "旧券"`},
		{"referral without keywords", `
referral: #<-
  channel: 推荐
`, "keywords: required"},
		{"referral channel is a channel", `
channels:
  - {state: xhs, name: 小红书}
referral:
  keywords: [邀请]
  channel: 小红书 #<-
`, "already a channel's name"},
		{"reward gives nothing", `
referral:
  keywords: [邀请]
  rewards:
    - {invites: 2} #<-
`, "the reward gives nothing"},
		{"reward duplicate threshold", `
referral:
  keywords: [邀请]
  rewards:
    - {invites: 2, points: 1}
    - {invites: 2, points: 5} #<-
`, "already declared"},
		{"reward unknown coupon", `
referral:
  keywords: [邀请]
  rewards:
    - {invites: 1, coupon: 没有} #<-
`, `unknown coupon pool "没有"`},
		{"reward undeclared tag", `
referral:
  keywords: [邀请]
  rewards:
    - {invites: 1, tag: 未声明} #<-
`, "未声明"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantProblemAt(t, couponBase+tc.yaml, tc.want) })
	}
}

func TestDefaultScenarioCouponHooksAndReferral(t *testing.T) {
	sc := LoadDefault()
	if p := sc.Funnel.Stages[bot.StagePurchase].Coupon; p == nil || p.Name != "第二杯半价券" {
		t.Errorf("purchase stage coupon = %v", p)
	}
	if r := sc.KeywordRule("领券"); r == nil || r.Coupon == nil || r.Coupon.Name != "新人券" {
		t.Errorf("领券 rule coupon = %+v", r)
	}
	if p := sc.Coupon("新人券"); len(p.AlertStaff) != 1 {
		t.Errorf("新人券 alert_staff = %v", p.AlertStaff)
	}
	ref := sc.Referral
	if ref == nil || !ref.IsKeyword("我要邀请好友") || ref.Hold != 24*time.Hour || len(ref.Rewards) != 3 ||
		ref.Rewards[1].Coupon == nil || ref.Rewards[0].Invites != 1 || ref.Channel != "好友推荐" {
		t.Fatalf("referral = %+v", ref)
	}
}
