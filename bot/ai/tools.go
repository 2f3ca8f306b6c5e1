package ai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// Tool names the model may call for a member.
const (
	ToolMyPoints    = "get_my_points"
	ToolCheckIn     = "check_in"
	ToolClaimCoupon = "claim_coupon"
)

var noArgs = json.RawMessage(`{"type":"object","properties":{}}`)

// memberTools are the tools of one member in 微信客服. Each acts on that
// member only (the id comes from the action, never from the model) and
// goes through the engine's own idempotent paths: check-in and coupon claim
// append the same kf.text event the member's own "打卡" / "领券" would, with
// a dedupe key per message, so a retried reply never checks in twice.
type memberTools struct {
	store bot.Store
	p     bot.AIReply
	wake  func()
	now   func() time.Time
}

// MemberTools returns the tools for the person p asks for: a member in
// 微信客服 gets them, staff get none (nil).
func MemberTools(store bot.Store, p *bot.AIReply, wakeEvents func()) Tools {
	if p.Surface != bot.AISurfaceKf || p.MemberID == "" || p.OpenKfID == "" {
		return nil
	}
	if wakeEvents == nil {
		wakeEvents = func() {}
	}
	return &memberTools{store: store, p: *p, wake: wakeEvents, now: time.Now}
}

// Specs describes the tools.
func (t *memberTools) Specs() []ToolSpec {
	return []ToolSpec{
		{Name: ToolMyPoints, Description: "查询当前会员自己的积分、会员等级和累计打卡天数", Parameters: noArgs},
		{Name: ToolCheckIn, Description: "为当前会员完成今天的早安打卡（会员明确要求打卡时才调用）", Parameters: noArgs},
		{Name: ToolClaimCoupon, Description: "为当前会员领取新人券（会员明确要求领券时才调用）", Parameters: noArgs},
	}
}

// Run runs one call.
func (t *memberTools) Run(ctx context.Context, call ToolCall) (string, error) {
	switch call.Name {
	case ToolMyPoints:
		var m *bot.Member
		err := t.store.View(ctx, func(tx bot.Tx) error {
			var err error
			m, err = tx.Member(t.p.MemberID)
			return err
		})
		if errors.Is(err, bot.ErrNotFound) {
			return "积分: 0，会员等级: 无，累计打卡天数: 0", nil
		}
		if err != nil {
			return "", err
		}
		level := m.Level
		if level == "" {
			level = "无"
		}
		return fmt.Sprintf("积分: %d，会员等级: %s，累计打卡天数: %d", m.Points, level, m.CheckIns), nil
	case ToolCheckIn:
		return t.asMember(ctx, call.Name, "打卡", "已提交打卡，会员马上会收到打卡结果的消息。")
	case ToolClaimCoupon:
		return t.asMember(ctx, call.Name, "领券", "已提交领券，会员马上会收到券的消息。")
	}
	return "", fmt.Errorf("unknown tool %q", call.Name)
}

// asMember appends the message the member would have typed, once per
// (tool, inbound message).
func (t *memberTools) asMember(ctx context.Context, tool, text, result string) (string, error) {
	now := t.now()
	ev := &bot.Event{Type: bot.EventKfText, Source: bot.SourceAI, DedupeKey: "aitool|" + tool + "|" + t.p.Ref,
		At: now, ReceivedAt: now, ExternalUserID: t.p.MemberID, OpenKfID: t.p.OpenKfID, Content: text,
		Data: map[string]string{"via": "ai_tool", "tool": tool}}
	dup, err := t.store.AppendEvent(ctx, ev)
	if err != nil {
		return "", err
	}
	if !dup {
		t.wake()
	}
	return result, nil
}
