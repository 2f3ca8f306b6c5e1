package engine

import (
	"context"
	"strings"

	"github.com/wecombot/wecombot/bot"
)

// simCoupons prints the member's coupon codes that were issued or redeemed
// since the last report (simulate's "coupon" lines).
func (s *simulator) simCoupons(tx bot.Tx, member string) error {
	codes, err := MemberCoupons(tx, member)
	if err != nil {
		return err
	}
	if s.couponSeen == nil {
		s.couponSeen = map[string]string{}
	}
	for i := len(codes) - 1; i >= 0; i-- {
		c := &codes[i]
		if s.couponSeen[c.Code] == c.Status {
			continue
		}
		s.couponSeen[c.Code] = c.Status
		switch c.Status {
		case CouponIssued:
			s.line("coupon", "%s: %s %s issued by %s %s", member, c.Pool, c.Code, c.Hook, strings.TrimPrefix(validityText(c, s.zone), "，"))
		case CouponUsed:
			s.line("coupon", "%s: %s %s redeemed in order %s", member, c.Pool, c.Code, c.OrderID)
		}
	}
	return nil
}

// simResult plays WeCom's answer to a "contact me" code request back into
// the log, as the pipeline does with SendResult.Data, so scripts see
// invite codes arrive (config_id and qr_code are made up).
func (s *simulator) simResult(ctx context.Context, a *bot.Action) error {
	if a.Kind != bot.ActionContactWay {
		return nil
	}
	var cw bot.ContactWay
	if err := a.Decode(&cw); err != nil {
		return err
	}
	ev := &bot.Event{Type: bot.EventActionResult, Source: bot.SourceSystem, DedupeKey: "result|" + a.Key,
		At: s.clock, ReceivedAt: s.clock, ExternalUserID: a.MemberID, Data: map[string]string{
			bot.ResultKind: string(a.Kind), bot.ResultKey: a.Key, "state": cw.State,
			"config_id": "sim-" + cw.State, "qr_code": "https://wework.example/qr/" + cw.State}}
	return s.deliver(ctx, ev, 1)
}
