package bot

import "time"

// Stage is a member's place in the AIPL funnel.
type Stage string

// AIPL stages, in order. StageNone is a member we know of but who is not (yet) a contact.
const (
	StageNone     Stage = ""
	StageAware    Stage = "aware"
	StageInterest Stage = "interest"
	StagePurchase Stage = "purchase"
	StageLoyal    Stage = "loyal"
)

// Stages lists the funnel stages in order.
var Stages = []Stage{StageAware, StageInterest, StagePurchase, StageLoyal}

// Rank is the stage's position in the funnel (0 for StageNone, 1 for Aware …).
func (s Stage) Rank() int {
	for i, st := range Stages {
		if st == s {
			return i + 1
		}
	}
	return 0
}

// Valid reports whether s is one of the AIPL stages.
func (s Stage) Valid() bool { return s.Rank() > 0 }

// Follow is one staff member the customer has added (follow_user).
type Follow struct {
	StaffID   string    `json:"staff_id"`
	State     string    `json:"state,omitempty"`
	AddedAt   time.Time `json:"added_at"`
	DeletedAt time.Time `json:"deleted_at,omitzero"`
	// DeletedBy is "customer" (del_follow_user) or "staff" (del_external_contact).
	DeletedBy string `json:"deleted_by,omitempty"`
	// Remark is the staff member's remark (备注) for the customer, as WeCom last showed it.
	Remark string `json:"remark,omitempty"`
}

// Active reports whether the follow relation still stands.
func (f Follow) Active() bool { return f.DeletedAt.IsZero() }

// StageChange records one move in the funnel.
type StageChange struct {
	From     Stage     `json:"from"`
	To       Stage     `json:"to"`
	At       time.Time `json:"at"`
	Cause    string    `json:"cause"`
	EventSeq uint64    `json:"event_seq,omitempty"`
}

// Member is a customer (external contact) of the brand.
type Member struct {
	ExternalUserID string `json:"external_user_id"`
	Name           string `json:"name,omitempty"`
	// Channel is the name of the channel the member first came through, State its raw state.
	Channel string   `json:"channel,omitempty"`
	State   string   `json:"state,omitempty"`
	Follows []Follow `json:"follows,omitempty"`
	// Tags are corp tag names wecombot applied or learned of.
	Tags []string `json:"tags,omitempty"`
	// Groups are the customer group chat ids the member is in.
	Groups       []string      `json:"groups,omitempty"`
	Stage        Stage         `json:"stage,omitempty"`
	StageHistory []StageChange `json:"stage_history,omitempty"`
	// Lost is set when the member deleted every staff member; history is kept.
	Lost      bool      `json:"lost,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	// Gender and UnionID come from externalcontact/get (1 male, 2 female).
	Gender  int    `json:"gender,omitempty"`
	UnionID string `json:"unionid,omitempty"`

	// Commerce and engagement counters, maintained by the engine.
	Orders   int   `json:"orders,omitempty"`
	SpendFen int64 `json:"spend_fen,omitempty"`
	Points   int64 `json:"points,omitempty"`
	// PointsEarned is every point ever credited less what refunds took back
	// (成长值): levels follow it, so redeeming points never lowers a level.
	PointsEarned int64 `json:"points_earned,omitempty"`
	// PointsDebt is what refunds took back beyond the balance; later
	// credits pay it first. Points never goes below zero.
	PointsDebt int64  `json:"points_debt,omitempty"`
	Level      string `json:"level,omitempty"`
	CheckIns   int    `json:"check_ins,omitempty"`

	// Transfers are the member's hand-overs between staff (在职/离职继承), oldest first.
	Transfers []Transfer `json:"transfers,omitempty"`

	// Birthday is the birthday the member gave on the profile form (问卷),
	// "YYYY-MM-DD" ("" when unknown). Level rights' birthday coupon and the
	// SOP birthday trigger read it through BirthdayOn.
	Birthday string `json:"birthday,omitempty"`
	// Profile is what she answered on the profile form (nil until she did).
	Profile *Profile `json:"profile,omitempty"`
	// LastActiveAt is the member's last own activity the bot sees: adding
	// the staff, a 微信客服 message, a check-in, an order, joining a
	// customer group (zero before the engine kept it: see LastActivity).
	LastActiveAt time.Time `json:"last_active_at,omitzero"`
	// SilentSince is when the scenario's silent rule marked her silent
	// (zero while she is not): set by the engine, cleared by her next
	// activity.
	SilentSince time.Time `json:"silent_since,omitzero"`
}

// LastActivity is when the member was last active: LastActiveAt, else
// (members stored before it was kept) when she was added.
func (m *Member) LastActivity() time.Time {
	if m.LastActiveAt.IsZero() {
		return m.AddedAt()
	}
	return m.LastActiveAt
}

// Touch records activity at t (kept if later than what is recorded); it
// reports whether LastActiveAt moved.
func (m *Member) Touch(t time.Time) bool {
	if t.IsZero() || !t.After(m.LastActiveAt) {
		return false
	}
	m.LastActiveAt = t
	return true
}

// AddedAt is when the member first added a staff member (the earliest
// follow), else when the bot first knew her.
func (m *Member) AddedAt() time.Time {
	var at time.Time
	for _, f := range m.Follows {
		if !f.AddedAt.IsZero() && (at.IsZero() || f.AddedAt.Before(at)) {
			at = f.AddedAt
		}
	}
	if at.IsZero() {
		return m.CreatedAt
	}
	return at
}

// LevelPoints is what the member's level follows: her earned points, never
// less than her balance (members from before earned points were kept).
func (m *Member) LevelPoints() int64 { return max(m.PointsEarned, m.Points) }

// BirthdayLayout is the format of Member.Birthday.
const BirthdayLayout = "2006-01-02"

// Profile is a member's answers to the scenario's profile form (用户画像).
type Profile struct {
	// Form is the form's name in the scenario.
	Form string `json:"form"`
	// Answers are her answers in the form's field order.
	Answers []ProfileAnswer `json:"answers,omitempty"`
	// CompletedAt is her first submission (the one rewarded), UpdatedAt her last.
	CompletedAt time.Time `json:"completed_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ProfileAnswer is one field's answer: Value for a date, text or single
// choice (the choice's key), Choices for a multiple choice (their keys).
type ProfileAnswer struct {
	Field   string   `json:"field"`
	Value   string   `json:"value,omitempty"`
	Choices []string `json:"choices,omitempty"`
}

// Answer returns the answer to field, or nil (nil-safe).
func (p *Profile) Answer(field string) *ProfileAnswer {
	if p == nil {
		return nil
	}
	for i := range p.Answers {
		if p.Answers[i].Field == field {
			return &p.Answers[i]
		}
	}
	return nil
}

// BirthdayOn reports whether day (in its own location) is the member's
// birthday; a 29 February birthday falls on 28 February in other years.
func (m *Member) BirthdayOn(day time.Time) bool {
	b, err := time.Parse(BirthdayLayout, m.Birthday)
	if err != nil {
		return false
	}
	month, d := b.Month(), b.Day()
	if month == time.February && d == 29 && !isLeap(day.Year()) {
		d = 28
	}
	return day.Month() == month && day.Day() == d
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// Follow returns the follow relation with staffID, or nil.
func (m *Member) Follow(staffID string) *Follow {
	for i := range m.Follows {
		if m.Follows[i].StaffID == staffID {
			return &m.Follows[i]
		}
	}
	return nil
}

// HasActiveFollow reports whether any staff relation still stands.
func (m *Member) HasActiveFollow() bool {
	for _, f := range m.Follows {
		if f.Active() {
			return true
		}
	}
	return false
}

// PrimaryStaff is the most recent staff member the customer still follows, or "".
func (m *Member) PrimaryStaff() string {
	staff := ""
	var at time.Time
	for _, f := range m.Follows {
		if f.Active() && !f.AddedAt.Before(at) {
			staff, at = f.StaffID, f.AddedAt
		}
	}
	return staff
}

// HasTag reports whether the member carries tag name.
func (m *Member) HasTag(name string) bool {
	for _, t := range m.Tags {
		if t == name {
			return true
		}
	}
	return false
}

// AddTag adds name unless present; it reports whether it was added.
func (m *Member) AddTag(name string) bool {
	if name == "" || m.HasTag(name) {
		return false
	}
	m.Tags = append(m.Tags, name)
	return true
}

// RemoveTag removes name; it reports whether it was there.
func (m *Member) RemoveTag(name string) bool {
	for i, t := range m.Tags {
		if t == name {
			m.Tags = append(m.Tags[:i], m.Tags[i+1:]...)
			return true
		}
	}
	return false
}

// InGroup reports whether the member is in customer group chatID.
func (m *Member) InGroup(chatID string) bool {
	for _, g := range m.Groups {
		if g == chatID {
			return true
		}
	}
	return false
}
