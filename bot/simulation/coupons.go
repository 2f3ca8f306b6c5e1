package simulation

import (
	"strings"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
)

// simCoupons prints the member's coupon codes that were issued or redeemed
// since the last report (simulate's "coupon" lines).
func (s *simulator) simCoupons(tx bot.Tx, member string) error {
	codes, err := engine.MemberCoupons(tx, member)
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
		case engine.CouponIssued:
			s.line("coupon", "%s: %s %s issued by %s %s", member, c.Pool, c.Code, c.Hook, strings.TrimPrefix(engine.ValidityText(c, s.zone), "，"))
		case engine.CouponUsed:
			s.line("coupon", "%s: %s %s redeemed in order %s", member, c.Pool, c.Code, c.OrderID)
		}
	}
	return nil
}
