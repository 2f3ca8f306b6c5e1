package server

import (
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestOpenAPICoversRoutes: /api/v1/openapi.json is an OpenAPI 3.1 document
// with exactly the /api/v1 routes of the route table — a route added without
// its note, or a note left for a route that is gone, fails here — and each
// GET's query parameters are the ones the handler accepts (its 400 for an
// unknown parameter lists them).
func TestOpenAPICoversRoutes(t *testing.T) {
	f := newFixture(t, nil)
	r := f.do("GET", "/api/v1/openapi.json", nil)
	if r.code != 200 || r.json["openapi"] != "3.1.0" {
		t.Fatalf("openapi.json: %d %.300s", r.code, r.body)
	}
	paths := r.json["paths"].(map[string]any)
	inSpec := map[string]map[string]any{}
	for path, ops := range paths {
		for method, op := range ops.(map[string]any) {
			inSpec[strings.ToUpper(method)+" "+path] = op.(map[string]any)
		}
	}
	routes := map[string]bool{}
	for _, rt := range f.s.Routes() {
		if _, path, _ := strings.Cut(rt.Pattern, " "); !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		routes[rt.Pattern] = true
		op, ok := inSpec[rt.Pattern]
		if !ok {
			t.Errorf("route %s is missing from openapi.json", rt.Pattern)
			continue
		}
		if op["summary"] == "undocumented" {
			t.Errorf("route %s has no note in apiDocs (bot/server/openapi.go)", rt.Pattern)
		}
		if _, ok := op["responses"].(map[string]any)["4XX"]; !ok {
			t.Errorf("%s: no problem+json error response", rt.Pattern)
		}
	}
	for pattern := range inSpec {
		if !routes[pattern] {
			t.Errorf("openapi.json has %s, which no route serves", pattern)
		}
	}
	for pattern := range apiDocs {
		if !routes[pattern] {
			t.Errorf("apiDocs has a note for %s, which is not a route", pattern)
		}
	}
	if len(routes) < 20 {
		t.Fatalf("only %d /api/v1 routes found", len(routes))
	}

	// Query parameters: the handler's own list, from its answer to an
	// unknown parameter, against the document's.
	known := regexp.MustCompile(`known: ([a-z_, ]*)\)`)
	checked := 0
	for pattern, op := range inSpec {
		method, path, _ := strings.Cut(pattern, " ")
		if method != "GET" || strings.Contains(path, "{") {
			continue
		}
		resp := f.do(method, path+"?zz_unknown=1", nil)
		if resp.code != http.StatusBadRequest || resp.json["param"] != "zz_unknown" {
			continue // this handler takes no query parameters it checks
		}
		m := known.FindStringSubmatch(resp.json["detail"].(string))
		if m == nil {
			t.Errorf("%s: 400 doesn't list the known parameters: %s", pattern, resp.body)
			continue
		}
		var want []string
		for _, p := range strings.Split(m[1], ",") {
			if p = strings.TrimSpace(p); p != "" {
				want = append(want, p)
			}
		}
		var got []string
		params, _ := op["parameters"].([]any)
		for _, p := range params {
			if p := p.(map[string]any); p["in"] == "query" {
				got = append(got, p["name"].(string))
			}
		}
		sort.Strings(want)
		sort.Strings(got)
		if !slices.Equal(want, got) {
			t.Errorf("%s: handler takes query %v, openapi.json says %v", pattern, want, got)
		}
		checked++
	}
	if checked < 5 {
		t.Errorf("only %d routes had their query parameters checked", checked)
	}
}

// TestAPIErrorsAreProblems: every /api/v1 error — a handler's 400/404, the
// auth guard's 401, and the mux's own 404 and 405 — is one shape,
// application/problem+json (RFC 9457) with type, title, status, detail and
// code; outside /api/ the mux's answers are unchanged.
func TestAPIErrorsAreProblems(t *testing.T) {
	f := newFixture(t, nil)
	authed := newFixture(t, func(o *Options) { o.AdminToken = "s3cret-token" })
	cases := []struct {
		f      *fixture
		method string
		path   string
		status int
		code   string
	}{
		{f, "GET", "/api/v1/nope", 404, "no_route"},
		{f, "GET", "/api/v2/status", 404, "no_route"},
		{f, "POST", "/api/v1/status", 405, "method_not_allowed"},
		{f, "DELETE", "/api/v1/members/wm1", 405, "method_not_allowed"},
		{f, "GET", "/api/v1/members/wm_nobody", 404, "not_found"},
		{f, "GET", "/api/v1/events?limit=0", 400, "bad_parameter"},
		{f, "POST", "/api/v1/outbox/abc/retry", 400, ""},
		{authed, "GET", "/api/v1/status", 401, "unauthorized"},
	}
	for _, tc := range cases {
		r := tc.f.do(tc.method, tc.path, nil)
		if r.code != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, r.code, r.body, tc.status)
			continue
		}
		if ct := r.hdr.Get("Content-Type"); ct != problemContentType {
			t.Errorf("%s %s: Content-Type %q, want %s", tc.method, tc.path, ct, problemContentType)
		}
		for _, field := range []string{"type", "title", "detail", "code"} {
			if s, _ := r.json[field].(string); s == "" {
				t.Errorf("%s %s: problem lacks %s: %s", tc.method, tc.path, field, r.body)
			}
		}
		if r.json["status"] != float64(tc.status) || r.json["instance"] != strings.Split(tc.path, "?")[0] {
			t.Errorf("%s %s: status/instance: %s", tc.method, tc.path, r.body)
		}
		if tc.code != "" && (r.json["code"] != tc.code || r.json["type"] != problemTypePrefix+tc.code) {
			t.Errorf("%s %s: code %v type %v, want %s", tc.method, tc.path, r.json["code"], r.json["type"], tc.code)
		}
		if r.json["error"] != r.json["detail"] {
			t.Errorf("%s %s: error and detail differ: %s", tc.method, tc.path, r.body)
		}
		if tc.status == 405 && r.hdr.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
	}
	// Not the API: the page routes keep the mux's plain answers.
	if r := f.do("GET", "/no-such-page", nil); r.code != 404 || strings.Contains(r.hdr.Get("Content-Type"), "problem") {
		t.Errorf("non-API 404: %d %s", r.code, r.hdr.Get("Content-Type"))
	}
}
