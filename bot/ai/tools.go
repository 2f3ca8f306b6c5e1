package ai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// Tool names the model may call for a member.
const (
	ToolMyPoints    = "get_my_points"
	ToolCheckIn     = "check_in"
	ToolClaimCoupon = "claim_coupon"
	// ToolListRewards sends the member the catalogue she can afford (the
	// kf command 兑换); ToolRedeem redeems one item (兑换 <item>).
	ToolListRewards = "list_rewards"
	ToolRedeem      = "redeem_reward"
)

var redeemArgs = json.RawMessage(`{"type":"object","properties":{"item":{"type":"string","description":"礼品名称，须与积分商城列表中的名称一致"}},"required":["item"]}`)

// maxToolItem bounds the item name the model may pass.
const maxToolItem = 64

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
		{Name: ToolListRewards, Description: "把当前会员能用积分兑换的礼品列表发给会员（会员问积分能换什么时调用）", Parameters: noArgs},
		{Name: ToolRedeem, Description: "用当前会员的积分兑换一件礼品（会员明确说要兑换哪件礼品时才调用，会扣积分）", Parameters: redeemArgs},
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
	case ToolListRewards:
		return t.asMember(ctx, call.Name, "兑换", "已把可兑换的礼品列表发给会员。")
	case ToolRedeem:
		var args struct {
			Item string `json:"item"`
		}
		item := ""
		if json.Unmarshal([]byte(call.Arguments), &args) == nil {
			item = strings.Join(strings.Fields(args.Item), " ")
		}
		if item == "" || len(item) > maxToolItem {
			return "没有说清要兑换哪件礼品，请先问会员要兑换的礼品名称。", nil
		}
		return t.asMember(ctx, call.Name, "兑换 "+item, "已提交兑换，会员马上会收到兑换结果的消息（积分不够或已兑完时也会告诉她）。")
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
