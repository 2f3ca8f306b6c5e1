package engine

import (
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
