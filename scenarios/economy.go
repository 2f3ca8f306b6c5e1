package scenarios

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// The member economy (issue 20): points for spend, the redemption
// catalogue (兑换) and level rights. The runtime is bot/engine economy.go,
// redeem.go and rights.go; docs/scenarios.md documents the keys.

// pointsSpec is the points section: points for what members spend.
type pointsSpec struct {
	Pos
	// PerYuan is how many points one yuan paid earns, before the member's
	// level multiplier (0: orders earn no points).
	PerYuan int `yaml:"per_yuan"`
	// Expire: never (default), end_of_year, end_of_next_year, or a number
	// of days ("365d") after the points were earned.
	Expire string `yaml:"expire"`
	// Earned is told to the member when an order's points are credited;
	// ClawedBack when a refund takes them back ("": nothing is sent).
	Earned     string `yaml:"earned"`
	ClawedBack string `yaml:"clawed_back"`
}

// redeemSpec is the redemption catalogue (积分兑换).
type redeemSpec struct {
	Pos
	// Keywords in 微信客服 list what the member can afford; "<keyword> <item>"
	// redeems it. Default [兑换].
	Keywords []string          `yaml:"keywords"`
	Items    []*redeemItemSpec `yaml:"items"`
	// Shipped tells the member her gift was shipped ({{.Item}}, {{.Tracking}}).
	Shipped string `yaml:"shipped"`
}

type redeemItemSpec struct {
	Pos
	Name string `yaml:"name"`
	Cost int    `yaml:"cost"`
	// Stock is how many can be redeemed in all (omitted: unlimited).
	Stock *int `yaml:"stock"`
	// PerMember is how many one member may redeem (0: no limit).
	PerMember int `yaml:"per_member"`
	// StockAlert warns (log, metric, console) when stock falls to it.
	StockAlert int           `yaml:"stock_alert"`
	Audience   *audienceSpec `yaml:"audience"`
	// Segment names a segment (segments:) the member must be in.
	Segment    string `yaml:"segment"`
	ValidFrom  Date   `yaml:"valid_from"`
	ValidUntil Date   `yaml:"valid_until"`
	// The reward: exactly one of a coupon pool, a physical gift (the member
	// gives a shipping address on her signed page) or a tag (a right).
	Coupon string `yaml:"coupon"`
	Gift   string `yaml:"gift"`
	Tag    string `yaml:"tag"`
	// Text is told on a successful redemption (default per reward kind).
	Text string `yaml:"text"`
}

// Expiry kinds of points.expire.
const (
	ExpireNever          = ""
	ExpireEndOfYear      = "end_of_year"
	ExpireEndOfNextYear  = "end_of_next_year"
	expireDaysSuffix     = "d"
	DefaultRedeemKeyword = "兑换"
)

// Points is the compiled points section.
type Points struct {
	PerYuan int
	// Expire is ExpireNever, ExpireEndOfYear, ExpireEndOfNextYear, or ""
	// with ExpireDays set.
	Expire     string
	ExpireDays int
	Earned     *Template
	ClawedBack *Template
}

// Expires reports whether points expire at all.
func (p Points) Expires() bool { return p.Expire != ExpireNever || p.ExpireDays > 0 }

// ExpiryOf is the last day (local midnight in zone) points earned at at
// are still valid; zero when points never expire.
func (p Points) ExpiryOf(at time.Time, zone *time.Location) time.Time {
	local := at.In(zone)
	day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, zone)
	switch {
	case p.Expire == ExpireEndOfYear:
		return time.Date(local.Year(), 12, 31, 0, 0, 0, 0, zone)
	case p.Expire == ExpireEndOfNextYear:
		return time.Date(local.Year()+1, 12, 31, 0, 0, 0, 0, zone)
	case p.ExpireDays > 0:
		return day.AddDate(0, 0, p.ExpireDays-1)
	}
	return time.Time{}
}

// Reward kinds of a catalogue item.
const (
	RewardCoupon = "coupon"
	RewardGift   = "gift"
	RewardTag    = "tag"
)

// Redeem is the compiled redemption catalogue.
type Redeem struct {
	Pos
	Keywords []string
	// Items are in file order; the kf list numbers them from 1.
	Items   []*RedeemItem
	Shipped *Template
}

// RedeemItem is one catalogue item.
type RedeemItem struct {
	Pos
	Name string
	Cost int64
	// Stock is the total that may be redeemed; -1 is unlimited.
	Stock      int
	PerMember  int
	StockAlert int
	Audience   Audience
	// Segment, when set, is a segment the member must be in too.
	Segment *Segment
	// ValidFrom and ValidUntil are local midnights (zero: open); ValidUntil is the last day.
	ValidFrom, ValidUntil time.Time
	// Kind is RewardCoupon (Coupon set), RewardGift (Gift is what ships) or RewardTag (Tag).
	Kind   string
	Coupon *CouponPool
	Gift   string
	Tag    string
	Text   *Template
}

// For reports whether m may redeem the item (its audience and segment) at now.
func (it *RedeemItem) For(m *bot.Member, now time.Time) bool {
	return it.Audience.IncludesAt(m, now) && (it.Segment == nil || it.Segment.Match(m, now))
}

// Limited reports whether the item has a stock.
func (it *RedeemItem) Limited() bool { return it.Stock >= 0 }

// OpenAt reports whether the item may be redeemed at at (its validity).
func (it *RedeemItem) OpenAt(at time.Time, zone *time.Location) bool {
	if !it.ValidFrom.IsZero() && at.Before(it.ValidFrom) {
		return false
	}
	if !it.ValidUntil.IsZero() && !at.Before(it.ValidUntil.In(zone).AddDate(0, 0, 1)) {
		return false
	}
	return true
}

// Item returns the catalogue item named name (or numbered, from 1, as the
// kf list shows), or nil.
func (r *Redeem) Item(name string) *RedeemItem {
	if r == nil {
		return nil
	}
	name = strings.TrimSpace(name)
	for _, it := range r.Items {
		if it.Name == name {
			return it
		}
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 1 && n <= len(r.Items) {
		return r.Items[n-1]
	}
	return nil
}

// Command parses a kf message as a redemption command: ok when it is a
// keyword alone (the list), a keyword and a space and anything (an item),
// or a keyword directly followed by an item's name or number; rest is the
// item asked for.
func (r *Redeem) Command(text string) (rest string, ok bool) {
	if r == nil {
		return "", false
	}
	text = strings.TrimSpace(text)
	for _, k := range r.Keywords {
		after, found := strings.CutPrefix(text, k)
		if !found {
			continue
		}
		rest = strings.TrimSpace(after)
		// "兑换 1" or "兑换满30减10券" is the command; "兑换码怎么用" is a
		// question for the keyword rules or the AI.
		if rest == "" || rest != after || r.Item(rest) != nil {
			return rest, true
		}
	}
	return "", false
}

// Default texts of the economy.
const (
	// DefaultAnnounceText announces a level reached outside a check-in.
	DefaultAnnounceText = "🎉 恭喜{{.Name}}升级为「{{.Level}}」会员！"
	// DefaultEarnedText is not sent unless points.earned is set; the
	// scenario's own text is used.
	DefaultShippedText = "📦 你兑换的「{{.Item}}」已发货{{if .Tracking}}，运单号 {{.Tracking}}{{end}}，请留意查收～"
)

func (c *compiler) economy(m *merged) {
	if s := m.points; s != nil {
		p := Points{PerYuan: s.PerYuan, Earned: c.template(s.Pos, "earned", s.Earned), ClawedBack: c.template(s.Pos, "clawed_back", s.ClawedBack)}
		if s.PerYuan < 0 {
			c.ps.at(s.Pos, "per_yuan", "must not be negative")
		}
		switch e := strings.TrimSpace(s.Expire); {
		case e == "" || e == "never":
		case e == ExpireEndOfYear || e == ExpireEndOfNextYear:
			p.Expire = e
		case strings.HasSuffix(e, expireDaysSuffix):
			n, err := strconv.Atoi(strings.TrimSuffix(e, expireDaysSuffix))
			if err != nil || n < 1 {
				c.ps.at(s.Pos, "expire", "%q: want never, end_of_year, end_of_next_year or a number of days such as 365d", s.Expire)
			}
			p.ExpireDays = n
		default:
			c.ps.at(s.Pos, "expire", "%q: want never, end_of_year, end_of_next_year or a number of days such as 365d", s.Expire)
		}
		c.sc.Points = p
	}
	c.redeem(m.redeem)
	for _, s := range m.levels {
		l := c.sc.Level(s.Name)
		if l == nil || l.File != s.File || l.Line != s.Line {
			continue // a duplicate, already reported
		}
		l.Multiplier = 1
		if s.Multiplier != nil {
			if *s.Multiplier <= 0 || *s.Multiplier > 100 {
				c.ps.at(s.Pos, "multiplier", "must be above 0 and at most 100 (1.5 gives half as many points again)")
			}
			l.Multiplier = *s.Multiplier
		}
		l.Coupon = c.couponRef(s.Pos, "coupon", s.Coupon)
		l.MonthlyCoupon = c.couponRef(s.Pos, "monthly_coupon", s.MonthlyCoupon)
		l.BirthdayCoupon = c.couponRef(s.Pos, "birthday_coupon", s.BirthdayCoupon)
		if s.Gift != "" {
			l.Gift = c.sc.Redeem.Item(s.Gift)
			if l.Gift == nil || l.Gift.Name != s.Gift {
				c.ps.at(s.Pos, "gift", "unknown catalogue item %q (declare it under redeem.items)", s.Gift)
				l.Gift = nil
			}
		}
		l.Announce = c.template(s.Pos, "announce", textOr(s.Announce, DefaultAnnounceText))
		c.fits(s.Pos, "announce", s.Announce, bot.MaxKfText, "a 微信客服 message")
	}
}

func (c *compiler) redeem(s *redeemSpec) {
	if s == nil {
		return
	}
	r := &Redeem{Pos: s.Pos, Shipped: c.template(s.Pos, "shipped", textOr(s.Shipped, DefaultShippedText))}
	for i, k := range s.Keywords {
		if strings.TrimSpace(k) == "" {
			c.ps.at(s.Pos, fmt.Sprintf("keywords[%d]", i), "empty keyword (it would match every message)")
			continue
		}
		r.Keywords = append(r.Keywords, strings.TrimSpace(k))
	}
	if len(s.Keywords) == 0 {
		r.Keywords = []string{DefaultRedeemKeyword}
	}
	names := map[string]string{}
	for _, is := range s.Items {
		c.required(is.Pos, "name", is.Name, "the item's name members redeem it by (e.g. 满30减10券)")
		c.unique(names, is.Pos, "name", "catalogue item", is.Name)
		if _, err := strconv.Atoi(strings.TrimSpace(is.Name)); err == nil {
			c.ps.at(is.Pos, "name", "%q: a number names the item at that place in the list; give the item a word", is.Name)
		}
		if is.Cost < 0 {
			c.ps.at(is.Pos, "cost", "must not be negative")
		}
		it := &RedeemItem{Pos: is.Pos, Name: is.Name, Cost: int64(is.Cost), Stock: -1, PerMember: is.PerMember, StockAlert: is.StockAlert,
			Audience: c.audience(is.Audience, c.sc.channelsByName), Text: c.template(is.Pos, "text", is.Text)}
		if is.Segment != "" {
			if it.Segment = c.sc.Segment(is.Segment); it.Segment == nil {
				c.ps.at(is.Pos, "segment", "unknown segment %q (declare it under segments)", is.Segment)
			}
		}
		if is.Stock != nil {
			if *is.Stock < 0 {
				c.ps.at(is.Pos, "stock", "must not be negative (leave it out for no limit)")
			}
			it.Stock = max(*is.Stock, 0)
		}
		if is.PerMember < 0 {
			c.ps.at(is.Pos, "per_member", "must not be negative (0: no limit)")
		}
		zone := c.sc.Brand.Zone
		if !is.ValidFrom.IsZero() {
			it.ValidFrom = is.ValidFrom.In(zone)
		}
		if !is.ValidUntil.IsZero() {
			it.ValidUntil = is.ValidUntil.In(zone)
		}
		if !it.ValidFrom.IsZero() && !it.ValidUntil.IsZero() && it.ValidUntil.Before(it.ValidFrom) {
			c.ps.at(is.Pos, "valid_until", "is before valid_from")
		}
		kinds := 0
		if is.Coupon != "" {
			kinds++
			it.Kind, it.Coupon = RewardCoupon, c.couponRef(is.Pos, "coupon", is.Coupon)
		}
		if strings.TrimSpace(is.Gift) != "" {
			kinds++
			it.Kind, it.Gift = RewardGift, strings.TrimSpace(is.Gift)
		}
		if is.Tag != "" {
			kinds++
			c.tag(is.Pos, "tag", is.Tag)
			it.Kind, it.Tag = RewardTag, is.Tag
		}
		if kinds != 1 {
			c.ps.at(is.Pos, "coupon", "give exactly one reward: coupon (a pool), gift (a physical gift, shipped) or tag (a right)")
		}
		r.Items = append(r.Items, it)
	}
	c.sc.Redeem = r
}

// textOr is src, or def when src is blank.
func textOr(src, def string) string {
	if strings.TrimSpace(src) == "" {
		return def
	}
	return src
}

// EconomyScheduled reports whether the economy has scheduled work: points
// that expire, or monthly or birthday coupons.
func (sc *Scenario) EconomyScheduled() bool {
	if sc.Points.Expires() {
		return true
	}
	for _, l := range sc.Levels {
		if l.MonthlyCoupon != nil || l.BirthdayCoupon != nil {
			return true
		}
	}
	return false
}
