package scenarios

import (
	"fmt"
	"strings"
	"text/template"

	"github.com/wecombot/wecombot/bot"
)

// TemplateData is what a text template sees. Operators write {{.Name}},
// {{.StageName}}, {{if gt .Points 100}}…{{end}} and so on.
type TemplateData struct {
	// Name is the member's name (or brand.default_member_name when unknown).
	Name string
	// Channel is the name of the channel the member came through ("小红书").
	Channel string
	// Stage is the AIPL stage key (aware, interest, purchase, loyal); StageName its display name.
	Stage     string
	StageName string
	// Streak is the current check-in streak in days.
	Streak int
	// Points is the points balance; Level the level name.
	Points int64
	Level  string
	// Brand is brand.name.
	Brand string
	// Orders and CheckIns count paid orders and check-in days.
	Orders   int
	CheckIns int
	// Staff is the userid of the staff member the member added most recently.
	Staff string
	// Campaign fields, set in check-in campaign messages and reminders:
	// Campaign is its name, Day the member's check-in days in it, Link the
	// member's personal check-in page (or certificate, in a certificate
	// milestone), Rank their leaderboard rank (0 before the first check-in),
	// Board the leaderboard as text (summary and close reminders), Today the
	// check-ins today and Participants everyone who ever checked in.
	Campaign     string
	Day          int
	Link         string
	Rank         int
	Board        string
	Today        int
	Participants int
	// Check-in reply lines: Bonus is a streak bonus's points (streak_bonus,
	// where Streak is the bonus's days), LevelMin the new level's min_points
	// (level_up), Certificate the certificate's title (certificate_link).
	Bonus       int64
	LevelMin    int64
	Certificate string
	// ProfileLink is the member's signed profile form (问卷) page, in
	// welcomes, keyword replies and profile_form.reply ("" without a form).
	ProfileLink string
	// PosterLink is the member's signed 任务宝 poster page, in
	// referral.poster.text ("" without links).
	PosterLink string
	// Economy fields: Earned is the points an order earned (points.earned)
	// or a refund took back (points.clawed_back); Debt the points still owed
	// after a refund took more than the balance; Item and Cost a catalogue
	// item and its points (redeem texts); Tracking a shipped gift's number.
	Earned   int64
	Debt     int64
	Item     string
	Cost     int64
	Tracking string
}

// sampleData is used to execute every template once at load time, so a
// misspelt field ({{.Nmae}}) fails `wecombot check` instead of a welcome.
var sampleData = TemplateData{
	Name: "示例会员", Channel: "示例渠道", Stage: "aware", StageName: "认知", Streak: 3,
	Points: 120, Level: "普通", Brand: "示例品牌", Orders: 1, CheckIns: 3, Staff: "zhangsan",
	Campaign: "示例打卡", Day: 3, Link: "https://example.com/checkin?t=sample", Rank: 2,
	Board: "1. 示例会员 30 分", Today: 5, Participants: 12,
	Bonus: 20, LevelMin: 100, Certificate: "示例证书",
	ProfileLink: "https://example.com/profile?t=sample", PosterLink: "https://example.com/poster?t=sample",
	Earned: 39, Debt: 10, Item: "示例礼品", Cost: 100, Tracking: "SF0000000000",
}

// Template is a compiled text template with its source kept for fallback.
// A nil *Template renders as "".
type Template struct {
	src   string
	where string
	t     *template.Template // nil when src has no actions: rendered as is
}

// compileTemplate parses src and executes it once against sample data.
func compileTemplate(name, where, src string) (*Template, error) {
	t := &Template{src: src, where: where}
	if !strings.Contains(src, "{{") {
		return t, nil
	}
	parsed, err := template.New(name).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("bad template: %s", cleanTemplateErr(err))
	}
	var b strings.Builder
	if err := parsed.Execute(&b, sampleData); err != nil {
		return nil, fmt.Errorf("bad template: %s", cleanTemplateErr(err))
	}
	t.t = parsed
	return t, nil
}

// cleanTemplateErr drops text/template's "template: NAME:" prefix, whose
// name is an internal label, and Go type names.
func cleanTemplateErr(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "template: ")
	if i := strings.Index(msg, ": "); i >= 0 && !strings.Contains(msg[:i], " ") {
		msg = msg[i+2:]
	}
	msg = strings.ReplaceAll(msg, "scenarios.TemplateData", "the template data")
	return msg
}

// Source returns the template text as written.
func (t *Template) Source() string {
	if t == nil {
		return ""
	}
	return t.src
}

// Where returns the file:line the template was written at.
func (t *Template) Where() string {
	if t == nil {
		return ""
	}
	return t.where
}

// Render executes the template. If execution fails at run time (an index
// out of range for this member, say), it returns the plain, unrendered text
// together with the error, so the member still gets a message and the caller
// logs the problem.
func (t *Template) Render(d TemplateData) (string, error) {
	if t == nil {
		return "", nil
	}
	if t.t == nil {
		return t.src, nil
	}
	var b strings.Builder
	b.Grow(len(t.src) + 32)
	if err := t.t.Execute(&b, d); err != nil {
		return t.src, fmt.Errorf("template at %s: %s (sent the plain text instead)", t.where, cleanTemplateErr(err))
	}
	return b.String(), nil
}

// DataFor builds the template data for member m (m may be nil).
func (sc *Scenario) DataFor(m *bot.Member) TemplateData {
	d := TemplateData{Brand: sc.Brand.Name, Name: sc.Brand.DefaultMemberName}
	if m == nil {
		return d
	}
	if m.Name != "" {
		d.Name = m.Name
	}
	d.Channel = m.Channel
	d.Stage = string(m.Stage)
	d.StageName = sc.Funnel.StageName(m.Stage)
	d.Points = m.Points
	d.Level = m.Level
	d.Orders = m.Orders
	d.CheckIns = m.CheckIns
	d.Staff = m.PrimaryStaff()
	return d
}
