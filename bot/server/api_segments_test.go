package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// segmentFixture: 12 customers — xhs (even) and douyin (odd) — with
// chayi01 and chayi02; one needs a person, one went silent 20 days ago.
func segmentFixture(t *testing.T) *fixture {
	f := newFixture(t, nil)
	for i := 0; i < 12; i++ {
		state, staff := "xhs", "chayi01"
		if i%2 == 1 {
			state = "douyin"
		}
		if i%3 == 0 {
			staff = "chayi02"
		}
		at := f.now.Add(-time.Duration(i) * time.Hour)
		if i == 4 {
			at = f.now.Add(-20 * 24 * time.Hour)
		}
		f.add(fmt.Sprintf("wm%02d", i), fmt.Sprintf("客户%d", i), state, staff, at)
	}
	return f
}

func TestSegmentsAPI(t *testing.T) {
	t.Parallel()
	f := segmentFixture(t)

	list := f.do("GET", "/api/v1/segments", nil)
	if list.code != 200 || !strings.Contains(list.body, `"小红书新客"`) || !strings.Contains(list.body, `"tags_any":["爱领券"]`) ||
		!strings.Contains(list.body, `"state":"xhs"`) || !strings.Contains(list.body, `"chayi01"`) {
		t.Fatalf("list: %d %s", list.code, list.body)
	}

	// Ad hoc: xhs customers, split by the staff who would send.
	r := f.do("POST", "/api/v1/segments/count", strings.NewReader(`{"channels":["xhs"],"sample":3}`))
	if r.code != 200 {
		t.Fatalf("count: %d %s", r.code, r.body)
	}
	if r.json["total"] != float64(6) || r.json["members_total"] != float64(12) {
		t.Errorf("xhs: total %v of %v, want 6 of 12: %s", r.json["total"], r.json["members_total"], r.body)
	}
	if !strings.Contains(r.body, `{"staff_id":"chayi01","members":4}`) || !strings.Contains(r.body, `{"staff_id":"chayi02","members":2}`) {
		t.Errorf("per-staff split: %s", r.body)
	}
	if sample := r.json["sample"].([]any); len(sample) != 3 || sample[0].(map[string]any)["external_user_id"] != "wm00" {
		t.Errorf("sample: %v", sample)
	}

	// silent_days reads last activity: wm04 added 20 days ago, nothing since.
	r = f.do("POST", "/api/v1/segments/count", strings.NewReader(`{"silent_days":14}`))
	if r.code != 200 || r.json["total"] != float64(1) || !strings.Contains(r.body, `"external_user_id":"wm04"`) {
		t.Errorf("silent: %d %s", r.code, r.body)
	}
	f.kf("wm04", "在吗", f.now)
	if r = f.do("POST", "/api/v1/segments/count", strings.NewReader(`{"silent_days":14}`)); r.json["total"] != float64(1) || r.json["cached"] != true {
		t.Errorf("the same rules within 30 s answer the cached count: %s", r.body)
	}
	if r = f.do("POST", "/api/v1/segments/count?fresh=true", strings.NewReader(`{"silent_days":14}`)); r.json["total"] != float64(0) || r.json["cached"] != false {
		t.Errorf("after a kf message wm04 is no longer silent: %s", r.body)
	}

	// Named, with its members paged.
	r = f.do("GET", "/api/v1/segments/"+urlPath("小红书新客")+"?sample=0", nil)
	if r.code != 200 || r.json["segment"] != "小红书新客" {
		t.Fatalf("named: %d %s", r.code, r.body)
	}
	if r = f.do("GET", "/api/v1/segments/"+urlPath("小红书新客")+"/members?limit=2", nil); r.code != 200 {
		t.Fatalf("members: %d %s", r.code, r.body)
	}

	for _, tc := range []struct {
		name, path, body string
		code             int
		param, detail    string
	}{
		{"unknown field", "/api/v1/segments/count", `{"stages":["aware"],"stagez":["x"]}`, 400, "stagez", "is not a segment rule"},
		{"unknown tag", "/api/v1/segments/count", `{"tags_any":["爱领券","不存在"]}`, 400, "tags_any[1]", `tag "不存在" is not declared`},
		{"unknown channel", "/api/v1/segments/count", `{"channels":["wb"]}`, 400, "channels[0]", `unknown channel "wb"`},
		{"bad duration", "/api/v1/segments/count", `{"added_within":"a month"}`, 400, "added_within", "want a duration"},
		{"wrong type", "/api/v1/segments/count", `{"silent_days":"14"}`, 400, "silent_days", "want int"},
		{"not an object", "/api/v1/segments/count", `[1]`, 400, "body", "JSON object"},
		{"sample too big", "/api/v1/segments/count", `{"sample":500}`, 400, "sample", "0 to 50"},
		{"unknown segment", "/api/v1/segments/nope", "", 404, "", `no segment named "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if tc.body == "" {
				method = "GET"
			}
			r := f.do(method, tc.path, strings.NewReader(tc.body))
			if r.code != tc.code || r.hdr.Get("Content-Type") != problemContentType {
				t.Fatalf("%d %s: %s", r.code, r.hdr.Get("Content-Type"), r.body)
			}
			if r.json["param"] != nil && r.json["param"] != tc.param || tc.param != "" && r.json["param"] != tc.param {
				t.Errorf("param %v, want %q: %s", r.json["param"], tc.param, r.body)
			}
			if d, _ := r.json["detail"].(string); !strings.Contains(d, tc.detail) {
				t.Errorf("detail lacks %q: %s", tc.detail, r.body)
			}
		})
	}
	if r := f.do("GET", "/api/v1/segments?x=1", nil); r.code != http.StatusBadRequest {
		t.Errorf("unknown query parameter: %d", r.code)
	}
}

func urlPath(s string) string { return strings.ReplaceAll(s, " ", "%20") }
