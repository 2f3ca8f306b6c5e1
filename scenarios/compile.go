package scenarios

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/robfig/cron/v3"

	"github.com/wecombot/wecombot/bot"
)

// Limits from WeCom's API.
const (
	// MaxStateLen is the longest "contact me" state (add_contact_way: 30 characters).
	MaxStateLen = 30
	// MaxWelcomeAttachments is send_welcome_msg's attachment limit.
	MaxWelcomeAttachments = 9
	// DefaultLoyalSpendYuan is the Loyal spend threshold when funnel.loyal_spend_yuan is unset.
	DefaultLoyalSpendYuan = 2000
	// DefaultZone is the zone used when none is given.
	DefaultZone = "Asia/Shanghai"
)

// DefaultRateLimit applies when keywords.rate_limit is unset.
var DefaultRateLimit = RateLimit{Max: 3, Per: 10 * time.Minute}

var codePrefix = regexp.MustCompile(`^[A-Za-z0-9_-]*$`)

// cronParser accepts standard 5-field specs and descriptors (@daily).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// merged is the union of a source's files.
type merged struct {
	files          []*document
	brand          *brandSpec
	tags           []tagGroupSrc
	funnel         *funnelSpec
	channels       []*channelSpec
	welcomeDefault *scriptSpec
	scripts        []*scriptSpec
	groupDefault   *groupTemplateSpec
	groupTemplates []*groupTemplateSpec
	rateLimit      *rateLimitSpec
	keywordRules   []*keywordRuleSpec
	tagRules       []*tagRuleSpec
	campaigns      []*campaignSpec
	coupons        []*couponSpec
	levels         []*levelSpec
	ai             *aiSpec
	referral       *referralSpec
	kf             *kfSpec
	limits         *limitsSpec
	segments       []*segmentSpec
	profileForm    *profileFormSpec
	points         *pointsSpec
	redeem         *redeemSpec
	silent         *silentSpec
	lossAlerts     *lossAlertsSpec
	broadcasts     []*broadcastSpec
	sops           []*sopSpec
}

type tagGroupSrc struct {
	name string
	tags []string
	doc  Pos
}

type positioned interface{ position() Pos }

func (p Pos) position() Pos { return p }

// setOnce stores v in *dst unless another file already set it.
func setOnce[T any, PT interface {
	*T
	positioned
}](ps *problems, dst *PT, v PT) {
	if v == nil {
		return
	}
	if *dst != nil {
		first := (*dst).position()
		p := v.position()
		ps.add(p.File, p.Line, p.Path, "already defined at %s:%d; it may appear in one file only", first.File, first.Line)
		return
	}
	*dst = v
}

func merge(docs []*document, ps *problems) *merged {
	m := &merged{files: docs}
	tagSeen := map[string]Pos{}
	for _, d := range docs {
		setOnce(ps, &m.brand, d.Brand)
		setOnce(ps, &m.funnel, d.Funnel)
		setOnce(ps, &m.ai, d.AI)
		setOnce(ps, &m.referral, d.Referral)
		setOnce(ps, &m.kf, d.Kf)
		setOnce(ps, &m.limits, d.Limits)
		setOnce(ps, &m.profileForm, d.ProfileForm)
		setOnce(ps, &m.points, d.Points)
		setOnce(ps, &m.redeem, d.Redeem)
		setOnce(ps, &m.silent, d.Silent)
		setOnce(ps, &m.lossAlerts, d.LossAlerts)
		names := make([]string, 0, len(d.Tags))
		for name := range d.Tags {
			names = append(names, name)
		}
		sort.Slice(names, func(i, j int) bool {
			return d.LineOf("tags."+names[i]) < d.LineOf("tags."+names[j])
		})
		for _, name := range names {
			if first, dup := tagSeen[name]; dup {
				ps.at(d.Pos, "tags."+name, "tag group %q is already declared at %s", name, first.Where("tags."+name))
				continue
			}
			tagSeen[name] = d.Pos
			m.tags = append(m.tags, tagGroupSrc{name: name, tags: d.Tags[name], doc: d.Pos})
		}
		m.channels = append(m.channels, d.Channels...)
		if w := d.Welcome; w != nil {
			setOnce(ps, &m.welcomeDefault, w.Default)
			m.scripts = append(m.scripts, w.Scripts...)
		}
		if g := d.GroupWelcome; g != nil {
			setOnce(ps, &m.groupDefault, g.Default)
			m.groupTemplates = append(m.groupTemplates, g.Templates...)
		}
		if k := d.Keywords; k != nil {
			setOnce(ps, &m.rateLimit, k.RateLimit)
			m.keywordRules = append(m.keywordRules, k.Rules...)
		}
		m.tagRules = append(m.tagRules, d.TagRules...)
		m.campaigns = append(m.campaigns, d.Campaigns...)
		m.coupons = append(m.coupons, d.Coupons...)
		m.levels = append(m.levels, d.Levels...)
		m.segments = append(m.segments, d.Segments...)
		m.broadcasts = append(m.broadcasts, d.Broadcasts...)
		m.sops = append(m.sops, d.SOPs...)
	}
	return m
}

type compiler struct {
	ps   *problems
	sc   *Scenario
	tags map[string]string // tag → group
	// base, when set, is the directory files named by the scenario resolve in.
	base string
	// afterSegments resolve references to segments once they are compiled.
	afterSegments []func()
}

// fits warns when a text is longer than its surface allows: it will be cut
// at a sentence end (bot.Clip) when sent.
func (c *compiler) fits(p Pos, rel, text string, max int, surface string) {
	if len(text) > max {
		c.ps.warn(p, rel, "%d bytes; WeCom allows %d in %s: it will be cut at a sentence end with …", len(text), max, surface)
	}
}

// beside is the scenario file's name for resolving the files it names.
func (c *compiler) beside(scenarioFile string) string {
	switch {
	case c.base == "":
		return scenarioFile
	case strings.HasPrefix(c.base, "embedded:"):
		return c.base + "/" + path.Base(scenarioFile)
	}
	return filepath.Join(c.base, filepath.Base(scenarioFile))
}

// compileIn validates the merged source and builds the Scenario, with media
// files resolved against base. Every problem is collected; the Scenario is
// only returned when there are none.
func compileIn(m *merged, ps *problems, base string) *Scenario {
	c := &compiler{ps: ps, base: base, sc: &Scenario{
		channelsByState: map[string]*Channel{},
		channelsByName:  map[string]*Channel{},
		scripts:         map[string]*Script{},
		coupons:         map[string]*CouponPool{},
		campaigns:       map[string]*Campaign{},
		keywordRules:    map[string]*KeywordRule{},
		tagGroupOf:      map[string]string{},
		segments:        map[string]*Segment{},
	}, tags: map[string]string{}}
	c.brand(m)
	c.tagCatalog(m)
	c.levels(m.levels)
	c.funnel(m)
	c.coupons(m.coupons)
	c.scripts(m)
	c.channels(m.channels)
	c.groupWelcome(m)
	c.keywords(m)
	c.tagRules(m.tagRules)
	c.campaigns(m.campaigns)
	c.ai(m.ai)
	c.segments(m.segments)
	c.profileForm(m.profileForm)
	c.silent(m)
	c.broadcasts(m.broadcasts)
	c.sops(m.sops)
	c.couponHooks(m)
	c.economy(m)
	c.danglingTriggers()
	return c.sc
}

func (c *compiler) brand(m *merged) {
	c.sc.Brand.Zone = mustZone(DefaultZone)
	b := m.brand
	if b == nil {
		p := Pos{Line: 1}
		if len(m.files) > 0 {
			p = m.files[0].Pos
		}
		c.ps.add(p.File, p.Line, "brand.name", "required: name the brand (品牌名) in a brand section")
		return
	}
	if strings.TrimSpace(b.Name) == "" {
		c.ps.at(b.Pos, "name", "required: the brand's name (品牌名)")
	}
	c.sc.Brand.Name = b.Name
	c.sc.Brand.DefaultMemberName = b.DefaultMemberName
	if b.Zone != "" {
		if loc, err := time.LoadLocation(b.Zone); err != nil {
			c.ps.at(b.Pos, "zone", "unknown time zone %q (use a name such as Asia/Shanghai)", b.Zone)
		} else {
			c.sc.Brand.Zone = loc
		}
	}
}

func (c *compiler) tagCatalog(m *merged) {
	first := map[string]string{}
	for _, g := range m.tags {
		rel := "tags." + g.name
		if strings.TrimSpace(g.name) == "" {
			c.ps.at(g.doc, rel, "a tag group (标签组) needs a name")
		}
		if len(g.tags) == 0 {
			c.ps.at(g.doc, rel, "tag group %q lists no tags", g.name)
		}
		for i, t := range g.tags {
			trel := fmt.Sprintf("%s[%d]", rel, i)
			if strings.TrimSpace(t) == "" {
				c.ps.at(g.doc, trel, "empty tag name")
				continue
			}
			if utf8.RuneCountInString(t) > 30 {
				c.ps.at(g.doc, trel, "tag %q is longer than 30 characters, WeCom's limit for corp tags", t)
			}
			if other, dup := c.tags[t]; dup {
				c.ps.at(g.doc, trel, "tag %q is declared twice (also at %s, group %q): tags are resolved by name, so names must be unique", t, first[t], other)
				continue
			}
			c.tags[t] = g.name
			first[t] = g.doc.Where(trel)
			c.sc.tagGroupOf[t] = g.name
		}
		c.sc.TagGroups = append(c.sc.TagGroups, TagGroup{Name: g.name, Tags: g.tags})
	}
	sort.Slice(c.sc.TagGroups, func(i, j int) bool { return c.sc.TagGroups[i].Name < c.sc.TagGroups[j].Name })
}

// tag checks a tag reference.
func (c *compiler) tag(p Pos, rel, tag string) {
	if strings.TrimSpace(tag) == "" {
		c.ps.at(p, rel, "empty tag name")
		return
	}
	if _, ok := c.tags[tag]; !ok {
		c.ps.at(p, rel, "tag %q is not declared: add it to a tag group under tags (企业客户标签)", tag)
	}
}

func (c *compiler) tagList(p Pos, rel string, tags []string) []string {
	seen := map[string]bool{}
	for i, t := range tags {
		r := fmt.Sprintf("%s[%d]", rel, i)
		c.tag(p, r, t)
		if seen[t] {
			c.ps.at(p, r, "tag %q is listed twice", t)
		}
		seen[t] = true
	}
	return tags
}

// keywordList drops (and reports) empty keywords, which would match every message.
func (c *compiler) keywordList(p Pos, rel string, keywords []string) []string {
	var out []string
	for i, k := range keywords {
		if strings.TrimSpace(k) == "" {
			c.ps.at(p, fmt.Sprintf("%s[%d]", rel, i), "empty keyword (it would match every message)")
			continue
		}
		out = append(out, k)
	}
	return out
}

func (c *compiler) template(p Pos, rel, src string) *Template {
	t, err := compileTemplate(p.field(rel), p.Where(rel), src)
	if err != nil {
		c.ps.at(p, rel, "%v", err)
		return nil
	}
	return t
}

func (c *compiler) stage(p Pos, rel, s string) bot.Stage {
	if s == "" {
		return bot.StageNone
	}
	st := bot.Stage(s)
	if !st.Valid() {
		c.ps.at(p, rel, "unknown stage %q (want aware, interest, purchase or loyal)", s)
		return bot.StageNone
	}
	return st
}

func (c *compiler) required(p Pos, rel, v, what string) {
	if strings.TrimSpace(v) == "" {
		c.ps.at(p, rel, "required: %s", what)
	}
}

// unique reports a duplicate name; first maps name → where it was first seen.
func (c *compiler) unique(first map[string]string, p Pos, rel, kind, name string) bool {
	if name == "" {
		return true
	}
	if at, dup := first[name]; dup {
		c.ps.at(p, rel, "duplicate %s %q (first at %s)", kind, name, at)
		return false
	}
	first[name] = p.Where(rel)
	return true
}

func (c *compiler) levels(specs []*levelSpec) {
	names := map[string]string{}
	points := map[int]string{}
	for _, l := range specs {
		c.required(l.Pos, "name", l.Name, "the level's name (e.g. 普通)")
		c.unique(names, l.Pos, "name", "level", l.Name)
		if l.MinPoints < 0 {
			c.ps.at(l.Pos, "min_points", "must not be negative")
		}
		if at, dup := points[l.MinPoints]; dup {
			c.ps.at(l.Pos, "min_points", "another level starts at %d points too (%s)", l.MinPoints, at)
		}
		points[l.MinPoints] = l.Where("min_points")
		if l.Tag != "" {
			c.tag(l.Pos, "tag", l.Tag)
		}
		c.sc.Levels = append(c.sc.Levels, &Level{Pos: l.Pos, Name: l.Name, MinPoints: int64(l.MinPoints), Tag: l.Tag})
	}
	sort.SliceStable(c.sc.Levels, func(i, j int) bool { return c.sc.Levels[i].MinPoints < c.sc.Levels[j].MinPoints })
}

var defaultStageNames = map[bot.Stage]string{
	bot.StageAware: "认知", bot.StageInterest: "兴趣", bot.StagePurchase: "购买", bot.StageLoyal: "忠诚",
}

func (c *compiler) funnel(m *merged) {
	f := &c.sc.Funnel
	f.Stages = map[bot.Stage]StageInfo{}
	for s, n := range defaultStageNames {
		f.Stages[s] = StageInfo{Name: n}
	}
	f.InterestOn = map[Signal]bool{SignalJoinGroup: true, SignalCheckIn: true, SignalKfChat: true}
	f.LoyalSpendFen = DefaultLoyalSpendYuan * 100
	spec := m.funnel
	if spec == nil {
		return
	}
	if spec.TagGroup != "" {
		found := false
		for _, g := range m.tags {
			found = found || g.name == spec.TagGroup
		}
		if !found {
			c.ps.at(spec.Pos, "tag_group", "tag group %q is not declared under tags", spec.TagGroup)
		}
		f.TagGroup = spec.TagGroup
	}
	if st := spec.Stages; st != nil {
		tagSeen := map[string]string{}
		for _, s := range []struct {
			stage bot.Stage
			key   string
			spec  *stageSpec
		}{{bot.StageAware, "aware", st.Aware}, {bot.StageInterest, "interest", st.Interest}, {bot.StagePurchase, "purchase", st.Purchase}, {bot.StageLoyal, "loyal", st.Loyal}} {
			if s.spec == nil {
				continue
			}
			info := f.Stages[s.stage]
			if s.spec.Name != "" {
				info.Name = s.spec.Name
			}
			if s.spec.Tag != "" {
				c.tag(s.spec.Pos, "tag", s.spec.Tag)
				if c.unique(tagSeen, s.spec.Pos, "tag", "stage tag", s.spec.Tag) {
					info.Tag = s.spec.Tag
				}
				if f.TagGroup == "" {
					f.TagGroup = c.tags[s.spec.Tag]
				}
			}
			f.Stages[s.stage] = info
		}
	}
	if spec.InterestOn != nil {
		f.InterestOn = map[Signal]bool{}
		for i, s := range spec.InterestOn {
			if !validSignal(s) {
				c.ps.at(spec.Pos, fmt.Sprintf("interest_on[%d]", i), "unknown signal %q (want %s)", s, signalNames())
				continue
			}
			f.InterestOn[Signal(s)] = true
		}
	}
	if spec.LoyalSpendYuan != nil {
		f.LoyalSpendFen = spec.LoyalSpendYuan.Fen()
	}
	if spec.LoyalOrders < 0 {
		c.ps.at(spec.Pos, "loyal_orders", "must not be negative (0 turns the order-count rule off)")
	}
	f.LoyalOrders = spec.LoyalOrders
	if spec.LostTag != "" {
		c.tag(spec.Pos, "lost_tag", spec.LostTag)
		for _, info := range f.Stages {
			if info.Tag == spec.LostTag {
				c.ps.at(spec.Pos, "lost_tag", "tag %q is also a stage tag; use a tag of its own", spec.LostTag)
			}
		}
	}
	f.LostTag = spec.LostTag
	f.AllowBackward = spec.AllowBackward
}

func validSignal(s string) bool {
	for _, v := range validSignals {
		if string(v) == s {
			return true
		}
	}
	return false
}

func signalNames() string {
	names := make([]string, len(validSignals))
	for i, s := range validSignals {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

func (c *compiler) coupons(specs []*couponSpec) {
	names := map[string]string{}
	for _, s := range specs {
		c.required(s.Pos, "name", s.Name, "the coupon pool's name (e.g. 新人券)")
		if !c.unique(names, s.Pos, "name", "coupon pool", s.Name) {
			continue
		}
		pool := &CouponPool{Pos: s.Pos, Name: s.Name, Description: s.Description,
			ValueFen: s.ValueYuan.Fen(), MinSpendFen: s.MinSpendYuan.Fen(), ValidDays: s.ValidDays,
			ValidFrom: s.ValidFrom, ValidUntil: s.ValidUntil, PerMember: 1, StockAlert: s.StockAlert}
		if s.ValidDays < 0 {
			c.ps.at(s.Pos, "valid_days", "must not be negative")
		}
		if s.ValidDays > 0 && (!s.ValidFrom.IsZero() || !s.ValidUntil.IsZero()) {
			c.ps.at(s.Pos, "valid_days", "give either valid_days or valid_from/valid_until, not both")
		}
		if !s.ValidFrom.IsZero() && !s.ValidUntil.IsZero() && s.ValidUntil.In(time.UTC).Before(s.ValidFrom.In(time.UTC)) {
			c.ps.at(s.Pos, "valid_until", "is before valid_from (%s)", s.ValidFrom)
		}
		if s.PerMember != nil {
			if *s.PerMember < 1 {
				c.ps.at(s.Pos, "per_member", "must be at least 1")
			}
			pool.PerMember = *s.PerMember
		}
		if s.StockAlert < 0 {
			c.ps.at(s.Pos, "stock_alert", "must not be negative")
		}
		if s.MinSpendYuan > 0 && s.ValueYuan > s.MinSpendYuan {
			c.ps.at(s.Pos, "value_yuan", "is more than min_spend_yuan (%s)", s.MinSpendYuan)
		}
		pool.Fallback = c.template(s.Pos, "fallback", s.Fallback)
		if g := s.Generate; g != nil {
			if g.Length < 6 || g.Length > 32 {
				c.ps.at(g.Pos, "length", "want 6 to 32 random characters, got %d", g.Length)
			}
			if !codePrefix.MatchString(g.Prefix) {
				c.ps.at(g.Pos, "prefix", "use letters, digits, - and _ only")
			}
			if g.Count < 0 {
				c.ps.at(g.Pos, "count", "must not be negative")
			}
			pool.Generate = &Generate{Prefix: g.Prefix, Length: g.Length, Count: g.Count}
		}
		pool.Audience = c.audience(s.Audience, nil)
		pool.AlertStaff = s.AlertStaff
		c.sc.Coupons = append(c.sc.Coupons, pool)
		c.sc.coupons[s.Name] = pool
	}
}

// audience resolves an audience; channels are checked against channel names
// when known (nil skips that check until channels compile).
func (c *compiler) audience(a *audienceSpec, channels map[string]*Channel) Audience {
	if a == nil {
		return Audience{}
	}
	out := Audience{Groups: a.Groups, Tags: c.tagList(a.Pos, "tags", a.Tags), Channels: a.Channels}
	for i, l := range a.Levels {
		if c.sc.Level(l) == nil {
			c.ps.at(a.Pos, fmt.Sprintf("levels[%d]", i), "unknown level %q (declare it under levels)", l)
			continue
		}
		out.Levels = append(out.Levels, l)
	}
	if a.Segment != "" {
		// Segments compile last (they read channels and levels): resolve then.
		ref := &segmentRef{}
		out.segment = ref
		c.afterSegments = append(c.afterSegments, func() {
			if ref.seg = c.sc.Segment(a.Segment); ref.seg == nil {
				c.ps.at(a.Pos, "segment", "unknown segment %q (declare it under segments)", a.Segment)
			}
		})
	}
	for i, g := range a.Groups {
		if strings.TrimSpace(g) == "" {
			c.ps.at(a.Pos, fmt.Sprintf("groups[%d]", i), "empty customer group chat id")
		}
	}
	if channels != nil {
		for i, ch := range a.Channels {
			if channels[ch] == nil {
				c.ps.at(a.Pos, fmt.Sprintf("channels[%d]", i), "unknown channel %q (use a channel's name)", ch)
			}
		}
	}
	for i, s := range a.Stages {
		if st := c.stage(a.Pos, fmt.Sprintf("stages[%d]", i), s); st != bot.StageNone {
			out.Stages = append(out.Stages, st)
		}
	}
	return out
}

func (c *compiler) couponRef(p Pos, rel, name string) *CouponPool {
	if name == "" {
		return nil
	}
	pool := c.sc.coupons[name]
	if pool == nil {
		c.ps.at(p, rel, "unknown coupon pool %q (declare it under coupons)", name)
	}
	return pool
}

func (c *compiler) scripts(m *merged) {
	if s := m.welcomeDefault; s != nil {
		if s.Name != "" && s.Name != "default" {
			c.ps.at(s.Pos, "name", "welcome.default needs no name (it is called default)")
		}
		c.sc.DefaultWelcome = c.script(s, "default")
	}
	names := map[string]string{}
	for _, s := range m.scripts {
		c.required(s.Pos, "name", s.Name, "the script's name, which channels refer to")
		if s.Name == "default" {
			c.ps.at(s.Pos, "name", "the name default is reserved for welcome.default")
			continue
		}
		if !c.unique(names, s.Pos, "name", "welcome script", s.Name) {
			continue
		}
		script := c.script(s, s.Name)
		c.sc.Scripts = append(c.sc.Scripts, script)
		c.sc.scripts[s.Name] = script
	}
}

func (c *compiler) script(s *scriptSpec, name string) *Script {
	if strings.TrimSpace(s.Text) == "" && len(s.Attachments) == 0 {
		c.ps.at(s.Pos, "text", "required: a welcome needs text or attachments")
	}
	out := &Script{Pos: s.Pos, Name: name, Text: c.template(s.Pos, "text", s.Text),
		Attachments: c.attachments(s.Pos, "attachments", s.Attachments, MaxWelcomeAttachments),
		Coupon:      c.couponRef(s.Pos, "coupon", s.Coupon)}
	if len(s.FollowUps) > 0 {
		// A welcome's follow-ups are its SOP: started by the welcome,
		// stopped when the member is lost (the outbox's follow-up guard).
		out.FollowUps = &SOP{Pos: s.Pos, Name: WelcomeSOPPrefix + name, Welcome: name,
			Trigger: Trigger{Kind: TriggerAdded}, Stop: []Stop{{Kind: StopLost}}}
	}
	for _, f := range s.FollowUps {
		fu := &SOPStep{Pos: f.Pos, After: time.Duration(f.After), Via: f.Via, OpenKfID: f.OpenKfID,
			Text: c.template(f.Pos, "text", f.Text)}
		if !f.has("after") || f.After <= 0 {
			c.ps.at(f.Pos, "after", "required: how long after the welcome to send (e.g. 1d)")
		}
		c.required(f.Pos, "text", f.Text, "the follow-up's text")
		if f.Otherwise != "" && f.Via != ViaKf {
			c.ps.at(f.Pos, "otherwise", "only for via: kf (what to send when 微信客服 may not reach the member)")
		}
		c.stepVia(f.Pos, fu, f.Via, f.Text, f.OpenKfID, f.Attachments, ViaMassSend, ViaKf)
		if fu.Via == ViaKf {
			switch f.Otherwise {
			case "":
			case ViaMassSend:
				fu.Otherwise = ViaMassSend
			default:
				c.ps.at(f.Pos, "otherwise", "unknown %q (want mass_send: a mass-send task from the staff member when 微信客服 may not reach her)", f.Otherwise)
			}
		}
		out.FollowUps.Steps = append(out.FollowUps.Steps, fu)
	}
	return out
}

func (c *compiler) attachments(p Pos, rel string, specs []*attachmentSpec, limit int) []*Attachment {
	if len(specs) > limit {
		c.ps.at(p, rel, "at most %d attachments are allowed here, got %d", limit, len(specs))
	}
	var out []*Attachment
	for _, a := range specs {
		set := 0
		for _, x := range []bool{a.Link != nil, a.Image != nil, a.MiniProgram != nil, a.Video != nil, a.File != nil} {
			if x {
				set++
			}
		}
		if set != 1 {
			c.ps.at(a.Pos, "", "an attachment is exactly one of link, image, miniprogram, video or file")
			continue
		}
		att := &Attachment{Pos: a.Pos}
		switch {
		case a.Link != nil:
			l := a.Link
			c.required(l.Pos, "title", l.Title, "the link's title")
			c.required(l.Pos, "url", l.URL, "the link's url")
			if l.URL != "" && !strings.HasPrefix(l.URL, "https://") && !strings.HasPrefix(l.URL, "http://") && !strings.HasPrefix(l.URL, "{{") {
				c.ps.at(l.Pos, "url", "want an http(s) URL, got %q", l.URL)
			}
			att.static = bot.Attachment{Type: "link", PicURL: l.PicURL}
			att.title = c.template(l.Pos, "title", l.Title)
			att.url = c.template(l.Pos, "url", l.URL)
			att.desc = c.template(l.Pos, "desc", l.Desc)
		case a.Image != nil:
			im := a.Image
			att.static = bot.Attachment{Type: "image", MediaID: im.MediaID, PicURL: im.PicURL}
			att.static.Media = c.media(im.Pos, "image", true, mediaKey{"media_id", im.MediaID, roleID}, mediaKey{"pic_url", im.PicURL, rolePicURL},
				mediaKey{"file", im.File, roleFile}, mediaKey{"url", im.URL, roleURL})
		case a.MiniProgram != nil:
			mp := a.MiniProgram
			c.required(mp.Pos, "title", mp.Title, "the mini-program card's title")
			c.required(mp.Pos, "appid", mp.AppID, "the mini-program's appid (it must be linked to the corp)")
			c.required(mp.Pos, "page", mp.Page, "the mini-program page path")
			att.static = bot.Attachment{Type: "miniprogram", Title: mp.Title, AppID: mp.AppID, Page: mp.Page, MediaID: mp.PicMediaID}
			att.static.Media = c.media(mp.Pos, "image", false, mediaKey{"pic_media_id", mp.PicMediaID, roleID}, mediaKey{"pic_file", mp.PicFile, roleFile})
		case a.Video != nil:
			att.static = bot.Attachment{Type: "video", MediaID: a.Video.MediaID}
			att.static.Media = c.media(a.Video.Pos, "video", false, mediaKey{"media_id", a.Video.MediaID, roleID},
				mediaKey{"file", a.Video.File, roleFile}, mediaKey{"url", a.Video.URL, roleURL})
		case a.File != nil:
			att.static = bot.Attachment{Type: "file", MediaID: a.File.MediaID}
			att.static.Media = c.media(a.File.Pos, "file", false, mediaKey{"media_id", a.File.MediaID, roleID},
				mediaKey{"file", a.File.File, roleFile}, mediaKey{"url", a.File.URL, roleURL})
		}
		out = append(out, att)
	}
	return out
}

func (c *compiler) channels(specs []*channelSpec) {
	states := map[string]string{}
	names := map[string]string{}
	for _, s := range specs {
		ch := &Channel{Pos: s.Pos, State: s.State, Name: s.Name, Staff: s.Staff, SkipVerify: true}
		c.required(s.Pos, "state", s.State, "the \"contact me\" (联系我) state that identifies the channel")
		if n := utf8.RuneCountInString(s.State); n > MaxStateLen {
			c.ps.at(s.Pos, "state", "%q is %d characters; WeCom allows at most %d", s.State, n, MaxStateLen)
		}
		c.required(s.Pos, "name", s.Name, "the channel's display name (e.g. 小红书)")
		okState := c.unique(states, s.Pos, "state", "channel state", s.State)
		okName := c.unique(names, s.Pos, "name", "channel name", s.Name)
		ch.Tags = c.tagList(s.Pos, "tags", s.Tags)
		if s.Welcome != "" {
			ch.Welcome = c.sc.Script(s.Welcome)
			if ch.Welcome == nil {
				c.ps.at(s.Pos, "welcome", "unknown welcome script %q (declare it under welcome.scripts)", s.Welcome)
			}
		}
		for i, id := range s.Staff {
			if strings.TrimSpace(id) == "" {
				c.ps.at(s.Pos, fmt.Sprintf("staff[%d]", i), "empty staff userid")
			}
		}
		if s.SkipVerify != nil {
			ch.SkipVerify = *s.SkipVerify
		}
		if s.Group != nil {
			ch.Group = c.groupJoin(s)
		}
		c.sc.Channels = append(c.sc.Channels, ch)
		if okState && s.State != "" {
			c.sc.channelsByState[s.State] = ch
		}
		if okName && s.Name != "" {
			c.sc.channelsByName[s.Name] = ch
		}
	}
	// Coupon audiences name channels; check them now that channels exist.
	for _, pool := range c.sc.Coupons {
		for i, ch := range pool.Audience.Channels {
			if c.sc.channelsByName[ch] == nil {
				c.ps.at(pool.Pos, fmt.Sprintf("audience.channels[%d]", i), "unknown channel %q (use a channel's name)", ch)
			}
		}
	}
}

// groupJoin compiles a group channel (加入群聊 QR code).
func (c *compiler) groupJoin(s *channelSpec) *GroupJoin {
	g := s.Group
	if s.Welcome != "" {
		c.ps.at(s.Pos, "welcome", "a group channel greets joiners with group_welcome, not a 1:1 welcome script")
	}
	if len(s.Staff) > 0 || s.SkipVerify != nil {
		c.ps.at(s.Pos, "staff", "a group channel leads to groups, not staff: drop staff and skip_verify")
	}
	gj := &GroupJoin{AutoCreate: g.AutoCreate, RoomBaseName: g.RoomBaseName, RoomBaseID: g.RoomBaseID}
	if len(g.ChatIDs) == 0 || len(g.ChatIDs) > MaxJoinWayChats {
		c.ps.at(g.Pos, "chat_ids", "list 1-%d customer group chat ids (wr…); got %d", MaxJoinWayChats, len(g.ChatIDs))
	}
	seen := map[string]bool{}
	for i, id := range g.ChatIDs {
		id = strings.TrimSpace(id)
		switch {
		case id == "":
			c.ps.at(g.Pos, fmt.Sprintf("chat_ids[%d]", i), "empty chat id")
		case seen[id]:
			c.ps.at(g.Pos, fmt.Sprintf("chat_ids[%d]", i), "chat id %q listed twice", id)
		}
		seen[id] = true
		gj.ChatIDs = append(gj.ChatIDs, id)
	}
	if g.AutoCreate {
		c.required(g.Pos, "room_base_name", g.RoomBaseName, "the name new rooms get when the groups are full (e.g. 山茶集福利群)")
		if n := utf8.RuneCountInString(g.RoomBaseName); n > MaxRoomBaseNameLen {
			c.ps.at(g.Pos, "room_base_name", "%d characters; WeCom allows at most %d", n, MaxRoomBaseNameLen)
		}
		if g.RoomBaseID < 0 {
			c.ps.at(g.Pos, "room_base_id", "must be 0 or more")
		}
	} else if g.RoomBaseName != "" || g.RoomBaseID != 0 {
		c.ps.at(g.Pos, "room_base_name", "room_base_name and room_base_id only apply with auto_create: true")
	}
	return gj
}

func (c *compiler) groupWelcome(m *merged) {
	build := func(s *groupTemplateSpec, name string) *GroupTemplate {
		c.required(s.Pos, "text", s.Text, "the group welcome's text (%NICKNAME% is replaced by WeCom with the new member's name)")
		// WeCom notifies the owners when notify is absent; so do we.
		notify := s.Notify == nil || *s.Notify
		c.fits(s.Pos, "text", s.Text, bot.MaxGroupWelcomeText, "a group welcome")
		return &GroupTemplate{Pos: s.Pos, Name: name, TemplateID: s.TemplateID, Notify: notify,
			Text: c.template(s.Pos, "text", s.Text), Attachments: c.attachments(s.Pos, "attachments", s.Attachments, 1)}
	}
	if s := m.groupDefault; s != nil {
		c.sc.GroupWelcomes = append(c.sc.GroupWelcomes, build(s, "default"))
	}
	names := map[string]string{"default": ""}
	for _, s := range m.groupTemplates {
		c.required(s.Pos, "name", s.Name, "the template's name")
		if s.Name == "default" {
			c.ps.at(s.Pos, "name", "the name default is reserved for group_welcome.default")
			continue
		}
		if !c.unique(names, s.Pos, "name", "group welcome template", s.Name) {
			continue
		}
		c.sc.GroupWelcomes = append(c.sc.GroupWelcomes, build(s, s.Name))
	}
}

func (c *compiler) keywords(m *merged) {
	k := &c.sc.Keywords
	k.RateLimit = DefaultRateLimit
	if rl := m.rateLimit; rl != nil {
		if rl.Max < 1 {
			c.ps.at(rl.Pos, "max", "must be at least 1")
		}
		if rl.Per <= 0 {
			c.ps.at(rl.Pos, "per", "required: the window, e.g. 10m")
		}
		k.RateLimit = RateLimit{Max: rl.Max, Per: time.Duration(rl.Per)}
	}
	names := map[string]string{}
	var kf, app []*KeywordRule
	for _, s := range m.keywordRules {
		c.required(s.Pos, "name", s.Name, "the rule's name (tag rules and logs refer to it)")
		if !c.unique(names, s.Pos, "name", "keyword rule", s.Name) {
			continue
		}
		c.fits(s.Pos, "reply", s.Reply, bot.MaxKfText, "a 微信客服 or app message")
		r := &KeywordRule{Pos: s.Pos, Index: len(k.Rules), Name: s.Name, Reply: c.template(s.Pos, "reply", s.Reply),
			Tags: c.tagList(s.Pos, "tags", s.Tags)}
		if len(s.Keywords) == 0 && s.Regex == "" {
			c.ps.at(s.Pos, "keywords", "required: keywords (contained in the message) or a regex")
		}
		r.Keywords = c.keywordList(s.Pos, "keywords", s.Keywords)
		if s.Regex != "" {
			re, err := regexp.Compile(s.Regex)
			if err != nil {
				c.ps.at(s.Pos, "regex", "bad regular expression: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			}
			r.Regex = re
		}
		if s.Signal != "" {
			if !validSignal(s.Signal) {
				c.ps.at(s.Pos, "signal", "unknown signal %q (want %s)", s.Signal, signalNames())
			}
			r.Signal = Signal(s.Signal)
		}
		if strings.TrimSpace(s.Reply) == "" && len(s.Tags) == 0 && s.Signal == "" && s.Notify == nil && s.Coupon == "" {
			c.ps.at(s.Pos, "reply", "required: the rule does nothing without a reply, tags, signal or notify")
		}
		if n := s.Notify; n != nil {
			c.required(n.Pos, "text", n.Text, "the message to staff")
			r.Notify = &Notify{Staff: n.Staff, Text: c.template(n.Pos, "text", n.Text)}
		}
		r.On = []string{SurfaceKf, SurfaceApp}
		if s.On != nil {
			r.On = nil
			for i, on := range s.On {
				if on != SurfaceKf && on != SurfaceApp {
					c.ps.at(s.Pos, fmt.Sprintf("on[%d]", i), "unknown %q (want kf or app)", on)
					continue
				}
				r.On = append(r.On, on)
			}
		}
		for _, on := range r.On {
			if on == SurfaceKf {
				kf = append(kf, r)
			} else {
				app = append(app, r)
			}
		}
		k.Rules = append(k.Rules, r)
		c.sc.keywordRules[r.Name] = r
	}
	// Matchers index into their own rule slice; keep priority order.
	k.kf = newMatcher(kf)
	k.app = newMatcher(app)
}

func (c *compiler) tagRules(specs []*tagRuleSpec) {
	names := map[string]string{}
	for _, s := range specs {
		c.required(s.Pos, "name", s.Name, "the rule's name")
		c.unique(names, s.Pos, "name", "tag rule", s.Name)
		r := &TagRule{Pos: s.Pos, Name: s.Name, Add: c.tagList(s.Pos, "add", s.Add), Remove: c.tagList(s.Pos, "remove", s.Remove)}
		if len(s.Add) == 0 && len(s.Remove) == 0 {
			c.ps.at(s.Pos, "add", "required: tags to add or remove")
		}
		w := s.When
		if w == nil || (w.Keyword == "" && w.Channel == "" && w.Group == "" && w.CheckIns == 0 && w.Level == "" && w.Stage == "") {
			c.ps.at(s.Pos, "when", "required: at least one condition (keyword, channel, group, check_ins, level or stage)")
			c.sc.TagRules = append(c.sc.TagRules, r)
			continue
		}
		if w.Keyword != "" {
			r.Keyword = c.sc.keywordRules[w.Keyword]
			if r.Keyword == nil {
				c.ps.at(w.Pos, "keyword", "unknown keyword rule %q (use a rule's name from keywords.rules)", w.Keyword)
			}
		}
		if w.Channel != "" && c.sc.channelsByName[w.Channel] == nil {
			c.ps.at(w.Pos, "channel", "unknown channel %q (use a channel's name)", w.Channel)
		}
		r.Channel, r.Group = w.Channel, w.Group
		if w.CheckIns < 0 {
			c.ps.at(w.Pos, "check_ins", "must not be negative")
		}
		r.CheckIns = w.CheckIns
		if w.Level != "" && c.sc.Level(w.Level) == nil {
			c.ps.at(w.Pos, "level", "unknown level %q (declare it under levels)", w.Level)
		}
		r.Level = w.Level
		r.Stage = c.stage(w.Pos, "stage", w.Stage)
		c.sc.TagRules = append(c.sc.TagRules, r)
	}
}

func (c *compiler) campaigns(specs []*campaignSpec) {
	names := map[string]string{}
	type kwUse struct {
		camp *Campaign
		rel  string
	}
	keywordUse := map[string][]kwUse{}
	for _, s := range specs {
		c.required(s.Pos, "name", s.Name, "the campaign's name (e.g. 早安打卡)")
		if strings.Contains(s.Name, "|") {
			c.ps.at(s.Pos, "name", "must not contain |")
		}
		if !c.unique(names, s.Pos, "name", "campaign", s.Name) {
			continue
		}
		camp := &Campaign{Pos: s.Pos, Name: s.Name, Zone: c.sc.Brand.Zone, Windows: s.Windows, Points: s.Points,
			Audience: c.audience(s.Audience, c.sc.channelsByName)}
		if s.Zone != "" {
			if loc, err := time.LoadLocation(s.Zone); err != nil {
				c.ps.at(s.Pos, "zone", "unknown time zone %q (use a name such as Asia/Shanghai)", s.Zone)
			} else {
				camp.Zone = loc
			}
		}
		c.campaignDates(s, camp)
		if len(s.Windows) == 0 {
			c.ps.at(s.Pos, "windows", "required: the daily check-in window(s), e.g. [\"06:00-09:00\"]")
		}
		for i := range s.Windows {
			for j := 0; j < i; j++ {
				if s.Windows[i].Overlaps(s.Windows[j]) {
					c.ps.at(s.Pos, fmt.Sprintf("windows[%d]", i), "window %s overlaps %s (windows[%d])", s.Windows[i], s.Windows[j], j)
				}
			}
		}
		if len(s.Keywords) == 0 {
			c.ps.at(s.Pos, "keywords", "required: the check-in keyword(s), e.g. [打卡]")
		}
		for i, kw := range s.Keywords {
			rel := fmt.Sprintf("keywords[%d]", i)
			if strings.TrimSpace(kw) == "" {
				c.ps.at(s.Pos, rel, "empty keyword")
				continue
			}
			camp.Keywords = append(camp.Keywords, kw)
			keywordUse[kw] = append(keywordUse[kw], kwUse{camp, rel})
		}
		if s.Points < 0 {
			c.ps.at(s.Pos, "points", "must not be negative")
		}
		if mu := s.Makeup; mu != nil {
			if mu.Max < 0 || mu.WithinDays < 0 || mu.CostPoints < 0 {
				c.ps.at(mu.Pos, "", "max, within_days and cost_points must not be negative")
			}
			camp.Makeup = Makeup{Max: mu.Max, WithinDays: mu.WithinDays, CostPoints: mu.CostPoints, Keywords: []string{"补卡"}}
			if len(mu.Keywords) > 0 {
				camp.Makeup.Keywords = nil
			}
			for i, kw := range mu.Keywords {
				if strings.TrimSpace(kw) == "" {
					c.ps.at(mu.Pos, fmt.Sprintf("keywords[%d]", i), "empty keyword")
					continue
				}
				camp.Makeup.Keywords = append(camp.Makeup.Keywords, kw)
			}
		}
		bonusDays := map[int]bool{}
		for _, b := range s.StreakBonus {
			if b.Days < 2 {
				c.ps.at(b.Pos, "days", "a streak bonus needs a streak of at least 2 days")
			}
			if bonusDays[b.Days] {
				c.ps.at(b.Pos, "days", "another streak bonus is for %d days too", b.Days)
			}
			bonusDays[b.Days] = true
			if b.Points <= 0 {
				c.ps.at(b.Pos, "points", "must be positive")
			}
			camp.StreakBonus = append(camp.StreakBonus, StreakBonus{Days: b.Days, Points: b.Points})
		}
		milestoneDays := map[string]string{}
		for _, ms := range s.Milestones {
			if ms.Day < 1 {
				c.ps.at(ms.Pos, "day", "required: the check-in day the milestone is for (1 or more)")
			} else if camp.Days > 0 && ms.Day > camp.Days {
				c.ps.at(ms.Pos, "day", "day %d is after the campaign's last day (%d)", ms.Day, camp.Days)
			}
			c.unique(milestoneDays, ms.Pos, "day", "milestone day", fmt.Sprint(ms.Day))
			if ms.Tag != "" {
				c.tag(ms.Pos, "tag", ms.Tag)
			}
			if ms.Points < 0 {
				c.ps.at(ms.Pos, "points", "must not be negative")
			}
			milestone := &Milestone{Pos: ms.Pos, Day: ms.Day, Points: ms.Points, Coupon: c.couponRef(ms.Pos, "coupon", ms.Coupon),
				Certificate: ms.Certificate, Tag: ms.Tag, Stage: c.stage(ms.Pos, "stage", ms.Stage), Text: c.template(ms.Pos, "text", ms.Text)}
			if ms.Certificate && s.Certificate == nil {
				c.ps.at(ms.Pos, "certificate", "the campaign has no certificate section to award")
			}
			camp.Milestones = append(camp.Milestones, milestone)
		}
		sort.SliceStable(camp.Milestones, func(i, j int) bool { return camp.Milestones[i].Day < camp.Milestones[j].Day })
		for _, r := range s.Reminders {
			camp.Reminders = append(camp.Reminders, c.reminder(r))
		}
		msg := s.Messages
		if msg != nil {
			camp.Messages = CampaignMessages{
				CheckedIn: c.template(msg.Pos, "checked_in", msg.CheckedIn), Already: c.template(msg.Pos, "already", msg.Already),
				OutsideWindow: c.template(msg.Pos, "outside_window", msg.OutsideWindow), Closed: c.template(msg.Pos, "closed", msg.Closed),
				NotInAudience: c.template(msg.Pos, "not_in_audience", msg.NotInAudience), MadeUp: c.template(msg.Pos, "made_up", msg.MadeUp),
				NoMakeup: c.template(msg.Pos, "no_makeup", msg.NoMakeup),
			}
		} else {
			msg = &campaignMessages{Pos: s.Pos}
		}
		orDefault := func(src, def string) string {
			if strings.TrimSpace(src) == "" {
				return def
			}
			return src
		}
		camp.Messages.StreakBonus = c.template(msg.Pos, "streak_bonus", orDefault(msg.StreakBonus, DefaultStreakBonusText))
		camp.Messages.LevelUp = c.template(msg.Pos, "level_up", orDefault(msg.LevelUp, DefaultLevelUpText))
		camp.Messages.CertificateLink = c.template(msg.Pos, "certificate_link", orDefault(msg.CertificateLink, DefaultCertificateLinkText))
		if cert := s.Certificate; cert != nil {
			c.required(cert.Pos, "title", cert.Title, "the certificate's title")
			camp.Certificate = &Certificate{Title: cert.Title, Text: c.template(cert.Pos, "text", cert.Text)}
		}
		c.sc.Campaigns = append(c.sc.Campaigns, camp)
		c.sc.campaigns[camp.Name] = camp
	}
	// Two campaigns sharing a keyword must not be open at the same moment,
	// or a check-in would be ambiguous.
	kws := make([]string, 0, len(keywordUse))
	for kw := range keywordUse {
		kws = append(kws, kw)
	}
	sort.Strings(kws)
	for _, kw := range kws {
		uses := keywordUse[kw]
		for i := 1; i < len(uses); i++ {
			for j := 0; j < i; j++ {
				a, b := uses[i].camp, uses[j].camp
				if a == b {
					c.ps.at(a.Pos, uses[i].rel, "keyword %q is listed twice", kw)
					continue
				}
				if campaignsOverlap(a, b) {
					c.ps.at(a.Pos, uses[i].rel, "keyword %q is also used by campaign %q (%s) and their days and windows overlap, so a check-in would be ambiguous", kw, b.Name, b.Where(uses[j].rel))
				}
			}
		}
	}
}

func (c *compiler) campaignDates(s *campaignSpec, camp *Campaign) {
	switch {
	case s.Days < 0:
		c.ps.at(s.Pos, "days", "must be positive")
	case !s.End.IsZero() && s.Days > 0:
		c.ps.at(s.Pos, "days", "give either end or days, not both")
	case s.Start.IsZero() && !s.End.IsZero():
		c.ps.at(s.Pos, "end", "an end date needs a start date")
	case s.Start.IsZero() && s.Days == 0:
		c.ps.at(s.Pos, "days", "required: start and end dates, start and days, or days alone (rolling, from each member's first check-in)")
	case !s.Start.IsZero() && !s.End.IsZero():
		camp.Start, camp.End = s.Start.In(camp.Zone), s.End.In(camp.Zone)
		if camp.End.Before(camp.Start) {
			c.ps.at(s.Pos, "end", "is before start (%s)", s.Start)
			return
		}
		camp.Days = int(s.End.In(time.UTC).Sub(s.Start.In(time.UTC))/(24*time.Hour)) + 1
	case !s.Start.IsZero():
		if s.Days == 0 {
			c.ps.at(s.Pos, "end", "required: an end date or days")
			return
		}
		camp.Start = s.Start.In(camp.Zone)
		camp.End = camp.Start.AddDate(0, 0, s.Days-1)
		camp.Days = s.Days
	default:
		camp.Days = s.Days
	}
}

func campaignsOverlap(a, b *Campaign) bool {
	if !a.Rolling() && !b.Rolling() {
		// Compare as instants, end of the last day inclusive.
		if !a.Start.Before(b.End.AddDate(0, 0, 1)) || !b.Start.Before(a.End.AddDate(0, 0, 1)) {
			return false
		}
	}
	for _, wa := range a.Windows {
		for _, wb := range b.Windows {
			if wa.Overlaps(wb) {
				return true
			}
		}
	}
	return false
}

func (c *compiler) reminder(s *reminderSpec) *Reminder {
	r := &Reminder{Pos: s.Pos, Spec: s.Cron, Kind: s.Kind, To: s.To, Robot: s.Robot, Top: s.Top, Text: c.template(s.Pos, "text", s.Text)}
	if s.Cron == "" {
		c.ps.at(s.Pos, "cron", "required: when to send, as a cron spec such as \"30 6 * * *\" (minute hour day month weekday)")
	} else if strings.HasPrefix(strings.TrimSpace(s.Cron), "@every") {
		// @every counts from the moment the scheduler starts, so its slots
		// (and the dedupe key of each firing) move with every restart: a
		// restart would send the reminder again.
		c.ps.at(s.Pos, "cron", "%q is not allowed: @every runs relative to when wecombot starts, so every restart would send the reminder again; use wall-clock fields such as \"0 */2 * * *\" (every 2 hours on the hour)", s.Cron)
	} else if sched, err := cronParser.Parse(s.Cron); err != nil {
		c.ps.at(s.Pos, "cron", "bad cron spec %q: %v (want minute hour day month weekday, e.g. \"30 6 * * *\")", s.Cron, err)
	} else {
		r.Schedule = sched
	}
	if strings.HasPrefix(s.Cron, "CRON_TZ=") || strings.HasPrefix(s.Cron, "TZ=") {
		c.ps.at(s.Pos, "cron", "set the campaign's zone instead of a TZ prefix")
	}
	switch s.Kind {
	case "":
		r.Kind = ReminderRemind
	case ReminderRemind, ReminderOpen, ReminderSummary, ReminderClose:
	default:
		c.ps.at(s.Pos, "kind", "unknown %q (want remind, open, summary or close)", s.Kind)
	}
	switch s.To {
	case "":
		r.To = ToMembers
	case ToMembers, ToGroups:
	case ToRobot:
		c.required(s.Pos, "robot", s.Robot, "the group robot's name from the config (robot_key_files)")
	default:
		c.ps.at(s.Pos, "to", "unknown %q (want members, groups or robot)", s.To)
	}
	if s.Top < 0 {
		c.ps.at(s.Pos, "top", "must not be negative")
	}
	if strings.TrimSpace(s.Text) == "" && r.Kind != ReminderSummary {
		c.ps.at(s.Pos, "text", "required: the message to send")
	}
	return r
}

func (c *compiler) ai(s *aiSpec) {
	if s == nil {
		return
	}
	a := &AI{Persona: s.Persona, BannedWords: s.BannedWords, HandoffWords: s.HandoffWords, HandoffTag: s.HandoffTag,
		HandoffStaff: s.HandoffStaff, HandoffReply: c.template(s.Pos, "handoff_reply", s.HandoffReply),
		Fallback: c.template(s.Pos, "fallback", s.Fallback), MaxReplyChars: s.MaxReplyChars, MemoryTurns: s.MemoryTurns}
	c.required(s.Pos, "persona", s.Persona, "who the assistant is and how it speaks (人设)")
	for _, f := range s.FAQ {
		c.required(f.Pos, "q", f.Q, "the question")
		c.required(f.Pos, "a", f.A, "the answer")
		a.FAQ = append(a.FAQ, FAQ{Q: f.Q, A: f.A, Keywords: f.Keywords, Source: fmt.Sprintf("%s:%d", f.File, f.Line)})
	}
	c.aiRuntime(s, a)
	for i, w := range s.BannedWords {
		if strings.TrimSpace(w) == "" {
			c.ps.at(s.Pos, fmt.Sprintf("banned_words[%d]", i), "empty word")
		}
	}
	for i, w := range s.HandoffWords {
		if strings.TrimSpace(w) == "" {
			c.ps.at(s.Pos, fmt.Sprintf("handoff_words[%d]", i), "empty word")
		}
	}
	if s.HandoffTag != "" {
		c.tag(s.Pos, "handoff_tag", s.HandoffTag)
	}
	if s.MaxReplyChars < 0 {
		c.ps.at(s.Pos, "max_reply_chars", "must not be negative")
	}
	if s.MemoryTurns < 0 {
		c.ps.at(s.Pos, "memory_turns", "must not be negative")
	}
	c.sc.AI = a
}

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		// No tzdata on the host: fall back to a fixed UTC+8, which is what
		// Asia/Shanghai has been since 1991.
		return time.FixedZone("CST", 8*60*60)
	}
	return loc
}
