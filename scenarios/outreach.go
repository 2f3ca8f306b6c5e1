package scenarios

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/wecombot/wecombot/bot"
)

// Outreach: broadcasts (群发) and SOP sequences (客户SOP / 群SOP), the
// messages a brand sends on purpose rather than in answer to a member.
// docs/scenarios.md documents every key.

// broadcastSpec is one entry under broadcasts.
type broadcastSpec struct {
	Pos
	Name    string `yaml:"name"`
	Segment string `yaml:"segment"`
	// At is a one-off time in the brand zone ("2026-12-04 20:00"); Cron a
	// repeating one (minute hour day month weekday, brand zone).
	At          string            `yaml:"at"`
	Cron        string            `yaml:"cron"`
	Via         string            `yaml:"via"`
	Text        string            `yaml:"text"`
	Attachments []*attachmentSpec `yaml:"attachments"`
	// OpenKfID is the 微信客服 account for via kf (default: the one the
	// member last wrote to).
	OpenKfID string `yaml:"open_kfid"`
	// Groups pick the customer groups for via group.
	Groups *groupPickSpec `yaml:"groups"`
}

type groupPickSpec struct {
	Pos
	Owners  []string `yaml:"owners"`
	Names   []string `yaml:"names"`
	ChatIDs []string `yaml:"chat_ids"`
	// Tags pick groups whose known members carry one of the tags (the
	// group's audience), since customer groups have no corp tags of their own here.
	Tags []string `yaml:"tags"`
}

// sopSpec is one entry under sops.
type sopSpec struct {
	Pos
	Name    string         `yaml:"name"`
	Trigger string         `yaml:"trigger"`
	Segment string         `yaml:"segment"`
	Steps   []*sopStepSpec `yaml:"steps"`
	Stop    []string       `yaml:"stop"`
}

type sopStepSpec struct {
	Pos
	Day         *int              `yaml:"day"`
	At          string            `yaml:"at"`
	Via         string            `yaml:"via"`
	Text        string            `yaml:"text"`
	Attachments []*attachmentSpec `yaml:"attachments"`
	OpenKfID    string            `yaml:"open_kfid"`
}

// Ways outreach reaches members (broadcasts and SOP steps).
const (
	// ViaGroup posts into customer groups (add_msg_template chat_type
	// group, the owner confirms).
	ViaGroup = "group"
	// ViaStaffTask sends the member's staff member an app message with the
	// text to send and a link to the member in the console (1:1 SOPs).
	ViaStaffTask = "staff_task"
)

// Broadcast is one compiled broadcast (群发).
type Broadcast struct {
	Pos
	Name string
	// Segment is who it goes to (nil with via group).
	Segment *Segment
	// At is a one-off occurrence (zero with a cron); Spec the cron spec.
	At   time.Time
	Spec string
	// Schedule yields the occurrences (the one At, or the cron's), in the
	// brand zone.
	Schedule    cron.Schedule
	Via         string
	Text        *Template
	Attachments []*Attachment
	OpenKfID    string
	Groups      GroupPick
}

// GroupPick selects customer groups: every non-empty list must match (any
// of its entries); all empty is every group.
type GroupPick struct {
	Owners  []string `json:"owners,omitempty"`
	Names   []string `json:"names,omitempty"`
	ChatIDs []string `json:"chat_ids,omitempty"`
	Tags    []string `json:"tags,omitempty"`
}

// once is the schedule of a one-off broadcast.
type once time.Time

// Next is the one occurrence if it is after t.
func (o once) Next(t time.Time) time.Time {
	if at := time.Time(o); at.After(t) {
		return at
	}
	return time.Time{}
}

// Broadcast returns the named broadcast, or nil.
func (sc *Scenario) Broadcast(name string) *Broadcast {
	for _, b := range sc.Broadcasts {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// SOP triggers.
const (
	TriggerAdded       = "added"
	TriggerStage       = "stage"
	TriggerTag         = "tag"
	TriggerJoinedGroup = "joined_group"
	TriggerSilent      = "silent"
	TriggerDate        = "date"
)

// SOP stop conditions.
const (
	StopPurchase = "purchase"
	StopLost     = "lost"
	StopTag      = "tag"
	// StopActive: she was active (a 微信客服 message, a check-in, an order,
	// joining a group) since the sequence started — a re-activation SOP's
	// natural end.
	StopActive = "active"
)

// SOP is a compiled sequence: when Trigger fires for a member (in Segment,
// when set), its steps go out on their days until a stop condition holds.
// A welcome script's follow-ups are an SOP too (Welcome set).
type SOP struct {
	Pos
	Name    string
	Trigger Trigger
	Segment *Segment
	Steps   []*SOPStep
	Stop    []Stop
	// Welcome is the script whose follow-ups this is ("" for sops entries):
	// it starts with that welcome and keeps the follow-ups' action keys.
	Welcome string
}

// Trigger is what starts an SOP for a member.
type Trigger struct {
	Kind  string
	Stage bot.Stage
	Tag   string
	// Field is the member date field of a date trigger (birthday).
	Field string
}

// Stop is a condition that ends a member's SOP.
type Stop struct {
	Kind string
	Tag  string
}

// SOPStep is one step: at day Day (HH:MM when HasClock, brand zone) after
// the trigger, or After it (welcome follow-ups).
type SOPStep struct {
	Pos
	Day      int
	Clock    time.Duration
	HasClock bool
	After    time.Duration
	Via      string
	// Otherwise is ViaMassSend when a kf follow-up outside the 微信客服
	// budget (she never wrote, 48 h passed, a person holds the session)
	// goes as a mass-send task from the staff member instead.
	Otherwise   string
	Text        *Template
	Attachments []*Attachment
	OpenKfID    string
}

// Due is when the step goes out for a member whose sequence started at
// start: day N at HH:MM in zone, or N×24 h after the start without a clock
// (never before the start).
func (s *SOPStep) Due(start time.Time, zone *time.Location) time.Time {
	if s.After > 0 || (s.Day == 0 && !s.HasClock) {
		return start.Add(s.After)
	}
	if !s.HasClock {
		return start.Add(time.Duration(s.Day) * 24 * time.Hour)
	}
	l := start.In(zone)
	due := time.Date(l.Year(), l.Month(), l.Day()+s.Day, 0, 0, 0, 0, zone).Add(s.Clock)
	if due.Before(start) {
		return start
	}
	return due
}

// Stops reports the stop condition of sop that holds for m ("" for none),
// given when the sequence started and the purchases made since.
func (sop *SOP) Stops(m *bot.Member, started time.Time, ordersSince int) string {
	for _, st := range sop.Stop {
		switch st.Kind {
		case StopActive:
			if m.LastActiveAt.After(started) {
				return StopActive
			}
		case StopPurchase:
			if ordersSince > 0 {
				return StopPurchase
			}
		case StopLost:
			if m.Lost {
				return StopLost
			}
		case StopTag:
			if m.HasTag(st.Tag) {
				return StopTag + ":" + st.Tag
			}
		}
	}
	return ""
}

// SOP returns the named SOP (sops entries and welcome follow-ups), or nil.
func (sc *Scenario) SOP(name string) *SOP {
	for _, s := range sc.SOPs {
		if s.Name == name {
			return s
		}
	}
	for _, w := range append([]*Script{sc.DefaultWelcome}, sc.Scripts...) {
		if w != nil && w.FollowUps != nil && w.FollowUps.Name == name {
			return w.FollowUps
		}
	}
	return nil
}

// WelcomeSOPPrefix names a welcome script's follow-up sequence ("welcome:新客").
const WelcomeSOPPrefix = "welcome:"

// broadcastTime is the layout of a broadcast's at.
const broadcastTime = "2006-01-02 15:04"

func (c *compiler) segmentRef(p Pos, rel, name string) *Segment {
	if name == "" {
		return nil
	}
	seg := c.sc.Segment(name)
	if seg == nil {
		c.ps.at(p, rel, "unknown segment %q (declare it under segments)", name)
	}
	return seg
}

// broadcasts compiles broadcasts (after segments and the brand zone). A
// one-off whose at has passed is a problem of its own kind: check reports
// it as an error, serve as a warning (a broadcast that already ran keeps
// its past time in the file).
func (c *compiler) broadcasts(specs []*broadcastSpec) {
	first := map[string]string{}
	now := time.Now()
	for _, s := range specs {
		c.required(s.Pos, "name", s.Name, "the broadcast's name (e.g. 周五上新)")
		if !c.unique(first, s.Pos, "name", "broadcast", s.Name) {
			continue
		}
		b, past := c.broadcast(s, nil, now, false)
		if past {
			c.sc.PastSchedules = append(c.sc.PastSchedules, Problem{File: s.File, Line: s.LineOf("at"), Field: s.field("at"),
				Msg: fmt.Sprintf("%s is in the past: the broadcast will not run (give a future time, or remove it once it has run)", s.At)})
		}
		c.sc.Broadcasts = append(c.sc.Broadcasts, b)
	}
}

// broadcast checks one broadcast (filter, when set, is an API request's
// inline segment; api requests may omit at: now) and compiles it; past
// reports a one-off at not after now.
func (c *compiler) broadcast(s *broadcastSpec, filter *SegmentFilter, now time.Time, api bool) (b *Broadcast, past bool) {
	if strings.Contains(s.Name, "|") {
		c.ps.at(s.Pos, "name", "a broadcast's name may not contain |")
	}
	b = &Broadcast{Pos: s.Pos, Name: s.Name, Via: s.Via, Spec: s.Cron, OpenKfID: s.OpenKfID,
		Text: c.template(s.Pos, "text", s.Text)}
	if strings.TrimSpace(s.Text) == "" {
		c.ps.at(s.Pos, "text", "required: the message to send (it may not be empty)")
	}
	switch {
	case s.At != "" && s.Cron != "":
		c.ps.at(s.Pos, "cron", "give at (once) or cron (repeating), not both")
	case s.At != "":
		at, err := time.ParseInLocation(broadcastTime, strings.TrimSpace(s.At), c.sc.Brand.Zone)
		if err != nil {
			at, err = time.ParseInLocation(broadcastTime+":05", strings.TrimSpace(s.At), c.sc.Brand.Zone)
		}
		if err != nil {
			c.ps.at(s.Pos, "at", "want a time in the brand zone such as \"2026-12-04 20:00\", got %q", s.At)
			break
		}
		b.At, b.Schedule = at, once(at)
		past = !at.After(now)
	case s.Cron != "":
		b.Schedule = c.cronSpec(s.Pos, "cron", s.Cron)
	case !api:
		c.ps.at(s.Pos, "at", "required: when to send, as at: \"2026-12-04 20:00\" (brand zone) or cron: \"0 20 * * 5\"")
	}
	switch s.Via {
	case "", ViaMassSend:
		b.Via = ViaMassSend
	case ViaKf, ViaGroup:
	default:
		c.ps.at(s.Pos, "via", "unknown %q (want mass_send, group or kf)", s.Via)
	}
	if b.Via == ViaGroup {
		if s.Segment != "" || filter != nil {
			c.ps.at(s.Pos, "segment", "via group posts into customer groups: pick them under groups, not with a segment")
		}
		if g := s.Groups; g != nil {
			b.Groups = GroupPick{Owners: g.Owners, Names: g.Names, ChatIDs: g.ChatIDs, Tags: c.tagList(g.Pos, "tags", g.Tags)}
		}
	} else {
		if s.Groups != nil {
			c.ps.at(s.Pos, "groups", "groups are for via group")
		}
		switch {
		case filter != nil && s.Segment != "":
			c.ps.at(s.Pos, "filter", "give a segment or a filter, not both")
		case filter != nil:
			b.Segment = c.segment(s.Pos, "", "", *filter)
		case s.Segment == "":
			c.ps.at(s.Pos, "segment", "required: the segment to send to (declared under segments)")
		default:
			b.Segment = c.segmentRef(s.Pos, "segment", s.Segment)
		}
	}
	if b.Via != ViaKf && !api {
		c.oneTextForAll(s.Pos, "text", s.Text)
	}
	if b.Via == ViaKf {
		c.fits(s.Pos, "text", s.Text, bot.MaxKfText, "a 微信客服 message")
		if len(s.Attachments) > 0 {
			c.ps.at(s.Pos, "attachments", "kf broadcasts send text only")
		}
	} else {
		b.Attachments = c.attachments(s.Pos, "attachments", s.Attachments, MaxWelcomeAttachments)
	}
	return b, past
}

// BroadcastRequest is a broadcast made through the admin API (POST
// /api/v1/broadcasts): the YAML keys, with an inline filter in place of a
// named segment if wanted. At is in the brand zone ("2026-12-04 20:00");
// empty sends now.
type BroadcastRequest struct {
	Name     string         `json:"name"`
	Segment  string         `json:"segment,omitempty"`
	Filter   *SegmentFilter `json:"filter,omitempty"`
	Via      string         `json:"via,omitempty"`
	Text     string         `json:"text"`
	At       string         `json:"at,omitempty"`
	OpenKfID string         `json:"open_kfid,omitempty"`
	Groups   *GroupPick     `json:"groups,omitempty"`
	DryRun   bool           `json:"dry_run,omitempty"`
}

// CompileBroadcast checks an API broadcast against the scenario, with the
// same rules as YAML; problems name the request's field. A past at is an
// error here.
func (sc *Scenario) CompileBroadcast(req BroadcastRequest, now time.Time) (*Broadcast, error) {
	ps := &problems{}
	c := &compiler{ps: ps, sc: sc, tags: sc.tagGroupOf}
	spec := &broadcastSpec{Pos: Pos{File: "request", lines: map[string]int{}}, Name: req.Name, Segment: req.Segment,
		Via: req.Via, Text: req.Text, At: req.At, OpenKfID: req.OpenKfID}
	if req.Groups != nil {
		spec.Groups = &groupPickSpec{Pos: Pos{File: "request", Path: "groups", lines: map[string]int{}},
			Owners: req.Groups.Owners, Names: req.Groups.Names, ChatIDs: req.Groups.ChatIDs, Tags: req.Groups.Tags}
	}
	if strings.TrimSpace(req.Name) == "" {
		spec.Name = "api"
	}
	if req.Filter == nil && req.Segment == "" && req.Via != ViaGroup {
		ps.add("request", 0, "segment", "required: a segment name or an inline filter")
	}
	b, past := c.broadcast(spec, req.Filter, now, true)
	if past {
		ps.add("request", 0, "at", "%s is in the past (brand zone %s)", req.At, sc.Brand.Zone)
	}
	if len(ps.list) > 0 {
		return nil, ps.list.sorted()
	}
	return b, nil
}

// cronSpec parses a wall-clock cron spec (brand zone); @every is refused
// (it moves with restarts, so each restart would run again).
func (c *compiler) cronSpec(p Pos, rel, spec string) cron.Schedule {
	switch {
	case strings.HasPrefix(strings.TrimSpace(spec), "@every"):
		c.ps.at(p, rel, "%q is not allowed: @every runs relative to when wecombot starts, so every restart would run it again; use wall-clock fields such as \"0 20 * * 5\"", spec)
	case strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ="):
		c.ps.at(p, rel, "times are in the brand zone (brand.zone); drop the TZ prefix")
	default:
		sched, err := cronParser.Parse(spec)
		if err != nil {
			c.ps.at(p, rel, "bad cron spec %q: %v (want minute hour day month weekday, e.g. \"0 20 * * 5\")", spec, err)
			return nil
		}
		if s, ok := sched.(*cron.SpecSchedule); ok {
			s.Location = c.sc.Brand.Zone
		}
		return sched
	}
	return nil
}

// sops compiles the sops section (after segments).
func (c *compiler) sops(specs []*sopSpec) {
	first := map[string]string{}
	for _, s := range specs {
		c.required(s.Pos, "name", s.Name, "the SOP's name (e.g. 新客七日)")
		if strings.Contains(s.Name, "|") || strings.HasPrefix(s.Name, WelcomeSOPPrefix) {
			c.ps.at(s.Pos, "name", "an SOP's name may not contain | or start with %s", WelcomeSOPPrefix)
		}
		if !c.unique(first, s.Pos, "name", "SOP", s.Name) {
			continue
		}
		sop := &SOP{Pos: s.Pos, Name: s.Name, Segment: c.segmentRef(s.Pos, "segment", s.Segment), Trigger: c.trigger(s.Pos, s.Trigger)}
		if len(s.Steps) == 0 {
			c.ps.at(s.Pos, "steps", "required: at least one step")
		}
		for _, st := range s.Steps {
			sop.Steps = append(sop.Steps, c.sopStep(st))
		}
		for i, stop := range s.Stop {
			rel := fmt.Sprintf("stop[%d]", i)
			kind, arg, _ := strings.Cut(stop, ":")
			switch kind {
			case StopPurchase, StopLost, StopActive:
				if arg != "" {
					c.ps.at(s.Pos, rel, "%s takes no argument", kind)
				}
				sop.Stop = append(sop.Stop, Stop{Kind: kind})
			case StopTag:
				c.tag(s.Pos, rel, arg)
				sop.Stop = append(sop.Stop, Stop{Kind: kind, Tag: arg})
			default:
				c.ps.at(s.Pos, rel, "unknown stop condition %q (want purchase, lost, active or tag:<tag>)", stop)
			}
		}
		c.sc.SOPs = append(c.sc.SOPs, sop)
	}
}

// danglingTriggers warns about what loads but can never happen because
// what it waits for is not configured: an SOP started by members going
// silent without a silent section (nothing marks them), and a birthday
// (SOP trigger date:birthday, a level's birthday_coupon) no profile form
// field asks for.
func (c *compiler) danglingTriggers() {
	birthday := false
	if f := c.sc.ProfileForm; f != nil {
		for _, fd := range f.Fields {
			birthday = birthday || fd.Type == FieldBirthday
		}
	}
	const noBirthday = "never %s: a member's birthday comes from the profile form (问卷), and no profile_form field has type: birthday"
	for _, sop := range c.sc.SOPs {
		switch {
		case sop.Welcome != "":
		case sop.Trigger.Kind == TriggerSilent && c.sc.Silent == nil:
			c.ps.warn(sop.Pos, "trigger", "never fires: no silent section marks members silent (add silent: {days: 14, tag: <a tag>})")
		case sop.Trigger.Kind == TriggerDate && sop.Trigger.Field == "birthday" && !birthday:
			c.ps.warn(sop.Pos, "trigger", noBirthday, "fires")
		}
	}
	if birthday {
		return
	}
	for _, l := range c.sc.Levels {
		if l.BirthdayCoupon != nil {
			c.ps.warn(l.Pos, "birthday_coupon", noBirthday, "given")
		}
	}
}

func (c *compiler) trigger(p Pos, s string) Trigger {
	kind, arg, _ := strings.Cut(strings.TrimSpace(s), ":")
	t := Trigger{Kind: kind}
	switch kind {
	case "":
		c.ps.at(p, "trigger", "required: added, stage:<stage>, tag:<tag>, joined_group, silent or date:birthday")
	case TriggerAdded, TriggerJoinedGroup, TriggerSilent:
		if arg != "" {
			c.ps.at(p, "trigger", "%s takes no argument", kind)
		}
	case TriggerStage:
		if arg == "" {
			c.ps.at(p, "trigger", "stage: needs a stage (aware, interest, purchase or loyal)")
		}
		t.Stage = c.stage(p, "trigger", arg)
	case TriggerTag:
		c.tag(p, "trigger", arg)
		t.Tag = arg
	case TriggerDate:
		if arg != "birthday" {
			c.ps.at(p, "trigger", "unknown date field %q (want date:birthday)", arg)
		}
		t.Field = arg
	default:
		c.ps.at(p, "trigger", "unknown trigger %q (want added, stage:<stage>, tag:<tag>, joined_group, silent or date:birthday)", s)
	}
	return t
}

func (c *compiler) sopStep(s *sopStepSpec) *SOPStep {
	st := &SOPStep{Pos: s.Pos, Via: s.Via, OpenKfID: s.OpenKfID, Text: c.template(s.Pos, "text", s.Text)}
	if s.Day == nil {
		c.ps.at(s.Pos, "day", "required: the day after the trigger to send on (0 is the same day)")
	} else if *s.Day < 0 {
		c.ps.at(s.Pos, "day", "must not be negative")
	} else {
		st.Day = *s.Day
	}
	if s.At != "" {
		clock, err := parseClock(s.At)
		if err != nil || clock >= 24*time.Hour {
			c.ps.at(s.Pos, "at", "want a time of day HH:MM (brand zone), got %q", s.At)
		}
		st.Clock, st.HasClock = clock, true
	}
	if strings.TrimSpace(s.Text) == "" {
		c.ps.at(s.Pos, "text", "required: the message to send")
	}
	c.stepVia(s.Pos, st, s.Via, s.Text, s.OpenKfID, s.Attachments, ViaStaffTask, ViaMassSend, ViaKf, ViaGroup)
	if st.Via == ViaMassSend || st.Via == ViaGroup {
		c.oneTextForAll(s.Pos, "text", s.Text)
	}
	return st
}

// stepVia checks a step's (or follow-up's) way of sending among allowed
// (the first is the default) and what that way can carry; it sets st.Via
// and st.Attachments.
func (c *compiler) stepVia(p Pos, st *SOPStep, via, text, openKfID string, atts []*attachmentSpec, allowed ...string) {
	if via == "" {
		via = allowed[0]
	}
	st.Via = via
	textOnly := func(what string) {
		if len(atts) > 0 {
			c.ps.at(p, "attachments", "%s carries text only", what)
		}
	}
	switch {
	case !slices.Contains(allowed, via):
		c.ps.at(p, "via", "unknown %q (want %s)", via, strings.Join(allowed, ", "))
	case via == ViaStaffTask:
		c.fits(p, "text", text, bot.MaxAppText, "an app message")
		textOnly("a staff task (the staff member sends any attachments)")
	case via == ViaKf:
		// The account is fixed when the message is queued (maybe days
		// ahead), so it is named.
		c.required(p, "open_kfid", openKfID, "the 微信客服 account (open_kfid) to send from")
		c.fits(p, "text", text, bot.MaxKfText, "a 微信客服 message")
		textOnly("a 微信客服 message")
	default: // mass_send, group
		st.Attachments = c.attachments(p, "attachments", atts, MaxWelcomeAttachments)
	}
}

// memberFields are the template fields that differ from member to member.
var memberFields = []string{".Name", ".Channel", ".Stage", ".Streak", ".Points", ".Level", ".Orders", ".CheckIns", ".Staff", ".Link", ".Rank", ".Day"}

// oneTextForAll warns that a mass send's text can't be personal: WeCom
// sends one text to every customer of a task.
func (c *compiler) oneTextForAll(p Pos, rel, text string) {
	for _, f := range memberFields {
		if strings.Contains(text, f) && strings.Contains(text, "{{") {
			c.ps.warn(p, rel, "a mass send carries one text for every customer of its task (WeCom can't personalise it): %s shows as for no particular member (%s is brand.default_member_name); use via kf or a staff task for a personal text", f, ".Name")
			return
		}
	}
}
