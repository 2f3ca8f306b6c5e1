package scenarios

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
)

const profileBase = base + `  画像: [女, 男, 纯茶, 奶茶]
`

func TestProfileFormValidation(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, yaml, want string }{
		{"no fields", `
profile_form: #<-
  title: 完善资料
`, "profile_form.fields: required"},
		{"unknown type", `
profile_form:
  title: 完善资料
  fields:
    - {key: city, label: 城市, type: city} #<-
`, `profile_form.fields[0].type: "city": one of birthday, text, choice, choices`},
		{"undeclared choice tag", `
profile_form:
  title: 完善资料
  fields:
    - key: gender
      label: 性别
      type: choice
      choices:
        - {key: f, label: 女, tag: 女}
        - {key: m, label: 男, tag: 性别男} #<-
`, `profile_form.fields[0].choices[1].tag: tag "性别男" is not declared`},
		{"duplicate field key", `
profile_form:
  title: 完善资料
  fields:
    - {key: city, label: 城市, type: text}
    - {key: city, label: 城市2, type: text} #<-
`, `profile_form.fields[1].key: duplicate field key "city"`},
		{"one choice", `
profile_form:
  title: 完善资料
  fields:
    - key: gender
      label: 性别
      type: choice
      choices: [{key: f, label: 女}] #<-
`, "at least two choices"},
		{"max_chars too big", `
profile_form:
  title: 完善资料
  fields:
    - {key: note, label: 留言, type: text, max_chars: 5000} #<-
`, "profile_form.fields[0].max_chars: between 1 and 1000"},
		{"keywords without the link", `
profile_form:
  title: 完善资料
  keywords: [问卷]
  reply: 点这里填写 #<-
  fields:
    - {key: note, label: 留言, type: text}
`, "profile_form.reply: must contain {{.ProfileLink}}"},
		{"two birthdays", `
profile_form:
  title: 完善资料
  fields:
    - {key: b1, label: 生日, type: birthday}
    - {key: b2, label: 生日2, type: birthday} #<-
`, "only one birthday field"},
		{"bad key", `
profile_form:
  title: 完善资料
  fields:
    - {key: "我的 城市", label: 城市, type: text} #<-
`, "letters, digits, _ or - only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblemAt(t, profileBase+tc.yaml, tc.want)
		})
	}
}

func testForm(t *testing.T) *ProfileForm {
	t.Helper()
	sc, err := LoadBytes("p.yaml", []byte(profileBase+`
profile_form:
  title: 完善资料
  points: 50
  fields:
    - {key: birthday, label: 生日, type: birthday, required: true}
    - {key: city, label: 城市, type: text, max_chars: 5}
    - key: gender
      label: 性别
      type: choice
      choices: [{key: f, label: 女, tag: 女}, {key: m, label: 男, tag: 男}]
    - key: taste
      label: 口味
      type: choices
      choices: [{key: tea, label: 纯茶, tag: 纯茶}, {key: milk, label: 奶茶, tag: 奶茶}, {key: any, label: 都行}]
`))
	if err != nil {
		t.Fatal(err)
	}
	return sc.ProfileForm
}

func TestProfileAnswers(t *testing.T) {
	t.Parallel()
	f := testForm(t)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	type in = map[string][]string
	for _, tc := range []struct {
		name    string
		answers in
		field   string // refused field, "" when accepted
		want    []bot.ProfileAnswer
	}{
		{"full", in{"birthday": {"1990-05-17"}, "city": {" 杭州 "}, "gender": {"f"}, "taste": {"tea", "milk", "tea"}}, "",
			[]bot.ProfileAnswer{{Field: "birthday", Value: "1990-05-17"}, {Field: "city", Value: "杭州"}, {Field: "gender", Value: "f"}, {Field: "taste", Choices: []string{"tea", "milk"}}}},
		{"only required", in{"birthday": {"2000-02-29"}, "city": {""}}, "", []bot.ProfileAnswer{{Field: "birthday", Value: "2000-02-29"}}},
		{"missing required", in{"city": {"杭州"}}, "birthday", nil},
		{"unknown field", in{"birthday": {"1990-05-17"}, "phone": {"123"}}, "phone", nil},
		{"unknown choice", in{"birthday": {"1990-05-17"}, "gender": {"x"}}, "gender", nil},
		{"unknown choice among several", in{"birthday": {"1990-05-17"}, "taste": {"tea", "coffee"}}, "taste", nil},
		{"two values for one choice", in{"birthday": {"1990-05-17"}, "gender": {"f", "m"}}, "gender", nil},
		{"text too long", in{"birthday": {"1990-05-17"}, "city": {"乌鲁木齐市区"}}, "city", nil},
		{"text at the limit", in{"birthday": {"1990-05-17"}, "city": {"乌鲁木齐市"}}, "", []bot.ProfileAnswer{{Field: "birthday", Value: "1990-05-17"}, {Field: "city", Value: "乌鲁木齐市"}}},
		{"not a date", in{"birthday": {"17/05/1990"}}, "birthday", nil},
		{"no such day", in{"birthday": {"1990-02-30"}}, "birthday", nil},
		{"in the future", in{"birthday": {"2030-01-01"}}, "birthday", nil},
		{"before 1900", in{"birthday": {"1899-12-31"}}, "birthday", nil},
		{"bad utf-8", in{"birthday": {"1990-05-17"}, "city": {"\xff\xfe"}}, "city", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ferr := f.Answers(tc.answers, now)
			if tc.field != "" {
				if ferr == nil || ferr.Field != tc.field {
					t.Fatalf("want field %q refused, got %v (answers %v)", tc.field, ferr, got)
				}
				return
			}
			if ferr != nil {
				t.Fatalf("refused: %v", ferr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("answers = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProfileChoiceTags(t *testing.T) {
	t.Parallel()
	f := testForm(t)
	add, remove := f.ChoiceTags([]bot.ProfileAnswer{{Field: "gender", Value: "m"}, {Field: "taste", Choices: []string{"milk", "any"}}})
	slices.Sort(add)
	slices.Sort(remove)
	if fmt.Sprint(add) != "[奶茶 男]" || fmt.Sprint(remove) != "[女 纯茶]" {
		t.Errorf("add %v remove %v", add, remove)
	}
	if got := f.AnswerText(bot.ProfileAnswer{Field: "taste", Choices: []string{"tea", "any"}}); got != "纯茶、都行" {
		t.Errorf("answer text %q", got)
	}
}

func TestDefaultScenarioHasProfileForm(t *testing.T) {
	t.Parallel()
	sc := LoadDefault()
	if sc.ProfileForm == nil || sc.ProfileForm.Field("birthday") == nil || sc.ProfileForm.Points != 50 {
		t.Fatalf("default profile form: %+v", sc.ProfileForm)
	}
}
