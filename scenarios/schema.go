package scenarios

// The YAML schema, as written by operators. docs/scenarios.md documents every
// key; the compiled, read-only form the engine uses is in scenario.go.
//
// Every struct embeds Pos so problems found after decoding name file:line.

// document is one scenario file. A directory's files merge: list sections
// append in file-name order, singletons (brand, funnel, ai, the defaults of
// welcome / group_welcome, keywords.rate_limit) may appear in one file only.
type document struct {
	Pos
	Brand        *brandSpec          `yaml:"brand"`
	Tags         map[string][]string `yaml:"tags"`
	Funnel       *funnelSpec         `yaml:"funnel"`
	Channels     []*channelSpec      `yaml:"channels"`
	Welcome      *welcomeSpec        `yaml:"welcome"`
	GroupWelcome *groupWelcomeSpec   `yaml:"group_welcome"`
	Keywords     *keywordsSpec       `yaml:"keywords"`
	TagRules     []*tagRuleSpec      `yaml:"tag_rules"`
	Campaigns    []*campaignSpec     `yaml:"campaigns"`
	Coupons      []*couponSpec       `yaml:"coupons"`
	Levels       []*levelSpec        `yaml:"levels"`
	Points       *pointsSpec         `yaml:"points"`
	Redeem       *redeemSpec         `yaml:"redeem"`
	AI           *aiSpec             `yaml:"ai"`
	Referral     *referralSpec       `yaml:"referral"`
	Kf           *kfSpec             `yaml:"kf"`
	Limits       *limitsSpec         `yaml:"limits"`
	Segments     []*segmentSpec      `yaml:"segments"`
	ProfileForm  *profileFormSpec    `yaml:"profile_form"`
	Silent       *silentSpec         `yaml:"silent"`
	LossAlerts   *lossAlertsSpec     `yaml:"loss_alerts"`
	Broadcasts   []*broadcastSpec    `yaml:"broadcasts"`
	SOPs         []*sopSpec          `yaml:"sops"`
}

// limitsSpec holds WeCom's quotas where they differ per corp.
type limitsSpec struct {
	Pos
	// MassSendPerMonth is add_msg_template's per-customer quota per natural
	// month (the API doc says 4; some help pages say 1 per day).
	MassSendPerMonth int `yaml:"mass_send_per_month"`
	// MassSendWindow, MassSendRemind and MassSendConfirmWithin: see Limits.
	MassSendWindow        Duration   `yaml:"mass_send_window"`
	MassSendRemind        []Duration `yaml:"mass_send_remind"`
	MassSendConfirmWithin Duration   `yaml:"mass_send_confirm_within"`
	// ContactPerDay and ContactPerWeek cap the proactive messages (follow-
	// ups, reminders, coupon deliveries, broadcasts, SOP steps) one member
	// gets per day and in any 7 days (0: no cap).
	ContactPerDay  int `yaml:"contact_per_day"`
	ContactPerWeek int `yaml:"contact_per_week"`
}

// kfSpec is the 微信客服 section.
type kfSpec struct {
	Pos
	// Greeting is sent once when a customer opens the chat (enter_session
	// with a welcome_code, kf/send_msg_on_event; WeCom allows it when the
	// customer got no greeting and wrote nothing in the last 48 h).
	Greeting string `yaml:"greeting"`
}

type brandSpec struct {
	Pos
	Name string `yaml:"name"`
	// DefaultMemberName stands in for .Name when WeCom didn't tell us the member's name.
	DefaultMemberName string `yaml:"default_member_name"`
	// Zone is the brand's time zone (default Asia/Shanghai), the default for campaigns.
	Zone string `yaml:"zone"`
}

type stageSpec struct {
	Pos
	Name string `yaml:"name"`
	Tag  string `yaml:"tag"`
	// Coupon is a pool issued when a member reaches the stage.
	Coupon string `yaml:"coupon"`
}

type stagesSpec struct {
	Pos
	Aware    *stageSpec `yaml:"aware"`
	Interest *stageSpec `yaml:"interest"`
	Purchase *stageSpec `yaml:"purchase"`
	Loyal    *stageSpec `yaml:"loyal"`
}

type funnelSpec struct {
	Pos
	TagGroup       string      `yaml:"tag_group"`
	Stages         *stagesSpec `yaml:"stages"`
	InterestOn     []string    `yaml:"interest_on"`
	LoyalSpendYuan *Yuan       `yaml:"loyal_spend_yuan"`
	LoyalOrders    int         `yaml:"loyal_orders"`
	LostTag        string      `yaml:"lost_tag"`
	AllowBackward  bool        `yaml:"allow_backward"`
}

type channelSpec struct {
	Pos
	State      string   `yaml:"state"`
	Name       string   `yaml:"name"`
	Tags       []string `yaml:"tags"`
	Welcome    string   `yaml:"welcome"`
	Staff      []string `yaml:"staff"`
	SkipVerify *bool    `yaml:"skip_verify"`
	// Group makes the channel a group QR code (加入群聊, add_join_way).
	Group *groupJoinSpec `yaml:"group"`
}

type groupJoinSpec struct {
	Pos
	ChatIDs      []string `yaml:"chat_ids"`
	AutoCreate   bool     `yaml:"auto_create"`
	RoomBaseName string   `yaml:"room_base_name"`
	RoomBaseID   int      `yaml:"room_base_id"`
}

type welcomeSpec struct {
	Pos
	Default *scriptSpec   `yaml:"default"`
	Scripts []*scriptSpec `yaml:"scripts"`
}

type scriptSpec struct {
	Pos
	Name        string            `yaml:"name"`
	Text        string            `yaml:"text"`
	Attachments []*attachmentSpec `yaml:"attachments"`
	Coupon      string            `yaml:"coupon"`
	FollowUps   []*followUpSpec   `yaml:"follow_ups"`
}

type attachmentSpec struct {
	Pos
	Link        *linkSpec  `yaml:"link"`
	Image       *imageSpec `yaml:"image"`
	MiniProgram *miniSpec  `yaml:"miniprogram"`
	Video       *mediaSpec `yaml:"video"`
	File        *mediaSpec `yaml:"file"`
}

type linkSpec struct {
	Pos
	Title  string `yaml:"title"`
	URL    string `yaml:"url"`
	PicURL string `yaml:"pic_url"`
	Desc   string `yaml:"desc"`
}

type imageSpec struct {
	Pos
	MediaID string `yaml:"media_id"`
	PicURL  string `yaml:"pic_url"`
	// File names an image beside the scenario file; URL one to fetch. The
	// media library uploads it (media/uploadimg, permanent) and keeps it.
	File string `yaml:"file"`
	URL  string `yaml:"url"`
}

type miniSpec struct {
	Pos
	Title      string `yaml:"title"`
	AppID      string `yaml:"appid"`
	Page       string `yaml:"page"`
	PicMediaID string `yaml:"pic_media_id"`
	// PicFile names the cover image beside the scenario file.
	PicFile string `yaml:"pic_file"`
}

type mediaSpec struct {
	Pos
	MediaID string `yaml:"media_id"`
	File    string `yaml:"file"`
	URL     string `yaml:"url"`
}

type followUpSpec struct {
	Pos
	After       Duration          `yaml:"after"`
	Via         string            `yaml:"via"`
	OpenKfID    string            `yaml:"open_kfid"`
	Text        string            `yaml:"text"`
	Attachments []*attachmentSpec `yaml:"attachments"`
	// Otherwise (via: kf only): mass_send sends it as a mass-send task
	// when 微信客服 may not reach the member then.
	Otherwise string `yaml:"otherwise"`
}

type groupWelcomeSpec struct {
	Pos
	Default   *groupTemplateSpec   `yaml:"default"`
	Templates []*groupTemplateSpec `yaml:"templates"`
}

type groupTemplateSpec struct {
	Pos
	Name        string            `yaml:"name"`
	TemplateID  string            `yaml:"template_id"`
	Notify      *bool             `yaml:"notify"`
	Text        string            `yaml:"text"`
	Attachments []*attachmentSpec `yaml:"attachments"`
}

type keywordsSpec struct {
	Pos
	RateLimit *rateLimitSpec     `yaml:"rate_limit"`
	Rules     []*keywordRuleSpec `yaml:"rules"`
}

type rateLimitSpec struct {
	Pos
	Max int      `yaml:"max"`
	Per Duration `yaml:"per"`
}

type keywordRuleSpec struct {
	Pos
	Name     string      `yaml:"name"`
	Keywords []string    `yaml:"keywords"`
	Regex    string      `yaml:"regex"`
	On       []string    `yaml:"on"`
	Reply    string      `yaml:"reply"`
	Tags     []string    `yaml:"tags"`
	Signal   string      `yaml:"signal"`
	Notify   *notifySpec `yaml:"notify"`
	// Coupon is a pool whose code the reply carries (kf rules only).
	Coupon string `yaml:"coupon"`
}

type notifySpec struct {
	Pos
	Staff []string `yaml:"staff"`
	Text  string   `yaml:"text"`
}

type tagRuleSpec struct {
	Pos
	Name   string       `yaml:"name"`
	When   *tagRuleWhen `yaml:"when"`
	Add    []string     `yaml:"add"`
	Remove []string     `yaml:"remove"`
}

type tagRuleWhen struct {
	Pos
	Keyword  string `yaml:"keyword"`
	Channel  string `yaml:"channel"`
	Group    string `yaml:"group"`
	CheckIns int    `yaml:"check_ins"`
	Level    string `yaml:"level"`
	Stage    string `yaml:"stage"`
}

type campaignSpec struct {
	Pos
	Name        string             `yaml:"name"`
	Audience    *audienceSpec      `yaml:"audience"`
	Start       Date               `yaml:"start"`
	End         Date               `yaml:"end"`
	Days        int                `yaml:"days"`
	Zone        string             `yaml:"zone"`
	Windows     []Window           `yaml:"windows"`
	Keywords    []string           `yaml:"keywords"`
	Makeup      *makeupSpec        `yaml:"makeup"`
	Points      int                `yaml:"points"`
	StreakBonus []*streakBonusSpec `yaml:"streak_bonus"`
	Milestones  []*milestoneSpec   `yaml:"milestones"`
	Reminders   []*reminderSpec    `yaml:"reminders"`
	Messages    *campaignMessages  `yaml:"messages"`
	Certificate *certificateSpec   `yaml:"certificate"`
}

type audienceSpec struct {
	Pos
	Groups   []string `yaml:"groups"`
	Tags     []string `yaml:"tags"`
	Channels []string `yaml:"channels"`
	Stages   []string `yaml:"stages"`
	// Levels restrict to members at these levels (会员等级).
	Levels []string `yaml:"levels"`
	// Segment names a segment (segments) the member must be in too.
	Segment string `yaml:"segment"`
}

type makeupSpec struct {
	Pos
	Keywords   []string `yaml:"keywords"`
	Max        int      `yaml:"max"`
	WithinDays int      `yaml:"within_days"`
	CostPoints int      `yaml:"cost_points"`
}

type streakBonusSpec struct {
	Pos
	Days   int `yaml:"days"`
	Points int `yaml:"points"`
}

type milestoneSpec struct {
	Pos
	Day         int    `yaml:"day"`
	Points      int    `yaml:"points"`
	Coupon      string `yaml:"coupon"`
	Certificate bool   `yaml:"certificate"`
	Tag         string `yaml:"tag"`
	Stage       string `yaml:"stage"`
	Text        string `yaml:"text"`
}

type reminderSpec struct {
	Pos
	Cron  string `yaml:"cron"`
	Kind  string `yaml:"kind"`
	To    string `yaml:"to"`
	Robot string `yaml:"robot"`
	Top   int    `yaml:"top"`
	Text  string `yaml:"text"`
}

type campaignMessages struct {
	Pos
	CheckedIn     string `yaml:"checked_in"`
	Already       string `yaml:"already"`
	OutsideWindow string `yaml:"outside_window"`
	Closed        string `yaml:"closed"`
	NotInAudience string `yaml:"not_in_audience"`
	MadeUp        string `yaml:"made_up"`
	NoMakeup      string `yaml:"no_makeup"`
	// Lines added to a successful check-in's reply (defaults in scenario.go).
	StreakBonus     string `yaml:"streak_bonus"`
	LevelUp         string `yaml:"level_up"`
	CertificateLink string `yaml:"certificate_link"`
}

type certificateSpec struct {
	Pos
	Title string `yaml:"title"`
	Text  string `yaml:"text"`
}

type couponSpec struct {
	Pos
	Name         string        `yaml:"name"`
	Description  string        `yaml:"description"`
	ValueYuan    Yuan          `yaml:"value_yuan"`
	MinSpendYuan Yuan          `yaml:"min_spend_yuan"`
	ValidDays    int           `yaml:"valid_days"`
	ValidFrom    Date          `yaml:"valid_from"`
	ValidUntil   Date          `yaml:"valid_until"`
	PerMember    *int          `yaml:"per_member"`
	StockAlert   int           `yaml:"stock_alert"`
	Fallback     string        `yaml:"fallback"`
	Generate     *generateSpec `yaml:"generate"`
	Audience     *audienceSpec `yaml:"audience"`
	// AlertStaff get a message/send when stock falls to stock_alert.
	AlertStaff []string `yaml:"alert_staff"`
}

type generateSpec struct {
	Pos
	Prefix string `yaml:"prefix"`
	Length int    `yaml:"length"`
	Count  int    `yaml:"count"`
}

type levelSpec struct {
	Pos
	Name      string `yaml:"name"`
	MinPoints int    `yaml:"min_points"`
	Tag       string `yaml:"tag"`
	// Level rights (economy.go): the points multiplier on spend, a coupon
	// and/or a catalogue gift on reaching the level, a coupon on the 1st of
	// every month and on the member's birthday, and the announcement.
	Multiplier     *float64 `yaml:"multiplier"`
	Coupon         string   `yaml:"coupon"`
	Gift           string   `yaml:"gift"`
	MonthlyCoupon  string   `yaml:"monthly_coupon"`
	BirthdayCoupon string   `yaml:"birthday_coupon"`
	Announce       string   `yaml:"announce"`
}

type aiSpec struct {
	Pos
	Persona       string     `yaml:"persona"`
	FAQ           []*faqSpec `yaml:"faq"`
	BannedWords   []string   `yaml:"banned_words"`
	HandoffWords  []string   `yaml:"handoff_words"`
	HandoffTag    string     `yaml:"handoff_tag"`
	HandoffStaff  []string   `yaml:"handoff_staff"`
	HandoffReply  string     `yaml:"handoff_reply"`
	Fallback      string     `yaml:"fallback"`
	MaxReplyChars int        `yaml:"max_reply_chars"`
	MemoryTurns   int        `yaml:"memory_turns"`
	// Issue 7 runtime: knowledge files, sentiment hand-off, limits.
	Knowledge            []string       `yaml:"knowledge"`
	NegativeWords        []string       `yaml:"negative_words"`
	HandoffAfterFailures *int           `yaml:"handoff_after_failures"`
	Refusal              string         `yaml:"refusal"`
	MemoryTokens         int            `yaml:"memory_tokens"`
	RateLimit            *rateLimitSpec `yaml:"rate_limit"`
	GlobalPerMinute      int            `yaml:"global_per_minute"`
	NotifyUnanswered     *bool          `yaml:"notify_unanswered"`
}

type faqSpec struct {
	Pos
	Q        string   `yaml:"q"`
	A        string   `yaml:"a"`
	Keywords []string `yaml:"keywords"`
}

// referralSpec is the invite (fission, 老带新) programme: each member's
// personal "contact me" code, credit for invitees, rewards at thresholds.
type referralSpec struct {
	Pos
	// Keywords in 微信客服 that send the member their invite code.
	Keywords []string `yaml:"keywords"`
	// Channel is the channel name invitees are attributed to; Tags tag them.
	Channel string   `yaml:"channel"`
	Tags    []string `yaml:"tags"`
	// Staff are put on invite codes of members who follow nobody.
	Staff []string `yaml:"staff"`
	// Hold is how long an invitee must stay before the invite counts.
	Hold    Duration              `yaml:"hold"`
	Rewards []*referralRewardSpec `yaml:"rewards"`
	// Messages to the referrer.
	CodeReady string `yaml:"code_ready"`
	Pending   string `yaml:"pending"`
	// Poster is the 任务宝 poster: her code on a share image.
	Poster *posterSpec `yaml:"poster"`
}

type referralRewardSpec struct {
	Pos
	Invites int    `yaml:"invites"`
	Points  int    `yaml:"points"`
	Coupon  string `yaml:"coupon"`
	Tag     string `yaml:"tag"`
	Text    string `yaml:"text"`
}
