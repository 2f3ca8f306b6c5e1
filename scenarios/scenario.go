package scenarios

import (
	"regexp"
	"sort"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/wecombot/wecombot/bot"
)

// Scenario is a compiled, validated scenario: templates parsed, regexes
// compiled, references resolved, cron specs parsed. It is immutable once
// built: every exported field and everything reachable from it is read-only
// and safe to share between goroutines. A reload builds a new Scenario.
type Scenario struct {
	// Source is the path that was loaded, or "embedded" for the built-in demo.
	Source string
	// Warnings are problems that don't stop the scenario from loading but
	// will bite in production (a raw media_id expires 3 days after upload;
	// a text longer than its surface allows is cut). check prints them.
	Warnings ValidationError
	// Media lists every file or URL the scenario attaches; the media
	// library uploads them and keeps them fresh.
	Media []bot.MediaRef
	// Files are the files merged, in order.
	Files []string
	// Version is a short hash of the files' contents; equal versions mean equal scenarios.
	Version string
	// LoadedAt is when the scenario was compiled.
	LoadedAt time.Time

	Brand Brand
	// TagGroups is the corp tag catalog (企业客户标签), sorted by group name.
	TagGroups []TagGroup
	Funnel    Funnel
	// Channels are in file order.
	Channels []*Channel
	// DefaultWelcome is welcome.default: the script for members whose channel
	// names no script, or whose State is unknown. It may be nil.
	DefaultWelcome *Script
	// Scripts are the named welcome scripts (welcome.scripts).
	Scripts []*Script
	// GroupWelcomes are the customer-group welcome templates (入群欢迎语), default first.
	GroupWelcomes []*GroupTemplate
	Keywords      Keywords
	TagRules      []*TagRule
	Campaigns     []*Campaign
	Coupons       []*CouponPool
	// Levels are sorted by MinPoints, ascending.
	Levels []*Level
	// AI is nil when the scenario has no ai section.
	AI *AI
	// Referral is nil when the scenario has no referral section.
	Referral *Referral
	// Kf is nil when the scenario has no kf section.
	Kf *Kf
	// Limits are WeCom quotas (zero: WeCom's documented defaults).
	Limits Limits
	// Segments are the named segments (segments), in file order.
	Segments []*Segment
	// ProfileForm is nil when the scenario has no profile_form section.
	ProfileForm *ProfileForm
	// Points is the points-for-spend rule (zero: orders earn no points).
	Points Points
	// Redeem is the redemption catalogue (nil: none).
	Redeem *Redeem
	// Silent is nil when the scenario has no silent section.
	Silent *Silent
	// LossAlerts is nil when the scenario has no loss_alerts section.
	LossAlerts *LossAlerts
	// Broadcasts (群发) and SOPs (sequences) are in file order (outreach.go).
	Broadcasts []*Broadcast
	SOPs       []*SOP
	// PastSchedules are one-off broadcasts whose time has passed: errors
	// for check (they would never run), warnings for serve (they ran).
	PastSchedules ValidationError

	channelsByState map[string]*Channel
	channelsByName  map[string]*Channel
	scripts         map[string]*Script
	coupons         map[string]*CouponPool
	campaigns       map[string]*Campaign
	keywordRules    map[string]*KeywordRule
	tagGroupOf      map[string]string
	segments        map[string]*Segment
}

// Brand is the brand section.
type Brand struct {
	Name              string
	DefaultMemberName string
	Zone              *time.Location
}

// TagGroup is one corp tag group (标签组) and its tags (标签), by name.
type TagGroup struct {
	Name string
	Tags []string
}

// Signal is something a member did that funnel rules react to.
type Signal string

// Signals.
const (
	SignalJoinGroup Signal = "join_group" // joined a customer group (客户群)
	SignalCheckIn   Signal = "check_in"   // checked in (打卡)
	SignalKfChat    Signal = "kf_chat"    // wrote to 微信客服
	SignalKeyword   Signal = "keyword"    // sent a message matching a keyword rule
)

var validSignals = []Signal{SignalJoinGroup, SignalCheckIn, SignalKfChat, SignalKeyword}

// StageInfo is a stage's display name and corp tag.
type StageInfo struct {
	Name string
	Tag  string
	// Coupon is issued when a member reaches the stage (nil: none).
	Coupon *CouponPool
}

// Funnel holds the AIPL rules.
type Funnel struct {
	// TagGroup is the corp tag group stage tags are created in.
	TagGroup string
	Stages   map[bot.Stage]StageInfo
	// InterestOn lists the signals that move a member to Interest.
	InterestOn map[Signal]bool
	// LoyalSpendFen (0: off) and LoyalOrders (0: off) move a member to Loyal.
	LoyalSpendFen int64
	LoyalOrders   int
	// LostTag is added when a member deleted every staff member ("" for none).
	LostTag string
	// AllowBackward lets refunds move a member back (Loyal → Purchase → Interest).
	AllowBackward bool
}

// StageName returns the stage's display name ("" for none).
func (f Funnel) StageName(s bot.Stage) string { return f.Stages[s].Name }

// StageTag returns the stage's corp tag name ("" when not tagged).
func (f Funnel) StageTag(s bot.Stage) string { return f.Stages[s].Tag }

// Channel is one acquisition channel: a "contact me" (联系我) code's state.
type Channel struct {
	Pos
	State string
	Name  string
	Tags  []string
	// Welcome is the script to send; nil means DefaultWelcome.
	Welcome *Script
	// Staff are the userids `wecombot channel create` puts on the contact way.
	Staff      []string
	SkipVerify bool
	// Group, when set, makes the channel a group QR code (加入群聊): members
	// who join a customer group through it carry its state.
	Group *GroupJoin
}

// GroupJoin is a group channel's 加入群聊 code (groupchat/add_join_way).
type GroupJoin struct {
	// ChatIDs are the customer groups (1-5) the code leads to, in order.
	ChatIDs []string `json:"chat_ids"`
	// AutoCreate opens a new room when the last group is full, named
	// RoomBaseName plus a number counting from RoomBaseID.
	AutoCreate   bool   `json:"auto_create,omitempty"`
	RoomBaseName string `json:"room_base_name,omitempty"`
	RoomBaseID   int    `json:"room_base_id,omitempty"`
}

// Limits of a group QR code (add_join_way).
const (
	MaxJoinWayChats    = 5
	MaxRoomBaseNameLen = 40
)

// Script is a welcome script: a text, attachments and follow-ups.
type Script struct {
	Pos
	// Name is "default" for welcome.default.
	Name        string
	Text        *Template
	Attachments []*Attachment
	// Coupon is the new-member coupon pool (issued in issue 6), or nil.
	Coupon *CouponPool
	// FollowUps is the script's follow-up sequence (nil: none): an SOP
	// started by the welcome (outreach.go).
	FollowUps *SOP
}

// Ways a follow-up (and an SOP step or broadcast) reaches the member.
const (
	ViaMassSend = "mass_send" // the staff member's mass-send task (add_msg_template, staff confirm)
	ViaKf       = "kf"        // 微信客服, only inside its reply window
)

// Attachment is a compiled message attachment; link title, url and desc
// are templates.
type Attachment struct {
	Pos
	static           bot.Attachment
	title, url, desc *Template
}

// Render returns the attachment for a member; on a template failure it
// falls back to the plain text of that field and returns the error.
func (a *Attachment) Render(d TemplateData) (bot.Attachment, error) {
	out := a.static
	var firstErr error
	for _, f := range []struct {
		t   *Template
		dst *string
	}{{a.title, &out.Title}, {a.url, &out.URL}, {a.desc, &out.Desc}} {
		if f.t == nil {
			continue
		}
		s, err := f.t.Render(d)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		*f.dst = s
	}
	return out, firstErr
}

// RenderAttachments renders a list, returning the first template error.
func RenderAttachments(as []*Attachment, d TemplateData) ([]bot.Attachment, error) {
	if len(as) == 0 {
		return nil, nil
	}
	out := make([]bot.Attachment, len(as))
	var firstErr error
	for i, a := range as {
		var err error
		out[i], err = a.Render(d)
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return out, firstErr
}

// Limits are WeCom's quotas the engine respects.
type Limits struct {
	// MassSendPerMonth: mass-send tasks per customer per natural month (0: 4).
	MassSendPerMonth int
	// MassSendWindow groups mass sends due within it into one task per
	// staff member and content (0 with MassSendWindowSet: only those due at
	// the same moment; unset: 10 min).
	MassSendWindow    time.Duration
	MassSendWindowSet bool
	// MassSendRemind are the times after a task's creation when an
	// unconfirmed task's staff member is reminded (remind_groupmsg_send;
	// unset: 4 h and 24 h; set empty: never).
	MassSendRemind    []time.Duration
	MassSendRemindSet bool
	// MassSendConfirmWithin is how long a task may wait for its
	// confirmation before its customers count as not confirmed (0: 72 h).
	MassSendConfirmWithin time.Duration
	// ContactPerDay / ContactPerWeek: proactive messages per member per
	// day (brand zone) and in any 7 days (0: no cap).
	ContactPerDay, ContactPerWeek int
}

// Kf is the 微信客服 section.
type Kf struct {
	// Greeting is sent with kf/send_msg_on_event when a customer opens the chat.
	Greeting *Template
}

// GroupTemplate is a customer-group welcome template (入群欢迎语素材).
type GroupTemplate struct {
	Pos
	Name string
	// TemplateID, once known, makes the sync edit the template instead of adding one.
	TemplateID string
	// Notify asks WeCom to tell the group owners to apply the template
	// (notify: false in YAML turns it off; absent means notify, as in WeCom).
	Notify      bool
	Text        *Template
	Attachments []*Attachment
}

// Surfaces where keyword rules listen.
const (
	SurfaceKf  = "kf"  // 微信客服 messages from WeChat users
	SurfaceApp = "app" // staff messages to the self-built app
)

// Keywords is the keyword auto-reply section.
type Keywords struct {
	RateLimit RateLimit
	// Rules are in priority order: the first match wins.
	Rules []*KeywordRule
	kf    *matcher
	app   *matcher
}

// RateLimit caps auto-replies per member: at most Max in any Per window.
type RateLimit struct {
	Max int
	Per time.Duration
}

// KeywordRule is one auto-reply rule.
type KeywordRule struct {
	Pos
	// Index is the rule's priority (0 first).
	Index    int
	Name     string
	Keywords []string
	Regex    *regexp.Regexp
	On       []string
	Reply    *Template
	Tags     []string
	// Signal is the funnel signal the match counts as ("" for none).
	Signal Signal
	Notify *Notify
	// Coupon is the pool whose code the reply carries (nil: none).
	Coupon *CouponPool
}

// Notify sends a message to staff (message/send).
type Notify struct {
	// Staff are userids; empty means the member's own staff member.
	Staff []string
	Text  *Template
}

// Match returns the first rule on surface (SurfaceKf or SurfaceApp) that
// text matches, or nil.
func (sc *Scenario) Match(surface, text string) *KeywordRule {
	switch surface {
	case SurfaceKf:
		return sc.Keywords.kf.match(text)
	case SurfaceApp:
		return sc.Keywords.app.match(text)
	}
	return nil
}

// TagRule adds or removes tags when all its conditions hold.
type TagRule struct {
	Pos
	Name string
	// Keyword: the named keyword rule matched in the event being handled.
	Keyword *KeywordRule
	// Channel: the member's channel name. Group: in that customer group (chat id), or "any".
	Channel string
	Group   string
	// CheckIns: at least this many check-in days. Level: that level name. Stage: at that stage.
	CheckIns int
	Level    string
	Stage    bot.Stage
	Add      []string
	Remove   []string
}

// Applies reports whether every condition of the rule holds for m, given
// the keyword rule matched by the current event (nil if none).
func (r *TagRule) Applies(m *bot.Member, matched *KeywordRule) bool {
	if r.Keyword != nil && r.Keyword != matched {
		return false
	}
	if r.Channel != "" && m.Channel != r.Channel {
		return false
	}
	if r.Group == "any" && len(m.Groups) == 0 {
		return false
	}
	if r.Group != "" && r.Group != "any" && !m.InGroup(r.Group) {
		return false
	}
	if r.CheckIns > 0 && m.CheckIns < r.CheckIns {
		return false
	}
	if r.Level != "" && m.Level != r.Level {
		return false
	}
	if r.Stage != bot.StageNone && m.Stage != r.Stage {
		return false
	}
	return true
}

// Audience selects members; every non-empty list must match (any of its
// entries), and the member must be in Segment when one is named.
type Audience struct {
	Groups   []string
	Tags     []string
	Channels []string
	Stages   []bot.Stage
	// Levels are level names (会员等级).
	Levels []string
	// segment is audience.segment, resolved once segments compile (shared
	// by every copy of the audience).
	segment *segmentRef
}

type segmentRef struct{ seg *Segment }

// Segment is the segment the audience names, or nil. Its rules that read
// the clock (silent_days, active_days, added_within) are evaluated at the
// time IncludesAt is given.
func (a Audience) Segment() *Segment {
	if a.segment == nil {
		return nil
	}
	return a.segment.seg
}

// Empty reports whether the audience selects everyone.
func (a Audience) Empty() bool {
	return len(a.Groups) == 0 && len(a.Tags) == 0 && len(a.Channels) == 0 && len(a.Stages) == 0 && len(a.Levels) == 0 && a.Segment() == nil
}

// IncludesAt reports whether m is in the audience at now.
func (a Audience) IncludesAt(m *bot.Member, now time.Time) bool {
	if seg := a.Segment(); seg != nil && !seg.Match(m, now) {
		return false
	}
	return a.inLists(m)
}

// inLists reports whether m matches the audience's lists.
func (a Audience) inLists(m *bot.Member) bool {
	if len(a.Groups) > 0 && !anyOf(a.Groups, m.InGroup) {
		return false
	}
	if len(a.Tags) > 0 && !anyOf(a.Tags, m.HasTag) {
		return false
	}
	if len(a.Channels) > 0 && !anyOf(a.Channels, func(c string) bool { return c == m.Channel }) {
		return false
	}
	if len(a.Levels) > 0 && !anyOf(a.Levels, func(l string) bool { return l == m.Level }) {
		return false
	}
	if len(a.Stages) > 0 {
		found := false
		for _, s := range a.Stages {
			found = found || s == m.Stage
		}
		if !found {
			return false
		}
	}
	return true
}

func anyOf(list []string, f func(string) bool) bool {
	for _, s := range list {
		if f(s) {
			return true
		}
	}
	return false
}

// Campaign is a check-in (打卡) campaign. Its runtime (ledger, leaderboard,
// scheduler) is bot/checkin; the engine's check-in feature applies it.
type Campaign struct {
	Pos
	Name     string
	Audience Audience
	// Start and End are local midnights in Zone; End is the last day (inclusive).
	// Both are zero for a rolling campaign that starts at each member's first check-in.
	Start, End time.Time
	// Days is the campaign length in days (End-Start+1 for dated campaigns).
	Days        int
	Zone        *time.Location
	Windows     []Window
	Keywords    []string
	Makeup      Makeup
	Points      int
	StreakBonus []StreakBonus
	Milestones  []*Milestone
	Reminders   []*Reminder
	Messages    CampaignMessages
	Certificate *Certificate
}

// Rolling reports whether the campaign runs per member rather than on fixed dates.
func (c *Campaign) Rolling() bool { return c.Start.IsZero() }

// Makeup is the make-up (补卡) allowance. Keywords (default [补卡]) ask
// for one in kf.
type Makeup struct {
	Keywords   []string
	Max        int
	WithinDays int
	CostPoints int
}

// StreakBonus gives extra points when a streak reaches Days.
type StreakBonus struct {
	Days   int
	Points int
}

// Milestone rewards the member's Day-th check-in day.
type Milestone struct {
	Pos
	Day         int
	Points      int
	Coupon      *CouponPool
	Certificate bool
	Tag         string
	Stage       bot.Stage
	Text        *Template
}

// Reminder kinds and targets.
const (
	ReminderRemind  = "remind"
	ReminderOpen    = "open"
	ReminderSummary = "summary"
	ReminderClose   = "close"

	ToMembers = "members" // each member in the audience, through kf
	ToGroups  = "groups"  // the audience's customer groups, through a mass-send task
	ToRobot   = "robot"   // an internal group through a group robot
)

// Reminder is a scheduled campaign message.
type Reminder struct {
	Pos
	Spec     string
	Schedule cron.Schedule
	Kind     string
	To       string
	Robot    string
	Top      int
	Text     *Template
}

// CampaignMessages are the replies to check-in attempts.
type CampaignMessages struct {
	CheckedIn, Already, OutsideWindow, Closed, NotInAudience, MadeUp, NoMakeup *Template
	// StreakBonus, LevelUp and CertificateLink are lines added to a
	// successful check-in's reply; never nil (the defaults below apply when
	// the scenario leaves them out).
	StreakBonus, LevelUp, CertificateLink *Template
}

// Defaults of the check-in reply's extra lines (messages.streak_bonus,
// level_up, certificate_link); docs/scenarios.md documents them.
const (
	// DefaultStreakBonusText: {{.Streak}} is the bonus's days, {{.Bonus}} its points.
	DefaultStreakBonusText = "🔥 连续打卡 {{.Streak}} 天，奖励 {{.Bonus}} 积分！"
	// DefaultLevelUpText: {{.Level}} is the new level, {{.LevelMin}} its min_points.
	DefaultLevelUpText = "🎉 积分达到 {{.LevelMin}}，升级为「{{.Level}}」会员！"
	// DefaultCertificateLinkText follows a certificate milestone whose text
	// has no {{.Link}}: {{.Certificate}} is the certificate's title.
	DefaultCertificateLinkText = "📜 {{.Certificate}}：{{.Link}}"
)

// Certificate is the shareable certificate (证书) a milestone may award.
type Certificate struct {
	Title string
	Text  *Template
}

// CouponPool is a pool of coupon codes (issuing lives with issue 6).
type CouponPool struct {
	Pos
	Name        string
	Description string
	ValueFen    int64
	MinSpendFen int64
	// ValidDays (from issue) or ValidFrom/ValidUntil (fixed dates); all zero: no expiry.
	ValidDays             int
	ValidFrom, ValidUntil Date
	PerMember             int
	StockAlert            int
	Fallback              *Template
	Generate              *Generate
	Audience              Audience
	AlertStaff            []string
}

// Generate describes generated codes: Prefix + Length random characters.
type Generate struct {
	Prefix string
	Length int
	Count  int
}

// Level is a member level reached at MinPoints.
type Level struct {
	Pos
	Name      string
	MinPoints int64
	Tag       string
	// Multiplier scales points for spend (points.per_yuan) at this level (1 when unset).
	Multiplier float64
	// Coupon and Gift are given once on reaching the level; MonthlyCoupon
	// on the 1st of every month and BirthdayCoupon on the member's birthday
	// while at it (nil: none).
	Coupon, MonthlyCoupon, BirthdayCoupon *CouponPool
	Gift                                  *RedeemItem
	// Announce tells the member she reached the level (nil: the default text).
	Announce *Template
}

// AI is the reply persona and knowledge (runtime in issue 7).
type AI struct {
	Persona       string
	FAQ           []FAQ
	BannedWords   []string
	HandoffWords  []string
	HandoffTag    string
	HandoffStaff  []string
	HandoffReply  *Template
	Fallback      *Template
	MaxReplyChars int
	MemoryTurns   int
	// NegativeWords hand an upset member to a human, like HandoffWords.
	NegativeWords []string
	// HandoffAfterFailures hands a member over after this many replies in a
	// row the model failed on (0: never).
	HandoffAfterFailures int
	// Refusal answers prompt-injection attempts (nil: the built-in text).
	Refusal *Template
	// MemoryTokens is the token budget of the remembered turns in a prompt.
	MemoryTokens int
	// RateLimit caps model replies per member; GlobalPerMinute caps model
	// calls for everyone (0: no cap).
	RateLimit       RateLimit
	GlobalPerMinute int
	// NotifyUnanswered hands a member's question to staff when the reply
	// was the fallback (nothing in the knowledge answered it); default true,
	// since the fallback usually promises a colleague will follow up.
	NotifyUnanswered bool
	// Knowledge are the files the extra FAQ entries came from.
	Knowledge []string
	// knowledgeSrc are their contents, part of the scenario's Version so a
	// reload sees an edited knowledge file.
	knowledgeSrc []sourceFile
}

// FAQ is one question and answer.
type FAQ struct {
	Q, A     string
	Keywords []string
	// Source is file:line of the entry.
	Source string
}

// ChannelByState returns the channel for a "contact me" state, or nil.
func (sc *Scenario) ChannelByState(state string) *Channel {
	if state == "" {
		return nil
	}
	return sc.channelsByState[state]
}

// ChannelByName returns the channel with that display name, or nil.
func (sc *Scenario) ChannelByName(name string) *Channel { return sc.channelsByName[name] }

// WelcomeFor returns the script for a channel (nil channel: unknown state):
// the channel's script, else the default; nil if neither exists.
func (sc *Scenario) WelcomeFor(ch *Channel) *Script {
	if ch != nil && ch.Welcome != nil {
		return ch.Welcome
	}
	return sc.DefaultWelcome
}

// Script returns a named welcome script ("default" is welcome.default), or nil.
func (sc *Scenario) Script(name string) *Script {
	if name == "default" {
		return sc.DefaultWelcome
	}
	return sc.scripts[name]
}

// Coupon returns a coupon pool by name, or nil.
func (sc *Scenario) Coupon(name string) *CouponPool { return sc.coupons[name] }

// Campaign returns a campaign by name, or nil.
func (sc *Scenario) Campaign(name string) *Campaign { return sc.campaigns[name] }

// KeywordRule returns a keyword rule by name, or nil.
func (sc *Scenario) KeywordRule(name string) *KeywordRule { return sc.keywordRules[name] }

// TagGroupOf returns the corp tag group a tag is declared in ("" if none).
func (sc *Scenario) TagGroupOf(tag string) string { return sc.tagGroupOf[tag] }

// LevelFor returns the highest level whose MinPoints ≤ points, or nil.
func (sc *Scenario) LevelFor(points int64) *Level {
	i := sort.Search(len(sc.Levels), func(i int) bool { return sc.Levels[i].MinPoints > points })
	if i == 0 {
		return nil
	}
	return sc.Levels[i-1]
}

// Level returns a level by name, or nil.
func (sc *Scenario) Level(name string) *Level {
	for _, l := range sc.Levels {
		if l.Name == name {
			return l
		}
	}
	return nil
}
