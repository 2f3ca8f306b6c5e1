package scenarios

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// ReferralStatePrefix starts the state of members' personal invite codes
// ("r:" + a short id), so they never collide with channel states.
const ReferralStatePrefix = "r:"

// DefaultReferralHold is how long an invitee must stay a contact before the
// invite counts, when referral.hold is not set.
const DefaultReferralHold = 24 * time.Hour

// Referral is the invite (fission, 老带新) programme.
type Referral struct {
	Pos
	// Keywords (微信客服) that send the member their personal invite code.
	Keywords []string
	// Channel is the channel name invitees get; Tags are added to them.
	Channel string
	Tags    []string
	// Staff are put on the invite codes of members who follow nobody.
	Staff []string
	// Hold: an invitee who deletes the staff member within Hold is not counted.
	Hold time.Duration
	// Rewards are sorted by Invites, ascending.
	Rewards []*ReferralReward
	// CodeReady is sent with the member's invite code; Pending while it is made.
	CodeReady, Pending *Template
	// Poster is the 任务宝 poster (nil: none).
	Poster *Poster
}

// ReferralReward is given once when a member's counted invites reach Invites.
type ReferralReward struct {
	Pos
	Invites int
	Points  int
	Coupon  *CouponPool
	Tag     string
	Text    *Template
}

// IsKeyword reports whether text asks for the invite code.
func (r *Referral) IsKeyword(text string) bool {
	for _, k := range r.Keywords {
		if strings.Contains(text, k) {
			return true
		}
	}
	return false
}

// couponHooks resolves the coupon pools other sections name (funnel stages,
// keyword rules) and compiles the referral section; it runs after every
// section it refers to has compiled.
func (c *compiler) couponHooks(m *merged) {
	if f := m.funnel; f != nil && f.Stages != nil {
		for st, spec := range map[bot.Stage]*stageSpec{bot.StageAware: f.Stages.Aware, bot.StageInterest: f.Stages.Interest, bot.StagePurchase: f.Stages.Purchase, bot.StageLoyal: f.Stages.Loyal} {
			if spec == nil || spec.Coupon == "" {
				continue
			}
			info := c.sc.Funnel.Stages[st]
			info.Coupon = c.couponRef(spec.Pos, "coupon", spec.Coupon)
			c.sc.Funnel.Stages[st] = info
		}
	}
	for _, s := range m.keywordRules {
		if s.Coupon == "" {
			continue
		}
		r := c.sc.keywordRules[s.Name]
		if r == nil || r.File != s.File || r.Line != s.Line {
			continue // a duplicate name, already reported
		}
		r.Coupon = c.couponRef(s.Pos, "coupon", s.Coupon)
		for _, on := range r.On {
			if on != SurfaceKf {
				c.ps.at(s.Pos, "coupon", "coupons go to customers: a rule with a coupon must be on: [kf] only")
				break
			}
		}
	}
	c.referral(m.referral)
	if s := m.kf; s != nil {
		c.required(s.Pos, "greeting", s.Greeting, "the text a customer gets on opening the 微信客服 chat")
		c.fits(s.Pos, "greeting", s.Greeting, bot.MaxKfText, "a 微信客服 message")
		c.sc.Kf = &Kf{Greeting: c.template(s.Pos, "greeting", s.Greeting)}
	}
	if s := m.limits; s != nil {
		if s.MassSendPerMonth < 0 {
			c.ps.at(s.Pos, "mass_send_per_month", "must be positive (WeCom's API doc says 4)")
		}
		c.sc.Limits.MassSendPerMonth = s.MassSendPerMonth
		l := &c.sc.Limits
		if s.MassSendWindow < 0 {
			c.ps.at(s.Pos, "mass_send_window", "must not be negative (default 10m; 0s: only sends due at the same moment share a task)")
		}
		l.MassSendWindow, l.MassSendWindowSet = time.Duration(s.MassSendWindow), s.has("mass_send_window")
		if s.MassSendConfirmWithin < 0 {
			c.ps.at(s.Pos, "mass_send_confirm_within", "must not be negative (default 72h)")
		}
		l.MassSendConfirmWithin = time.Duration(s.MassSendConfirmWithin)
		l.MassSendRemindSet = s.has("mass_send_remind")
		for _, d := range s.MassSendRemind {
			if d <= 0 {
				c.ps.at(s.Pos, "mass_send_remind", "reminder times must be positive durations after the task's creation, e.g. [4h, 24h]")
			}
			l.MassSendRemind = append(l.MassSendRemind, time.Duration(d))
		}
		if s.ContactPerDay < 0 {
			c.ps.at(s.Pos, "contact_per_day", "must not be negative (0: no daily cap)")
		}
		if s.ContactPerWeek < 0 {
			c.ps.at(s.Pos, "contact_per_week", "must not be negative (0: no weekly cap)")
		}
		if s.ContactPerDay > 0 && s.ContactPerWeek > 0 && s.ContactPerWeek < s.ContactPerDay {
			c.ps.at(s.Pos, "contact_per_week", "is less than contact_per_day (%d): the weekly cap would always bite first", s.ContactPerDay)
		}
		c.sc.Limits.ContactPerDay, c.sc.Limits.ContactPerWeek = s.ContactPerDay, s.ContactPerWeek
	}
}

func (c *compiler) referral(s *referralSpec) {
	if s == nil {
		return
	}
	r := &Referral{Pos: s.Pos, Channel: s.Channel, Tags: c.tagList(s.Pos, "tags", s.Tags), Staff: s.Staff,
		Hold: time.Duration(s.Hold), CodeReady: c.template(s.Pos, "code_ready", s.CodeReady), Pending: c.template(s.Pos, "pending", s.Pending)}
	if !s.has("hold") {
		r.Hold = DefaultReferralHold
	}
	r.Keywords = c.keywordList(s.Pos, "keywords", s.Keywords)
	r.Poster = c.poster(s.Poster)
	if len(r.Keywords) == 0 {
		c.ps.at(s.Pos, "keywords", "required: the words (e.g. 邀请) a member sends in 微信客服 to get their invite code")
	}
	if c.sc.channelsByName[s.Channel] != nil {
		c.ps.at(s.Pos, "channel", "%q is already a channel's name; give invitees a name of their own (e.g. 好友推荐)", s.Channel)
	}
	for i, id := range s.Staff {
		if strings.TrimSpace(id) == "" {
			c.ps.at(s.Pos, fmt.Sprintf("staff[%d]", i), "empty staff userid")
		}
	}
	seen := map[int]bool{}
	for _, rs := range s.Rewards {
		if rs.Invites < 1 {
			c.ps.at(rs.Pos, "invites", "must be at least 1")
		} else if seen[rs.Invites] {
			c.ps.at(rs.Pos, "invites", "a reward for %d invites is already declared", rs.Invites)
		}
		seen[rs.Invites] = true
		if rs.Points < 0 {
			c.ps.at(rs.Pos, "points", "must not be negative")
		}
		rw := &ReferralReward{Pos: rs.Pos, Invites: rs.Invites, Points: rs.Points,
			Coupon: c.couponRef(rs.Pos, "coupon", rs.Coupon), Text: c.template(rs.Pos, "text", rs.Text)}
		if rs.Tag != "" {
			c.tag(rs.Pos, "tag", rs.Tag)
			rw.Tag = rs.Tag
		}
		if rs.Points == 0 && rs.Coupon == "" && rs.Tag == "" && strings.TrimSpace(rs.Text) == "" {
			c.ps.at(rs.Pos, "points", "the reward gives nothing: set points, coupon, tag or text")
		}
		r.Rewards = append(r.Rewards, rw)
	}
	sort.SliceStable(r.Rewards, func(i, j int) bool { return r.Rewards[i].Invites < r.Rewards[j].Invites })
	c.sc.Referral = r
}
