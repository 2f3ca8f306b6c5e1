package scenarios

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wecombot/wecombot/bot"
)

// The profile form (问卷调查, 用户画像): a signed H5 questionnaire whose
// answers are stored on the member, whose choices are corp tags and whose
// birthday feeds the birthday right and SOP trigger.

// Profile field types.
const (
	FieldBirthday = "birthday" // a date (YYYY-MM-DD) stored as bot.Member.Birthday
	FieldText     = "text"     // free text, at most max_chars characters
	FieldChoice   = "choice"   // one of choices
	FieldChoices  = "choices"  // any of choices
)

// Defaults and bounds of the profile form.
const (
	// DefaultProfileTextChars is a text field's max_chars when unset.
	DefaultProfileTextChars = 200
	// MaxProfileTextChars is the largest max_chars allowed.
	MaxProfileTextChars = 1000
	// DefaultProfileLinkTTL is how long a member's form link lasts.
	DefaultProfileLinkTTL = 30 * 24 * time.Hour
)

type profileFormSpec struct {
	Pos
	Title    string              `yaml:"title"`
	Intro    string              `yaml:"intro"`
	Keywords []string            `yaml:"keywords"`
	Reply    string              `yaml:"reply"`
	Points   int                 `yaml:"points"`
	Done     string              `yaml:"done"`
	LinkTTL  Duration            `yaml:"link_ttl"`
	Fields   []*profileFieldSpec `yaml:"fields"`
}

type profileFieldSpec struct {
	Pos
	Key      string               `yaml:"key"`
	Label    string               `yaml:"label"`
	Type     string               `yaml:"type"`
	Required bool                 `yaml:"required"`
	MaxChars int                  `yaml:"max_chars"`
	Choices  []*profileChoiceSpec `yaml:"choices"`
}

type profileChoiceSpec struct {
	Pos
	Key   string `yaml:"key"`
	Label string `yaml:"label"`
	Tag   string `yaml:"tag"`
}

// ProfileForm is the compiled profile form.
type ProfileForm struct {
	Pos
	Title, Intro string
	// Keywords (微信客服) send the member her form link with Reply.
	Keywords []string
	Reply    *Template
	// Points are given once, for the first complete submission.
	Points int
	// Done is what the page (and kf, when she submitted there) says after a submission.
	Done    *Template
	LinkTTL time.Duration
	Fields  []*ProfileField
}

// ProfileField is one question.
type ProfileField struct {
	Key, Label, Type string
	Required         bool
	MaxChars         int
	Choices          []*ProfileChoice
}

// ProfileChoice is one answer of a choice field; Tag (optional) is the corp
// tag a member who picks it carries.
type ProfileChoice struct {
	Key, Label, Tag string
}

// Choice returns the field's choice with key, or nil.
func (f *ProfileField) Choice(key string) *ProfileChoice {
	for _, c := range f.Choices {
		if c.Key == key {
			return c
		}
	}
	return nil
}

// IsKeyword reports whether text asks for the form.
func (f *ProfileForm) IsKeyword(text string) bool {
	for _, k := range f.Keywords {
		if strings.Contains(text, k) {
			return true
		}
	}
	return false
}

// FieldError is an answer the form refuses; Field is the field's key.
type FieldError struct {
	Field, Label, Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Reason) }

// Answers validates raw answers (field key → submitted values; a choices
// field may have several) against the form at now and returns them in the
// form's order. Unknown fields, unknown choices, a second value for a
// single-valued field, text over max_chars, a malformed or impossible
// birthday and a missing required answer are refused with the field named.
func (f *ProfileForm) Answers(raw map[string][]string, now time.Time) ([]bot.ProfileAnswer, *FieldError) {
	for k := range raw {
		if f.field(k) == nil {
			return nil, &FieldError{Field: k, Reason: "no such field in the form"}
		}
	}
	var out []bot.ProfileAnswer
	for _, fd := range f.Fields {
		vals := make([]string, 0, len(raw[fd.Key]))
		for _, v := range raw[fd.Key] {
			if v = strings.TrimSpace(v); v != "" {
				vals = append(vals, v)
			}
		}
		bad := func(format string, args ...any) *FieldError {
			return &FieldError{Field: fd.Key, Label: fd.Label, Reason: fmt.Sprintf(format, args...)}
		}
		if len(vals) == 0 {
			if fd.Required {
				return nil, bad("required")
			}
			continue
		}
		if fd.Type != FieldChoices && len(vals) > 1 {
			return nil, bad("one answer only")
		}
		a := bot.ProfileAnswer{Field: fd.Key}
		switch fd.Type {
		case FieldBirthday:
			d, err := time.Parse(bot.BirthdayLayout, vals[0])
			if err != nil {
				return nil, bad("not a date (YYYY-MM-DD): %q", clipRunes(vals[0], 20))
			}
			if d.Year() < 1900 || d.After(now) {
				return nil, bad("%s is not a possible birthday", vals[0])
			}
			a.Value = vals[0]
		case FieldText:
			if !utf8.ValidString(vals[0]) {
				return nil, bad("not valid UTF-8 text")
			}
			if n := utf8.RuneCountInString(vals[0]); n > fd.MaxChars {
				return nil, bad("%d characters; at most %d", n, fd.MaxChars)
			}
			a.Value = vals[0]
		case FieldChoice:
			if fd.Choice(vals[0]) == nil {
				return nil, bad("unknown choice %q", clipRunes(vals[0], 40))
			}
			a.Value = vals[0]
		case FieldChoices:
			for _, v := range vals {
				if fd.Choice(v) == nil {
					return nil, bad("unknown choice %q", clipRunes(v, 40))
				}
				if !slices.Contains(a.Choices, v) {
					a.Choices = append(a.Choices, v)
				}
			}
		}
		out = append(out, a)
	}
	return out, nil
}

func (f *ProfileForm) field(key string) *ProfileField {
	for _, fd := range f.Fields {
		if fd.Key == key {
			return fd
		}
	}
	return nil
}

// Field returns the form's field with key, or nil (nil-safe).
func (f *ProfileForm) Field(key string) *ProfileField {
	if f == nil {
		return nil
	}
	return f.field(key)
}

// ChoiceTags returns the tags the form's choices carry for the member's
// answers (add) and those of the choices she did not pick (remove).
func (f *ProfileForm) ChoiceTags(answers []bot.ProfileAnswer) (add, remove []string) {
	picked := map[string]bool{}
	for _, a := range answers {
		if a.Value != "" {
			picked[a.Field+"\x00"+a.Value] = true
		}
		for _, c := range a.Choices {
			picked[a.Field+"\x00"+c] = true
		}
	}
	for _, fd := range f.Fields {
		for _, c := range fd.Choices {
			if c.Tag == "" {
				continue
			}
			if picked[fd.Key+"\x00"+c.Key] {
				add = append(add, c.Tag)
			} else {
				remove = append(remove, c.Tag)
			}
		}
	}
	// A tag shared by a picked and an unpicked choice stays.
	remove = slices.DeleteFunc(remove, func(t string) bool { return slices.Contains(add, t) })
	return add, remove
}

// AnswerText renders an answer for people (labels, not keys): the console
// and the export show it. Without the form (nil) or the field (since
// removed from it), it shows the stored keys.
func (f *ProfileForm) AnswerText(a bot.ProfileAnswer) string {
	var fd *ProfileField
	if f != nil {
		fd = f.field(a.Field)
	}
	if fd == nil {
		parts := slices.DeleteFunc(append([]string{a.Value}, a.Choices...), func(s string) bool { return s == "" })
		return strings.Join(parts, "、")
	}
	label := func(k string) string {
		if c := fd.Choice(k); c != nil {
			return c.Label
		}
		return k
	}
	switch fd.Type {
	case FieldChoice:
		return label(a.Value)
	case FieldChoices:
		ls := make([]string, len(a.Choices))
		for i, c := range a.Choices {
			ls[i] = label(c)
		}
		return strings.Join(ls, "、")
	}
	return a.Value
}

func clipRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

var profileKey = codePrefix

func (c *compiler) profileForm(s *profileFormSpec) {
	if s == nil {
		return
	}
	f := &ProfileForm{Pos: s.Pos, Title: s.Title, Intro: s.Intro, Points: s.Points, LinkTTL: time.Duration(s.LinkTTL),
		Reply: c.template(s.Pos, "reply", s.Reply), Done: c.template(s.Pos, "done", s.Done)}
	c.required(s.Pos, "title", s.Title, "the form's title (shown on the page)")
	if s.Points < 0 {
		c.ps.at(s.Pos, "points", "must not be negative")
	}
	if !s.has("link_ttl") {
		f.LinkTTL = DefaultProfileLinkTTL
	} else if f.LinkTTL < time.Hour {
		c.ps.at(s.Pos, "link_ttl", "at least 1h: members open the link later")
	}
	f.Keywords = c.keywordList(s.Pos, "keywords", s.Keywords)
	if len(f.Keywords) > 0 && strings.TrimSpace(s.Reply) == "" {
		c.ps.at(s.Pos, "reply", "required with keywords: the kf reply carrying {{.ProfileLink}}")
	} else if len(f.Keywords) > 0 && !strings.Contains(s.Reply, ".ProfileLink") {
		c.ps.at(s.Pos, "reply", "must contain {{.ProfileLink}}, the member's form link")
	}
	if len(s.Fields) == 0 {
		c.ps.at(s.Pos, "fields", "required: at least one question")
	}
	keys := map[string]string{}
	birthdays := 0
	for _, fs := range s.Fields {
		fd := &ProfileField{Key: fs.Key, Label: fs.Label, Type: fs.Type, Required: fs.Required, MaxChars: fs.MaxChars}
		c.required(fs.Pos, "key", fs.Key, "the answer's key (letters, digits, _ or -)")
		if fs.Key != "" && !profileKey.MatchString(fs.Key) {
			c.ps.at(fs.Pos, "key", "%q: letters, digits, _ or - only", fs.Key)
		}
		c.unique(keys, fs.Pos, "key", "field key", fs.Key)
		c.required(fs.Pos, "label", fs.Label, "the question shown to the member")
		switch fs.Type {
		case FieldBirthday:
			if birthdays++; birthdays > 1 {
				c.ps.at(fs.Pos, "type", "only one birthday field per form")
			}
		case FieldText:
			if fd.MaxChars == 0 {
				fd.MaxChars = DefaultProfileTextChars
			}
			if fd.MaxChars < 0 || fd.MaxChars > MaxProfileTextChars {
				c.ps.at(fs.Pos, "max_chars", "between 1 and %d", MaxProfileTextChars)
			}
		case FieldChoice, FieldChoices:
			if len(fs.Choices) < 2 {
				c.ps.at(fs.Pos, "choices", "at least two choices")
			}
		default:
			c.ps.at(fs.Pos, "type", "%q: one of birthday, text, choice, choices", fs.Type)
		}
		if fs.Type != FieldText && fs.MaxChars != 0 {
			c.ps.at(fs.Pos, "max_chars", "only text fields have max_chars")
		}
		if fs.Type != FieldChoice && fs.Type != FieldChoices && len(fs.Choices) > 0 {
			c.ps.at(fs.Pos, "choices", "only choice and choices fields have choices")
		}
		ckeys := map[string]string{}
		for _, cs := range fs.Choices {
			c.required(cs.Pos, "key", cs.Key, "the choice's key")
			if cs.Key != "" && !profileKey.MatchString(cs.Key) {
				c.ps.at(cs.Pos, "key", "%q: letters, digits, _ or - only", cs.Key)
			}
			c.unique(ckeys, cs.Pos, "key", "choice key", cs.Key)
			c.required(cs.Pos, "label", cs.Label, "the answer shown to the member")
			if cs.Tag != "" {
				c.tag(cs.Pos, "tag", cs.Tag)
			}
			fd.Choices = append(fd.Choices, &ProfileChoice{Key: cs.Key, Label: cs.Label, Tag: cs.Tag})
		}
		f.Fields = append(f.Fields, fd)
	}
	c.sc.ProfileForm = f
}
