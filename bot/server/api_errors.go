package server

import (
	"context"
	"encoding/json"
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

// errorBody is the one error shape of /api/v1: RFC 9457 problem details
// (application/problem+json) — type, title, status, detail, instance — with
// wecombot's extension members: code (stable, the last part of type), param
// (the bad parameter or field), problems (a scenario's file:line list), and
// error (the same text as detail, kept for clients of the earlier shape).
type errorBody struct {
	// Type is "urn:wecombot:problem:" + Code (docs/api.md lists the codes).
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	// Instance is the request's path.
	Instance string `json:"instance,omitempty"`
	Code     string `json:"code"`
	Error    string `json:"error"`
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

// problemTypePrefix starts every problem's type URI.
const problemTypePrefix = "urn:wecombot:problem:"

// problemContentType is the media type of every /api/v1 error (RFC 9457).
const problemContentType = "application/problem+json"

// finish fills the problem fields derived from status, code and message.
func (b *errorBody) finish() {
	b.Type = problemTypePrefix + b.Code
	b.Title = http.StatusText(b.Status)
	if b.Detail == "" {
		b.Detail = b.Error
	}
	b.Error = b.Detail
}

// writeProblem writes body as application/problem+json.
func writeProblem(w http.ResponseWriter, body errorBody) {
	body.finish()
	w.Header().Set("Content-Type", problemContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(body.Status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(body)
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
	body.Instance = r.URL.Path
	writeProblem(w, body)
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

// Pagination, one style for every list of /api/v1: ?cursor=&limit=; an
// answer carries next_cursor only when another page may follow (absent on
// the last page). A cursor is opaque to clients: pass back what came.

// seqCursor is the cursor after the log entry with sequence number seq.
func seqCursor(seq uint64) string { return strconv.FormatUint(seq, 10) }

// seqCursor reads ?cursor= of a list ordered by sequence number (events,
// outbox): 0, the start, when absent.
func (q *query) seqCursor() uint64 {
	v := q.str("cursor", 20)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		q.fail(badParam("cursor", "must be a next_cursor from a previous page (or absent for the first page)"))
		return 0
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
	writeProblem(w, errorBody{Error: msg, Code: name, Status: code})
}

// apiNoRoute answers a request under /api/ that no route takes — 404, or
// 405 with Allow when the path exists for other methods — as a problem, not
// the mux's text/plain. mux is the server's mux; its own answer is captured
// for the status and Allow header.
func apiNoRoute(mux http.Handler, w http.ResponseWriter, r *http.Request) {
	rec := &headerRecorder{header: http.Header{}}
	mux.ServeHTTP(rec, r)
	body := errorBody{Status: rec.status}
	switch rec.status {
	case http.StatusMethodNotAllowed:
		allow := rec.header.Get("Allow")
		w.Header().Set("Allow", allow)
		body.Code, body.Error = "method_not_allowed", fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow)
	default:
		body.Status, body.Code, body.Error = http.StatusNotFound, "no_route", fmt.Sprintf("no API route %s %s (the routes are listed in /api/v1/openapi.json)", r.Method, r.URL.Path)
	}
	body.Instance = r.URL.Path
	writeProblem(w, body)
}

// headerRecorder keeps a response's status and headers and drops its body.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return len(b), nil
}
func (h *headerRecorder) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}
