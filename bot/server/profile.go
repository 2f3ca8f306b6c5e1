package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/scenarios"
)

// Members' profile form (问卷): GET /profile?t=TOKEN shows the scenario's
// questionnaire with her current answers; POST /profile validates the
// answers against the form (a refusal names the field and changes nothing),
// appends a profile.submit event and waits briefly for the engine's answer.
// PUT /api/v1/members/{id}/profile is the operator's way to the same event.

// profileMaxBody bounds a form post: 1,000-character texts in a few fields.
const profileMaxBody = 64 << 10

var profileTmpl = template.Must(template.New("profile").Parse(`<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font-family:-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;background:#f6f3ea;color:#2d2a24;margin:0;padding:16px}
main{max-width:420px;margin:0 auto;background:#fff;border-radius:16px;padding:20px;box-shadow:0 2px 12px rgba(0,0,0,.06)}
h1{font-size:20px;margin:0 0 4px}.sub{color:#8a8272;font-size:13px;margin:0 0 16px;white-space:pre-wrap}
.msg{background:#eef5e6;border-radius:10px;padding:12px;margin:0 0 16px;white-space:pre-wrap}
.msg.err{background:#fdecea;color:#a12a1c}
fieldset{border:0;margin:0 0 16px;padding:0;min-width:0}legend{padding:0}legend,label.q{display:block;font-weight:600;margin:0 0 8px;font-size:15px}
.req{color:#c0392b;margin-left:2px}.bad legend,.bad label.q{color:#a12a1c}.why{color:#a12a1c;font-size:13px;margin:4px 0 0}
input[type=date],input[type=text],textarea{box-sizing:border-box;width:100%;padding:10px;border:1px solid #d8d2c4;border-radius:10px;font-size:16px;font-family:inherit;background:#fff}
textarea{min-height:88px}.opts{display:flex;flex-wrap:wrap;gap:8px}
.opts label{display:flex;align-items:center;gap:6px;background:#f6f3ea;border-radius:18px;padding:8px 12px;font-size:15px}
button{width:100%;padding:14px;border:0;border-radius:12px;background:#7a9a5a;color:#fff;font-size:17px}
</style></head><body><main>
<h1>{{.Title}}</h1>
{{if .Intro}}<p class="sub">{{.Intro}}</p>{{end}}
{{if .Message}}<p class="msg{{if .Error}} err{{end}}" role="{{if .Error}}alert{{else}}status{{end}}">{{.Message}}</p>{{end}}
{{if .Token}}<form method="post" action="/profile"><input type="hidden" name="t" value="{{.Token}}">
{{range .Fields}}<fieldset{{if .Why}} class="bad"{{end}}>
{{if or (eq .Type "choice") (eq .Type "choices")}}<legend>{{.Label}}{{if .Required}}<span class="req">*</span>{{end}}</legend>
<div class="opts">{{$f := .}}{{range .Choices}}<label><input type="{{if eq $f.Type "choice"}}radio{{else}}checkbox{{end}}" name="f.{{$f.Key}}" value="{{.Key}}"{{if .On}} checked{{end}}>{{.Label}}</label>{{end}}</div>
{{else}}<label class="q" for="f-{{.Key}}">{{.Label}}{{if .Required}}<span class="req">*</span>{{end}}</label>
{{if eq .Type "birthday"}}<input type="date" id="f-{{.Key}}" name="f.{{.Key}}" value="{{.Value}}" max="{{$.Today}}"{{if .Required}} required{{end}}>
{{else if gt .MaxChars 60}}<textarea id="f-{{.Key}}" name="f.{{.Key}}" maxlength="{{.MaxChars}}"{{if .Required}} required{{end}}>{{.Value}}</textarea>
{{else}}<input type="text" id="f-{{.Key}}" name="f.{{.Key}}" value="{{.Value}}" maxlength="{{.MaxChars}}"{{if .Required}} required{{end}}>{{end}}{{end}}
{{if .Why}}<p class="why">{{.Why}}</p>{{end}}</fieldset>
{{end}}<button type="submit">{{if .Answered}}更新资料{{else}}提交{{end}}</button></form>{{end}}
</main></body></html>
`))

type profileChoiceView struct {
	Key, Label string
	On         bool
}

type profileFieldView struct {
	Key, Label, Type, Value, Why string
	Required                     bool
	MaxChars                     int
	Choices                      []profileChoiceView
}

type profileView struct {
	Title, Intro, Message, Token, Today string
	Error, Answered                     bool
	Fields                              []profileFieldView
}

func (s *Server) profileHTML(w http.ResponseWriter, code int, v profileView) {
	h5Headers(w, code)
	if err := profileTmpl.Execute(w, v); err != nil {
		s.log.Warn().Err(err).Msg("render profile page")
	}
}

// profileLink verifies a form link and loads the form and member; on
// failure it has answered with a friendly page.
func (s *Server) profileLink(w http.ResponseWriter, r *http.Request, token string) (*bot.Member, *scenarios.ProfileForm, bool) {
	if s.o.Links == nil || s.o.Scenario == nil || s.o.Scenario() == nil {
		s.profileHTML(w, http.StatusServiceUnavailable, profileView{Title: "完善资料", Message: "页面暂时不可用，请稍后再试。", Error: true})
		return nil, nil, false
	}
	member, _, err := s.o.Links.Verify(engine.ProfilePurpose, token)
	switch {
	case errors.Is(err, signlink.ErrExpired):
		s.profileHTML(w, http.StatusGone, profileView{Title: "链接已过期", Message: "这个链接已经过期啦，请向客服重新获取填写链接。", Error: true})
		return nil, nil, false
	case err != nil:
		s.profileHTML(w, http.StatusForbidden, profileView{Title: "链接无效", Message: "这个链接无效，请使用客服发给你的链接。", Error: true})
		return nil, nil, false
	}
	form := s.o.Scenario().ProfileForm
	if form == nil {
		s.profileHTML(w, http.StatusNotFound, profileView{Title: "完善资料", Message: "资料填写活动已结束，感谢关注～"})
		return nil, nil, false
	}
	var m *bot.Member
	err = s.o.Store.View(r.Context(), func(tx bot.Tx) (err error) { m, err = tx.Member(member); return err })
	if errors.Is(err, bot.ErrNotFound) {
		s.profileHTML(w, http.StatusNotFound, profileView{Title: form.Title, Message: "没有找到你的会员信息，请先添加客服。", Error: true})
		return nil, nil, false
	} else if err != nil {
		s.log.Error().Err(err).Msg("profile page")
		s.profileHTML(w, http.StatusInternalServerError, profileView{Title: form.Title, Message: "出了点问题，请稍后再试。", Error: true})
		return nil, nil, false
	}
	return m, form, true
}

// profilePageView shows the form with values (the submitted ones after a
// refusal, else her stored answers).
func (s *Server) profilePageView(form *scenarios.ProfileForm, m *bot.Member, token string, values map[string][]string) profileView {
	v := profileView{Title: form.Title, Intro: form.Intro, Token: token, Answered: m.Profile != nil,
		Today: s.o.Now().In(s.o.Scenario().Brand.Zone).Format(bot.BirthdayLayout)}
	if values == nil {
		values = map[string][]string{}
		if m.Profile != nil {
			for _, a := range m.Profile.Answers {
				values[a.Field] = append([]string{a.Value}, a.Choices...)
			}
		}
	}
	for _, fd := range form.Fields {
		fv := profileFieldView{Key: fd.Key, Label: fd.Label, Type: fd.Type, Required: fd.Required, MaxChars: fd.MaxChars}
		if vals := values[fd.Key]; len(vals) > 0 {
			fv.Value = vals[0]
		}
		for _, c := range fd.Choices {
			fv.Choices = append(fv.Choices, profileChoiceView{Key: c.Key, Label: c.Label, On: slices.Contains(values[fd.Key], c.Key)})
		}
		v.Fields = append(v.Fields, fv)
	}
	return v
}

// profilePage answers GET /profile?t=TOKEN.
func (s *Server) profilePage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("t")
	m, form, ok := s.profileLink(w, r, token)
	if !ok {
		return
	}
	s.profileHTML(w, http.StatusOK, s.profilePageView(form, m, token, nil))
}

// profilePost answers POST /profile: fields are f.<key> (a choices field
// repeats).
func (s *Server) profilePost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, profileMaxBody)
	if err := r.ParseForm(); err != nil {
		s.profileHTML(w, http.StatusRequestEntityTooLarge, profileView{Title: "完善资料", Message: "提交的内容太长了，请精简后再试。", Error: true})
		return
	}
	token := r.PostFormValue("t")
	m, form, ok := s.profileLink(w, r, token)
	if !ok {
		return
	}
	answers := map[string][]string{}
	for k, vs := range r.PostForm {
		if name, isField := cutPrefix(k, "f."); isField {
			answers[name] = vs
		}
	}
	if _, ferr := form.Answers(answers, s.o.Now()); ferr != nil {
		v := s.profilePageView(form, m, token, answers)
		v.Error, v.Message = true, "请检查「"+fieldLabel(ferr)+"」："+profileReasonZh(form, ferr)
		for i := range v.Fields {
			if v.Fields[i].Key == ferr.Field {
				v.Fields[i].Why = profileReasonZh(form, ferr)
			}
		}
		s.profileHTML(w, http.StatusBadRequest, v)
		return
	}
	text, err := s.submitProfile(r.Context(), m.ExternalUserID, answers, "h5")
	if err != nil {
		s.log.Error().Err(err).Msg("profile submit")
		s.profileHTML(w, http.StatusInternalServerError, profileView{Title: form.Title, Message: "出了点问题，请稍后再试。", Error: true})
		return
	}
	if err := s.o.Store.View(r.Context(), func(tx bot.Tx) (err error) { m, err = tx.Member(m.ExternalUserID); return err }); err != nil {
		s.log.Warn().Err(err).Msg("reload member after profile submit")
	}
	v := s.profilePageView(form, m, token, nil)
	v.Message = text
	s.profileHTML(w, http.StatusOK, v)
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return "", false
}

func fieldLabel(e *scenarios.FieldError) string {
	if e.Label != "" {
		return e.Label
	}
	return e.Field
}

// profileReasonZh says, for the member, why an answer was refused.
func profileReasonZh(form *scenarios.ProfileForm, e *scenarios.FieldError) string {
	fd := form.Field(e.Field)
	switch {
	case fd == nil:
		return "表单里没有这一项，请刷新页面后重新填写"
	case e.Reason == "required":
		return "这一项必填"
	case fd.Type == scenarios.FieldText:
		return fmt.Sprintf("最多 %d 个字", fd.MaxChars)
	case fd.Type == scenarios.FieldBirthday:
		return "请选择一个有效的日期"
	}
	return "请从给出的选项中选择"
}

// submitProfile appends the submission and waits briefly for the engine's
// answer (a placeholder when it takes longer).
func (s *Server) submitProfile(ctx context.Context, member string, answers map[string][]string, source string) (string, error) {
	raw, err := json.Marshal(answers)
	if err != nil {
		return "", err
	}
	now := s.o.Now()
	ev := &bot.Event{Type: engine.EventProfileSubmit, Source: source, ExternalUserID: member, At: now, ReceivedAt: now,
		DedupeKey: engine.ProfileDedupeKey(member, answers), Data: map[string]string{engine.DataProfileAnswers: string(raw)}}
	if _, err := s.appendEvent(ctx, ev); err != nil {
		return "", fmt.Errorf("append profile: %w", err)
	}
	text, found := s.waitCheckinResult(ctx, ev.DedupeKey)
	if !found {
		text = "已收到你的资料，正在保存，稍后刷新本页查看～"
	}
	return text, nil
}

// profileRequest is PUT /api/v1/members/{external_userid}/profile's body:
// each answer a string or a list of strings (a choices field).
type profileRequest struct {
	Answers map[string]json.RawMessage `json:"answers"`
}

// apiMemberProfile records a member's answers on her behalf (an operator
// who asked her by phone, a store clerk): the same event and rules as her
// own submission, points once.
func (s *Server) apiMemberProfile(w http.ResponseWriter, r *http.Request) {
	sc := s.scenarioOr503(w)
	if sc == nil {
		return
	}
	if sc.ProfileForm == nil {
		s.fail(w, r, fmt.Errorf("profile form: %w (add a profile_form section to the scenario)", errNotConfigured))
		return
	}
	var req profileRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, profileMaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Answers == nil {
		s.fail(w, r, badParam("body", `must be {"answers": {"<field key>": "value" or ["choice", …]}}`))
		return
	}
	answers := map[string][]string{}
	for k, raw := range req.Answers {
		var one string
		var many []string
		switch {
		case json.Unmarshal(raw, &one) == nil:
			answers[k] = []string{one}
		case json.Unmarshal(raw, &many) == nil:
			answers[k] = many
		default:
			s.fail(w, r, badField("answers."+k, "must be a string or a list of strings"))
			return
		}
	}
	if _, ferr := sc.ProfileForm.Answers(answers, s.o.Now()); ferr != nil {
		s.fail(w, r, badField("answers."+ferr.Field, "%s", ferr.Reason))
		return
	}
	member := r.PathValue("external_userid")
	if err := s.o.Store.View(r.Context(), func(tx bot.Tx) error { _, err := tx.Member(member); return err }); err != nil {
		s.fail(w, r, fmt.Errorf("member %q: %w", member, err))
		return
	}
	text, err := s.submitProfile(r.Context(), member, answers, bot.SourceOperator)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"result": text})
}

// profileAnswerRow is one answer as the console shows it.
type profileAnswerRow struct {
	Field  string `json:"field"`
	Label  string `json:"label"`
	Answer string `json:"answer"`
}

// profileDetailView is the member detail's profile form section: nil
// answers until she filled the form in.
type profileDetailView struct {
	Form        string             `json:"form,omitempty"`
	Birthday    string             `json:"birthday,omitempty"`
	Answers     []profileAnswerRow `json:"answers"`
	CompletedAt time.Time          `json:"completed_at,omitzero"`
	UpdatedAt   time.Time          `json:"updated_at,omitzero"`
}

// profileDetail labels her answers with the form in force (answers to
// questions since removed keep their keys as labels).
func (s *Server) profileDetail(m *bot.Member) profileDetailView {
	v := profileDetailView{Birthday: m.Birthday}
	if m.Profile == nil {
		return v
	}
	var form *scenarios.ProfileForm
	if s.o.Scenario != nil && s.o.Scenario() != nil {
		form = s.o.Scenario().ProfileForm
	}
	v.Form, v.CompletedAt, v.UpdatedAt, v.Answers = m.Profile.Form, m.Profile.CompletedAt, m.Profile.UpdatedAt, []profileAnswerRow{}
	for _, a := range m.Profile.Answers {
		row := profileAnswerRow{Field: a.Field, Label: a.Field, Answer: form.AnswerText(a)}
		if fd := form.Field(a.Field); fd != nil {
			if fd.Type == scenarios.FieldBirthday {
				continue // shown as the birthday
			}
			row.Label = fd.Label
		}
		v.Answers = append(v.Answers, row)
	}
	return v
}
