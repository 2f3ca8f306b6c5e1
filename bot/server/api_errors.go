package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// Errors the admin API returns besides the storage's domain errors.
var (
	// errSandboxOnly refuses operator simulation outside sandbox mode.
	errSandboxOnly = errors.New("only available in sandbox mode (unset WECOM_SECRET to run a sandbox)")
	// errNotConfigured answers features the running binary was started without.
	errNotConfigured = errors.New("not configured in this server")
	// errUnauthorized and errLoopbackOnly guard the admin API.
	errUnauthorized = errors.New("missing or wrong admin token")
	errLoopbackOnly = errors.New("admin API is only on loopback (not through a proxy) until WECOMBOT_ADMIN_TOKEN is set")
)

// paramError is a bad query parameter or request field; the body names it.
type paramError struct {
	// Where is "query parameter", "field" (of a JSON body) or "" (the body itself).
	Where string
	Param string
	Msg   string
}

func (e *paramError) Error() string {
	if e.Where == "" {
		return fmt.Sprintf("request %s %s", e.Param, e.Msg)
	}
	return fmt.Sprintf("%s %s %s", e.Where, e.Param, e.Msg)
}

// badParam names a bad query parameter ("body" names the request body).
func badParam(name, format string, args ...any) error {
	where := "query parameter"
	if name == "body" {
		where = ""
	}
	return &paramError{Where: where, Param: name, Msg: fmt.Sprintf(format, args...)}
}

// badField names a bad field of a JSON request body.
func badField(name, format string, args ...any) error {
	return &paramError{Where: "field", Param: name, Msg: fmt.Sprintf(format, args...)}
}

// errorTable maps domain errors to HTTP statuses and a stable code for the
// JSON body: the one place the API decides what an error means to a client.
// The first entry whose target matches (errors.Is) wins; typed errors
// (paramError, scenarios.ValidationError) are matched in apiError.
var errorTable = []struct {
	target error
	status int
	code   string
}{
	{bot.ErrNotFound, http.StatusNotFound, "not_found"},
	{bot.ErrConflict, http.StatusConflict, "conflict"},
	{errUnauthorized, http.StatusUnauthorized, "unauthorized"},
	{errLoopbackOnly, http.StatusForbidden, "loopback_only"},
	{errSandboxOnly, http.StatusForbidden, "sandbox_only"},
	{errNotConfigured, http.StatusNotImplemented, "not_configured"},
	{bot.ErrStoreLocked, http.StatusServiceUnavailable, "store_locked"},
	{context.DeadlineExceeded, http.StatusGatewayTimeout, "timeout"},
	{context.Canceled, http.StatusServiceUnavailable, "canceled"},
}

// errorBody is the JSON every error answer carries.
type errorBody struct {
	Error  string `json:"error"`
	Code   string `json:"code"`
	Status int    `json:"status"`
	// Param names the bad query parameter or field (400).
	Param string `json:"param,omitempty"`
	// Problems are a scenario's validation problems, each at file:line (422).
	Problems []problemJSON `json:"problems,omitempty"`
}

type problemJSON struct {
	File  string `json:"file"`
	Line  int    `json:"line,omitempty"`
	Field string `json:"field,omitempty"`
	Msg   string `json:"message"`
	Text  string `json:"text"`
}

func problemsJSON(ve scenarios.ValidationError) []problemJSON {
	out := make([]problemJSON, len(ve))
	for i, p := range ve {
		out[i] = problemJSON{File: p.File, Line: p.Line, Field: p.Field, Msg: p.Msg, Text: p.Error()}
	}
	return out
}

// apiError turns err into its status and body.
func apiError(err error) (int, errorBody) {
	body := errorBody{Error: err.Error(), Code: "internal", Status: http.StatusInternalServerError}
	var pe *paramError
	var fe *bot.FieldError
	var ve scenarios.ValidationError
	switch {
	case errors.As(err, &pe):
		body.Status, body.Code, body.Param = http.StatusBadRequest, "bad_parameter", pe.Param
	case errors.As(err, &fe):
		// An input field out of bounds (too long an id, an amount out of
		// range): the request can never succeed as it is.
		body.Status, body.Code, body.Param, body.Error = http.StatusBadRequest, "bad_parameter", fe.Field, fe.Error()
	case errors.As(err, &ve):
		body.Status, body.Code, body.Problems = http.StatusUnprocessableEntity, "invalid_scenario", problemsJSON(ve)
	default:
		for _, e := range errorTable {
			if errors.Is(err, e.target) {
				body.Status, body.Code = e.status, e.code
				break
			}
		}
	}
	return body.Status, body
}

// errorStatus is apiError's status alone.
func errorStatus(err error) int {
	code, _ := apiError(err)
	return code
}

// fail answers an API request with err mapped through errorTable; server
// errors are logged (they are ours to fix), client errors are not.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, body := apiError(err)
	if code >= 500 {
		s.log.Error().Err(err).Str("path", r.URL.Path).Msg("admin API error")
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wecombot"`)
	}
	writeJSON(w, code, body)
}

// query reads and validates query parameters. The first problem sticks in
// err; handlers check it once after reading every parameter.
type query struct {
	v   url.Values
	err error
}

// newQuery rejects parameters the endpoint does not know, naming them.
func newQuery(r *http.Request, known ...string) *query {
	q := &query{v: r.URL.Query()}
	for name := range q.v {
		ok := false
		for _, k := range known {
			if name == k {
				ok = true
				break
			}
		}
		if !ok {
			q.err = badParam(name, "is not known here (known: %s)", strings.Join(known, ", "))
			break
		}
	}
	return q
}

func (q *query) fail(err error) {
	if q.err == nil {
		q.err = err
	}
}

// str returns a text parameter of at most maxLen bytes.
func (q *query) str(name string, maxLen int) string {
	v := q.v.Get(name)
	if len(v) > maxLen {
		q.fail(badParam(name, "is longer than %d bytes", maxLen))
		return ""
	}
	if len(q.v[name]) > 1 {
		q.fail(badParam(name, "is given more than once"))
	}
	return v
}

// int returns a whole-number parameter in [lo, hi], def when absent.
func (q *query) int(name string, def, lo, hi int) int {
	v := q.str(name, 20)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		q.fail(badParam(name, "must be a whole number from %d to %d", lo, hi))
		return def
	}
	return n
}

// oneOf returns a parameter that must be empty or one of allowed.
func (q *query) oneOf(name string, allowed ...string) string {
	v := q.str(name, 64)
	if v == "" {
		return ""
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	q.fail(badParam(name, "must be one of %s", strings.Join(allowed, ", ")))
	return ""
}

// boolean returns a tri-state flag: nil when absent.
func (q *query) boolean(name string) *bool {
	switch q.str(name, 8) {
	case "":
		return nil
	case "true", "1", "yes":
		t := true
		return &t
	case "false", "0", "no":
		f := false
		return &f
	}
	q.fail(badParam(name, "must be true or false"))
	return nil
}

// writeError answers with a status and message chosen by the caller, in the
// same JSON shape as fail (for handlers that decide the status themselves).
func writeError(w http.ResponseWriter, code int, msg string) {
	name := "internal"
	for _, e := range errorTable {
		if e.status == code {
			name = e.code
			break
		}
	}
	if code == http.StatusBadRequest {
		name = "bad_request"
	}
	writeJSON(w, code, errorBody{Error: msg, Code: name, Status: code})
}
