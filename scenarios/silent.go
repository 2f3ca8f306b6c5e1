package scenarios

import (
	"fmt"
	"strings"
	"time"
)

// Silent members and loss alerts (流失提醒): who went quiet, who left.

// silentSpec is the silent section.
type silentSpec struct {
	Pos
	// Days without activity (no kf message, check-in, order or group join)
	// after which a member is silent.
	Days int `yaml:"days"`
	// Tag marks silent members (a corp tag in the catalog, written to WeCom
	// like the stage tags); removed when she is active again.
	Tag string `yaml:"tag"`
}

// lossAlertsSpec is the loss_alerts section.
type lossAlertsSpec struct {
	Pos
	// Staff: the staff member she deleted (or who lost her with her last
	// group) gets the alert (default true).
	Staff *bool `yaml:"staff"`
	// Managers also get every alert (userids).
	Managers []string `yaml:"managers"`
	// Groups: leaving her last customer group alerts too (default true).
	Groups *bool `yaml:"groups"`
	// Immediate sends each alert as it happens (default true); with
	// digest_at set and immediate false only the digest goes out.
	Immediate *bool `yaml:"immediate"`
	// DigestAt is the time of day (brand zone, "09:00") of a daily digest
	// of the previous day's losses; unset: no digest.
	DigestAt string `yaml:"digest_at"`
	// Text is the alert's template (TemplateData plus .Staff, .Reason,
	// .Spend, .LastActive); unset: a built-in one.
	Text string `yaml:"text"`
}

// Silent is the compiled silent rule.
type Silent struct {
	Pos
	Days int
	// Tag is "" when silent members are not tagged.
	Tag string
	// Segment selects members silent for Days (not lost, not yet tagged):
	// what the hourly sweep looks for.
	Segment *Segment
}

// For is how long a member must be inactive to be silent.
func (s *Silent) For() time.Duration { return time.Duration(s.Days) * 24 * time.Hour }

// LossAlerts is the compiled loss_alerts section.
type LossAlerts struct {
	Pos
	Staff     bool
	Managers  []string
	Groups    bool
	Immediate bool
	// DigestAt is the digest's offset from local midnight; HasDigest says
	// whether there is one.
	DigestAt  time.Duration
	HasDigest bool
	// Text is nil for the built-in alert.
	Text *Template
}

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// silent compiles the silent and loss_alerts sections (after tags).
func (c *compiler) silent(m *merged) {
	if s := m.silent; s != nil {
		if s.Days < 1 {
			c.ps.at(s.Pos, "days", "required: the days without activity after which a member is silent (e.g. 14)")
		}
		sl := &Silent{Pos: s.Pos, Days: s.Days}
		if s.Tag != "" {
			c.tag(s.Pos, "tag", s.Tag)
			for _, info := range c.sc.Funnel.Stages {
				if info.Tag == s.Tag {
					c.ps.at(s.Pos, "tag", "tag %q is a stage tag; give silent members a tag of their own", s.Tag)
				}
			}
			if s.Tag == c.sc.Funnel.LostTag {
				c.ps.at(s.Pos, "tag", "tag %q is funnel.lost_tag; give silent members a tag of their own", s.Tag)
			}
			for _, tr := range c.sc.TagRules {
				if anyOf(tr.Add, func(t string) bool { return t == s.Tag }) {
					c.ps.at(s.Pos, "tag", "tag %q is also added by tag rule %q (%s): the silent rule must own its tag", s.Tag, tr.Name, tr.Where(""))
				}
			}
			sl.Tag = s.Tag
		}
		f := SegmentFilter{SilentDays: max(s.Days, 1)}
		if sl.Tag != "" {
			f.TagsNone = []string{sl.Tag}
		}
		sl.Segment = c.segment(s.Pos, "", "", f)
		c.sc.Silent = sl
	}
	if s := m.lossAlerts; s != nil {
		la := &LossAlerts{Pos: s.Pos, Staff: boolOr(s.Staff, true), Groups: boolOr(s.Groups, true), Immediate: boolOr(s.Immediate, true)}
		for i, id := range s.Managers {
			if strings.TrimSpace(id) == "" || strings.ContainsAny(id, ", ") {
				c.ps.at(s.Pos, fmt.Sprintf("managers[%d]", i), "want a staff userid (企业微信账号), got %q", id)
				continue
			}
			la.Managers = append(la.Managers, id)
		}
		if s.DigestAt != "" {
			at, err := parseClock(s.DigestAt)
			if err != nil || at >= 24*time.Hour {
				c.ps.at(s.Pos, "digest_at", "want a time of day such as 09:00, got %q", s.DigestAt)
			}
			la.DigestAt, la.HasDigest = at, true
		}
		if !la.Immediate && !la.HasDigest {
			c.ps.at(s.Pos, "immediate", "with immediate: false set digest_at, or no alert is ever sent")
		}
		if !la.Staff && len(la.Managers) == 0 {
			c.ps.at(s.Pos, "staff", "with staff: false list managers, or nobody gets the alerts")
		}
		if s.Text != "" {
			la.Text = c.template(s.Pos, "text", s.Text)
		}
		c.sc.LossAlerts = la
	}
}
