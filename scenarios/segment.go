package scenarios

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// SegmentFilter is a segment's rules as written: under segments in the
// scenario YAML, and as the JSON body of an ad-hoc segment in the admin
// API (POST /api/v1/segments/count). Every non-empty rule must hold; a
// list matches when any of its entries does (tags_none when none does).
// Compile it with Scenario.CompileSegment (the API) or by loading a
// scenario (YAML): both check it the same way.
type SegmentFilter struct {
	// Stages are AIPL stages (aware, interest, purchase, loyal).
	Stages []string `yaml:"stages" json:"stages,omitempty"`
	// Channels are channels by state (the contact-me code's state) or name.
	Channels []string `yaml:"channels" json:"channels,omitempty"`
	// TagsAny: the member carries at least one; TagsAll: every one;
	// TagsNone: none of them. Tags must be in the catalog (tags).
	TagsAny  []string `yaml:"tags_any" json:"tags_any,omitempty"`
	TagsAll  []string `yaml:"tags_all" json:"tags_all,omitempty"`
	TagsNone []string `yaml:"tags_none" json:"tags_none,omitempty"`
	// Staff are follow users (跟进员工, userids): she still follows one.
	Staff []string `yaml:"staff" json:"staff,omitempty"`
	// Levels are member levels (会员等级) by name.
	Levels []string `yaml:"levels" json:"levels,omitempty"`
	// Groups are customer group chat ids she is in; "any" is any group.
	Groups []string `yaml:"groups" json:"groups,omitempty"`
	// SilentDays: no kf message, check-in, order or group activity for at
	// least this many days (bot.Member.LastActivity).
	SilentDays int `yaml:"silent_days" json:"silent_days,omitempty"`
	// ActiveDays: some such activity within this many days.
	ActiveDays int `yaml:"active_days" json:"active_days,omitempty"`
	// AddedWithin: she added the brand's staff within this long ("30d").
	AddedWithin Duration `yaml:"added_within" json:"added_within,omitempty"`
	// MinSpendYuan and MinOrders: paid (net of refunds) at least this much,
	// in at least this many orders.
	MinSpendYuan Yuan `yaml:"min_spend_yuan" json:"min_spend_yuan,omitempty"`
	MinOrders    int  `yaml:"min_orders" json:"min_orders,omitempty"`
	// Lost selects members who deleted every staff member (true) — unset
	// or false leaves them out, since nothing can reach them.
	Lost bool `yaml:"lost" json:"lost,omitempty"`
}

// Segment is a compiled segment: named under segments, or ad hoc. Match is
// the one evaluator every feature uses (the API's count, the console's
// builder, broadcasts, SOP audiences); bot/segments counts and lists it
// over the member store.
type Segment struct {
	Pos
	// Name is "" for an ad-hoc segment.
	Name        string
	Description string
	// Filter is the rules as written (channels as written, not resolved).
	Filter SegmentFilter

	stages                     map[bot.Stage]bool
	channels                   map[string]bool // channel names
	tagsAny, tagsAll, tagsNone []string
	staff                      []string
	levels                     map[string]bool
	groups                     []string
	anyGroup                   bool
	silentFor, activeFor       time.Duration
	addedWithin                time.Duration
	minSpendFen                int64
	minOrders                  int
	lost                       bool
}

// Match reports whether m is in the segment at now. It is pure: it reads m
// and now only.
func (s *Segment) Match(m *bot.Member, now time.Time) bool {
	if m.Lost != s.lost {
		return false
	}
	if len(s.stages) > 0 && !s.stages[m.Stage] {
		return false
	}
	if len(s.channels) > 0 && !s.channels[m.Channel] {
		return false
	}
	if len(s.tagsAny) > 0 && !anyOf(s.tagsAny, m.HasTag) {
		return false
	}
	for _, t := range s.tagsAll {
		if !m.HasTag(t) {
			return false
		}
	}
	if anyOf(s.tagsNone, m.HasTag) {
		return false
	}
	if len(s.staff) > 0 && s.Sender(m) == "" {
		return false
	}
	if len(s.levels) > 0 && !s.levels[m.Level] {
		return false
	}
	if s.anyGroup && len(m.Groups) == 0 {
		return false
	}
	if len(s.groups) > 0 && !anyOf(s.groups, m.InGroup) {
		return false
	}
	if s.silentFor > 0 && now.Sub(m.LastActivity()) < s.silentFor {
		return false
	}
	if s.activeFor > 0 && now.Sub(m.LastActivity()) >= s.activeFor {
		return false
	}
	if s.addedWithin > 0 && now.Sub(m.AddedAt()) > s.addedWithin {
		return false
	}
	if m.SpendFen < s.minSpendFen || m.Orders < s.minOrders {
		return false
	}
	return true
}

// appendUnion appends the terms prefix ‖ value of values, sorted, as one
// conjunct (none when values is empty).
func appendUnion(out [][]string, prefix string, values []string) [][]string {
	if len(values) == 0 {
		return out
	}
	terms := make([]string, 0, len(values))
	for _, v := range values {
		terms = append(terms, bot.IndexKey(prefix, v))
	}
	slices.Sort(terms)
	return append(out, terms)
}

// IndexTerms are the segment's rules the member index answers, as
// conjuncts: every member of the segment holds at least one term of each
// inner list (bot.MemberTerms). A rule without a term (groups, activity,
// spend) adds none; Match still decides on each member.
func (s *Segment) IndexTerms() [][]string {
	var out [][]string
	union := func(prefix string, values []string) { out = appendUnion(out, prefix, values) }
	keys := func(m map[string]bool) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		return out
	}
	var stages []string
	for st := range s.stages {
		stages = append(stages, string(st))
	}
	union(bot.TermStage, stages)
	union(bot.TermChannel, keys(s.channels))
	union(bot.TermTag, s.tagsAny)
	for _, t := range s.tagsAll {
		union(bot.TermTag, []string{t})
	}
	union(bot.TermStaff, s.staff)
	union(bot.TermLevel, keys(s.levels))
	if s.lost {
		out = append(out, []string{bot.TermLost})
	}
	return out
}

// SegmentBits is a segment's rules over the member bitmaps
// (bot.MemberBits) at a moment: a member is in the segment when she holds
// a term of each All union, none of None, and for each range a term whose
// field is In — or Edge, when only Match on her can decide. Exact is false
// when a rule has no bitmap (groups): then Match decides on every member
// the bitmaps leave.
type SegmentBits struct {
	All    [][]string
	None   []string
	Ranges []BitRange
	Exact  bool
}

// BitRange is a rule over the terms with Prefix (day or amount buckets):
// Class says whether the members of the term with field f all match (In),
// some may (Edge), or none do. Edge, when set, splits the members of the
// Edge buckets further (a cutoff day by hour).
type BitRange struct {
	Prefix string
	Class  func(field string) BitClass
	Edge   *BitRange
}

// BitClass is how a bucket's members stand against a range rule.
type BitClass int

// The classes of BitRange.Class.
const (
	BitOut BitClass = iota
	BitIn
	BitEdge
)

// Bits maps the segment's rules onto the member bitmaps at now (see
// SegmentBits; bot.MemberBitTerms writes the terms it reads).
func (s *Segment) Bits(now time.Time) SegmentBits {
	b := SegmentBits{Exact: len(s.groups) == 0 && !s.anyGroup}
	union := func(prefix string, values []string) { b.All = appendUnion(b.All, prefix, values) }
	r := s.Rules()
	stages := make([]string, 0, len(r.Stages))
	for _, st := range r.Stages {
		stages = append(stages, string(st))
	}
	union(bot.TermStage, stages)
	union(bot.BitChannelName, r.Channels)
	union(bot.TermTag, r.TagsAny)
	for _, t := range r.TagsAll {
		union(bot.TermTag, []string{t})
	}
	union(bot.TermStaff, r.Staff)
	union(bot.TermLevel, r.Levels)
	if s.lost {
		b.All = append(b.All, []string{bot.TermLost})
	} else {
		b.None = append(b.None, bot.TermLost)
	}
	for _, t := range r.TagsNone {
		b.None = append(b.None, bot.IndexKey(bot.TermTag, t))
	}
	// Day, then hour, buckets against a cutoff instant: days (hours of
	// the cutoff day) wholly on the matching side are in, the members of
	// the cutoff's own hour are decided one by one.
	side := func(prefix, cut string, before bool) *BitRange {
		return &BitRange{Prefix: bot.IndexKey(prefix, ""), Class: func(f string) BitClass {
			switch {
			case f == cut:
				return BitEdge
			case (f < cut) == before:
				return BitIn
			}
			return BitOut
		}}
	}
	day := func(dayPrefix, hourPrefix string, cutoff time.Time, before bool) {
		r := side(dayPrefix, bot.BitDay(cutoff), before)
		r.Edge = side(hourPrefix, bot.BitHour(cutoff), before)
		b.Ranges = append(b.Ranges, *r)
	}
	if s.silentFor > 0 {
		day(bot.BitActiveDay, bot.BitActiveHour, now.Add(-s.silentFor), true) // last active at or before now-silentFor
	}
	if s.activeFor > 0 {
		day(bot.BitActiveDay, bot.BitActiveHour, now.Add(-s.activeFor), false) // after now-activeFor
	}
	if s.addedWithin > 0 {
		day(bot.BitAddedDay, bot.BitAddedHour, now.Add(-s.addedWithin), false) // at or after now-addedWithin
	}
	if min := s.minSpendFen; min > 0 {
		b.Ranges = append(b.Ranges, BitRange{Prefix: bot.IndexKey(bot.BitSpend, ""), Class: func(f string) BitClass {
			floor, err := strconv.ParseInt(f, 10, 64)
			switch {
			case err != nil:
				return BitEdge
			case floor >= min:
				return BitIn
			case bot.SpendCeil(floor) <= min:
				return BitOut
			}
			return BitEdge
		}})
	} else {
		b.None = append(b.None, bot.IndexKey(bot.BitSpend, bot.SpendBucket(-1))) // negative net spend is below 0
	}
	if n := s.minOrders; n > 0 {
		b.Ranges = append(b.Ranges, BitRange{Prefix: bot.IndexKey(bot.BitOrders, ""), Class: func(f string) BitClass {
			got, err := strconv.Atoi(f)
			switch {
			case err != nil || (got == bot.BitOrdersCap && n > bot.BitOrdersCap):
				return BitEdge
			case got >= n:
				return BitIn
			}
			return BitOut
		}})
	}
	return b
}

// Sender is the staff member who reaches m for this segment (a mass send's
// sender, the per-staff split): with a staff rule, the most recently added
// of those staff she still follows; else her primary staff. "" when she
// follows none of them.
func (s *Segment) Sender(m *bot.Member) string {
	if len(s.staff) == 0 {
		return m.PrimaryStaff()
	}
	staff := ""
	var at time.Time
	for _, f := range m.Follows {
		if f.Active() && !f.AddedAt.Before(at) && anyOf(s.staff, func(id string) bool { return id == f.StaffID }) {
			staff, at = f.StaffID, f.AddedAt
		}
	}
	return staff
}

// SegmentRules are a compiled segment's rules, resolved (channels by name),
// for an index to narrow the members Match must look at (bitmaps of stage,
// channel, tag, staff → members): every member Match accepts carries one
// of Stages (if any), one of Channels, one of TagsAny, all of TagsAll, and
// follows one of Staff. Empty lists don't narrow.
type SegmentRules struct {
	Stages                     []bot.Stage
	Channels                   []string
	TagsAny, TagsAll, TagsNone []string
	Staff                      []string
	Levels                     []string
	Lost                       bool
}

// Rules returns the segment's rules (copies).
func (s *Segment) Rules() SegmentRules {
	r := SegmentRules{TagsAny: append([]string(nil), s.tagsAny...), TagsAll: append([]string(nil), s.tagsAll...),
		TagsNone: append([]string(nil), s.tagsNone...), Staff: append([]string(nil), s.staff...), Lost: s.lost}
	for _, st := range bot.Stages {
		if s.stages[st] {
			r.Stages = append(r.Stages, st)
		}
	}
	for ch := range s.channels {
		r.Channels = append(r.Channels, ch)
	}
	for l := range s.levels {
		r.Levels = append(r.Levels, l)
	}
	sort.Strings(r.Channels)
	sort.Strings(r.Levels)
	return r
}

// NeedsActivity reports whether the segment reads last activity (silent or
// active days): such segments change with the clock, not only with events.
func (s *Segment) NeedsActivity() bool { return s.silentFor > 0 || s.activeFor > 0 }

// Segment returns the named segment, or nil.
func (sc *Scenario) Segment(name string) *Segment { return sc.segments[name] }

// CompileSegment checks an ad-hoc filter against the scenario (its stages,
// channels, tags and levels) and compiles it. A bad rule is a
// ValidationError whose problems name the field ("tags_any[1]"), the same
// checks a segment in YAML gets.
func (sc *Scenario) CompileSegment(f SegmentFilter) (*Segment, error) {
	ps := &problems{}
	c := &compiler{ps: ps, sc: sc, tags: sc.tagGroupOf}
	seg := c.segment(Pos{File: "request", lines: map[string]int{}}, "", "", f)
	if len(ps.list) > 0 {
		return nil, ps.list.sorted()
	}
	return seg, nil
}

// segmentSpec is one entry under segments.
type segmentSpec struct {
	Pos
	Name          string `yaml:"name"`
	Description   string `yaml:"description"`
	SegmentFilter `yaml:",inline"`
}

// segments compiles the scenario's named segments (after tags, channels and
// levels).
func (c *compiler) segments(specs []*segmentSpec) {
	first := map[string]string{}
	for _, s := range specs {
		c.required(s.Pos, "name", s.Name, "the segment's name (e.g. 小红书新客)")
		if !c.unique(first, s.Pos, "name", "segment", s.Name) {
			continue
		}
		seg := c.segment(s.Pos, s.Name, s.Description, s.SegmentFilter)
		c.sc.Segments = append(c.sc.Segments, seg)
		c.sc.segments[s.Name] = seg
	}
	for _, resolve := range c.afterSegments {
		resolve()
	}
}

// segment checks f (rules at p) and compiles it. It only reads c.sc, so
// CompileSegment can run it on a loaded scenario.
func (c *compiler) segment(p Pos, name, desc string, f SegmentFilter) *Segment {
	seg := &Segment{Pos: p, Name: name, Description: desc, Filter: f,
		stages: map[bot.Stage]bool{}, channels: map[string]bool{}, levels: map[string]bool{},
		tagsAny: f.TagsAny, tagsAll: f.TagsAll, tagsNone: f.TagsNone, lost: f.Lost,
		addedWithin: time.Duration(f.AddedWithin), minSpendFen: f.MinSpendYuan.Fen(), minOrders: f.MinOrders}
	for i, st := range f.Stages {
		if s := c.stage(p, fmt.Sprintf("stages[%d]", i), st); s != bot.StageNone {
			seg.stages[s] = true
		}
	}
	for i, ch := range f.Channels {
		rel := fmt.Sprintf("channels[%d]", i)
		found := c.sc.ChannelByState(ch)
		if found == nil {
			found = c.sc.ChannelByName(ch)
		}
		if found == nil {
			c.ps.at(p, rel, "unknown channel %q (use a channel's state or name under channels)", ch)
			continue
		}
		seg.channels[found.Name] = true
	}
	c.tagList(p, "tags_any", f.TagsAny)
	c.tagList(p, "tags_all", f.TagsAll)
	c.tagList(p, "tags_none", f.TagsNone)
	for i, t := range f.TagsNone {
		if anyOf(f.TagsAny, func(a string) bool { return a == t }) || anyOf(f.TagsAll, func(a string) bool { return a == t }) {
			c.ps.at(p, fmt.Sprintf("tags_none[%d]", i), "tag %q is also required by tags_any/tags_all: nobody can match", t)
		}
	}
	for i, id := range f.Staff {
		if strings.TrimSpace(id) == "" || strings.ContainsAny(id, ", ") {
			c.ps.at(p, fmt.Sprintf("staff[%d]", i), "want a staff userid (企业微信账号), got %q", id)
			continue
		}
		seg.staff = append(seg.staff, id)
	}
	for i, l := range f.Levels {
		if c.sc.Level(l) == nil {
			c.ps.at(p, fmt.Sprintf("levels[%d]", i), "unknown level %q (declare it under levels)", l)
			continue
		}
		seg.levels[l] = true
	}
	for i, g := range f.Groups {
		switch {
		case g == "any":
			seg.anyGroup = true
		case strings.TrimSpace(g) == "":
			c.ps.at(p, fmt.Sprintf("groups[%d]", i), "empty customer group chat id (or \"any\")")
		default:
			seg.groups = append(seg.groups, g)
		}
	}
	if f.SilentDays < 0 {
		c.ps.at(p, "silent_days", "must not be negative")
	}
	if f.ActiveDays < 0 {
		c.ps.at(p, "active_days", "must not be negative")
	}
	if f.SilentDays > 0 && f.ActiveDays > 0 && f.ActiveDays <= f.SilentDays {
		c.ps.at(p, "active_days", "active within %d days and silent for %d days: nobody can match", f.ActiveDays, f.SilentDays)
	}
	seg.silentFor = time.Duration(f.SilentDays) * 24 * time.Hour
	seg.activeFor = time.Duration(f.ActiveDays) * 24 * time.Hour
	if f.MinOrders < 0 {
		c.ps.at(p, "min_orders", "must not be negative")
	}
	return seg
}

// MarshalJSON writes the duration in the scenario's syntax ("30d", "2h0m0s").
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(FormatDuration(time.Duration(d)))
}

// UnmarshalJSON reads a duration written as in the scenario ("30d", "12h").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as 12h or 30d in quotes")
	}
	return d.decodeScalar(s)
}

// FormatDuration writes d as the scenario does: whole days as "30d", else
// Go's syntax after any whole days ("1d12h0m0s").
func FormatDuration(d time.Duration) string {
	day := 24 * time.Hour
	switch {
	case d == 0:
		return "0s"
	case d%day == 0:
		return fmt.Sprintf("%dd", d/day)
	case d > day:
		return fmt.Sprintf("%dd%s", d/day, d%day)
	}
	return d.String()
}

// MarshalJSON writes the amount as a number of yuan (39.9).
func (y Yuan) MarshalJSON() ([]byte, error) {
	return []byte(strings.TrimSuffix(strings.TrimSuffix(y.String(), "0"), ".0")), nil
}

// UnmarshalJSON reads an amount in yuan, a number (39.9) or a string ("39.9").
func (y *Yuan) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	return y.decodeScalar(s)
}
