package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/segments"
	"github.com/wecombot/wecombot/scenarios"
)

// Segments (客户分群): the scenario's named segments and ad-hoc filters,
// counted over the member store by bot/segments (short read transactions,
// so a count over a million members never holds up callbacks or the
// engine). One count runs at a time (segmentScans); a request whose client
// went away (the console's builder cancels the previous count as the
// operator types) stops at the next page.

// segmentScan bounds concurrent segment scans to one per server.
var segmentScan = make(chan struct{}, 1)

// segmentCacheTTL is how long a count answers again for the same rules: the
// console asks for the named segments' counts on every visit and the
// builder for the same rules as the operator toggles back and forth, and at
// a million members a count reads every member.
const segmentCacheTTL = 30 * time.Second

// segmentCache holds recent counts by rules and sample size.
type segmentCache struct {
	mu      sync.Mutex
	entries map[string]cachedCount
}

type cachedCount struct {
	res segments.Result
	at  time.Time
}

var counts = &segmentCache{entries: map[string]cachedCount{}}

func (c *segmentCache) get(key string, now time.Time) (segments.Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || now.Sub(e.at) > segmentCacheTTL || now.Before(e.at) {
		return segments.Result{}, false
	}
	return e.res, true
}

func (c *segmentCache) put(key string, res segments.Result, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= 64 {
		for k, e := range c.entries {
			if now.Sub(e.at) > segmentCacheTTL || len(c.entries) >= 64 {
				delete(c.entries, k)
			}
		}
	}
	c.entries[key] = cachedCount{res: res, at: now}
}

// maxSegmentSample bounds the sample members a count answers.
const maxSegmentSample = 50

// segmentView is a named segment in the list.
type segmentView struct {
	Name        string                  `json:"name"`
	Description string                  `json:"description,omitempty"`
	Filter      scenarios.SegmentFilter `json:"filter"`
	File        string                  `json:"file,omitempty"`
	Line        int                     `json:"line,omitempty"`
}

// segmentCatalog is what the console's builder offers to pick from.
type segmentCatalog struct {
	Stages   []stageOption   `json:"stages"`
	Channels []channelOption `json:"channels"`
	Tags     []tagGroupView  `json:"tags"`
	Levels   []string        `json:"levels"`
	Staff    []string        `json:"staff"`
	Fields   []string        `json:"fields"`
}

type stageOption struct {
	Stage bot.Stage `json:"stage"`
	Name  string    `json:"name"`
}

type channelOption struct {
	State string `json:"state"`
	Name  string `json:"name"`
}

type tagGroupView struct {
	Group string   `json:"group"`
	Tags  []string `json:"tags"`
}

// segmentFields are the filter's JSON field names (the body's known keys).
var segmentFields = func() []string {
	var out []string
	t := reflect.TypeFor[scenarios.SegmentFilter]()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}()

// apiSegments is GET /api/v1/segments: the scenario's segments and the
// catalog a filter picks from.
func (s *Server) apiSegments(w http.ResponseWriter, r *http.Request) {
	if q := newQuery(r); q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	sc, err := s.segmentScenario()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list := make([]segmentView, 0, len(sc.Segments))
	for _, seg := range sc.Segments {
		list = append(list, segmentView{Name: seg.Name, Description: seg.Description, Filter: seg.Filter, File: seg.File, Line: seg.Line})
	}
	cat := segmentCatalog{Fields: segmentFields, Levels: []string{}, Channels: []channelOption{}, Tags: []tagGroupView{}}
	for _, st := range bot.Stages {
		cat.Stages = append(cat.Stages, stageOption{Stage: st, Name: sc.Funnel.StageName(st)})
	}
	staff := map[string]bool{}
	for _, ch := range sc.Channels {
		cat.Channels = append(cat.Channels, channelOption{State: ch.State, Name: ch.Name})
		for _, id := range ch.Staff {
			staff[id] = true
		}
	}
	for _, g := range sc.TagGroups {
		cat.Tags = append(cat.Tags, tagGroupView{Group: g.Name, Tags: g.Tags})
	}
	for _, l := range sc.Levels {
		cat.Levels = append(cat.Levels, l.Name)
	}
	for _, seg := range sc.Segments {
		for _, id := range seg.Filter.Staff {
			staff[id] = true
		}
	}
	for id := range staff {
		cat.Staff = append(cat.Staff, id)
	}
	sort.Strings(cat.Staff)
	if cat.Staff == nil {
		cat.Staff = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"segments": list, "catalog": cat})
}

// namedSegment finds the {name} segment, or fails the request with 404.
func (s *Server) namedSegment(w http.ResponseWriter, r *http.Request) *scenarios.Segment {
	sc, err := s.segmentScenario()
	if err != nil {
		s.fail(w, r, err)
		return nil
	}
	name := r.PathValue("name")
	seg := sc.Segment(name)
	if seg == nil {
		s.fail(w, r, badSegment(name))
	}
	return seg
}

// segmentScenario is the scenario in force (501 without one).
func (s *Server) segmentScenario() (*scenarios.Scenario, error) {
	if s.o.Scenario == nil {
		return nil, errNotConfigured
	}
	sc := s.o.Scenario()
	if sc == nil {
		return nil, errNotConfigured
	}
	return sc, nil
}

type segmentNotFound string

func (e segmentNotFound) Error() string {
	return "no segment named " + quote(string(e)) + " in the scenario (GET /api/v1/segments lists them)"
}
func (segmentNotFound) Is(target error) bool { return target == bot.ErrNotFound }

func badSegment(name string) error { return segmentNotFound(name) }

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// apiSegment is GET /api/v1/segments/{name}: the segment's count now, split
// by staff, with sample members.
func (s *Server) apiSegment(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "sample", "fresh")
	sample := q.int("sample", 10, 0, maxSegmentSample)
	fresh := q.boolean("fresh")
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	seg := s.namedSegment(w, r)
	if seg == nil {
		return
	}
	s.countSegment(w, r, seg, sample, fresh != nil && *fresh)
}

// segmentCountRequest is POST /api/v1/segments/count's body: an ad-hoc
// filter (the segment keys of the scenario YAML), or the name of a segment
// to start from with the filter's rules added to it.
type segmentCountRequest struct {
	scenarios.SegmentFilter
	Sample *int `json:"sample"`
}

// apiSegmentCount is POST /api/v1/segments/count: count an ad-hoc filter.
// An unknown field or a bad rule is a 400 naming it.
func (s *Server) apiSegmentCount(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "fresh")
	fresh := q.boolean("fresh")
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	req, err := decodeSegmentRequest(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sample := 10
	if req.Sample != nil {
		if *req.Sample < 0 || *req.Sample > maxSegmentSample {
			s.fail(w, r, badField("sample", "must be 0 to %d", maxSegmentSample))
			return
		}
		sample = *req.Sample
	}
	sc, err := s.segmentScenario()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	seg, err := sc.CompileSegment(req.SegmentFilter)
	if err != nil {
		s.fail(w, r, segmentProblem(err))
		return
	}
	s.countSegment(w, r, seg, sample, fresh != nil && *fresh)
}

// decodeSegmentRequest reads the body, naming an unknown or badly typed field.
func decodeSegmentRequest(body io.Reader) (segmentCountRequest, error) {
	var req segmentCountRequest
	raw, err := io.ReadAll(body)
	if err != nil {
		return req, badParam("body", "could not be read: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return req, nil // no rules: everyone not lost
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return req, badParam("body", "must be a JSON object of segment rules (%s): %v", strings.Join(segmentFields, ", "), err)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != "sample" && !contains(segmentFields, k) {
			return req, badField(k, "is not a segment rule (known: %s, sample)", strings.Join(segmentFields, ", "))
		}
		one, _ := json.Marshal(map[string]json.RawMessage{k: fields[k]})
		var probe segmentCountRequest
		if err := json.Unmarshal(one, &probe); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return req, badField(k, "want %s, got a JSON %s", te.Type, te.Value)
			}
			return req, badField(k, "%v", err)
		}
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return req, badParam("body", "%v", err)
	}
	return req, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// segmentProblem turns a filter's ValidationError into a 400 naming the
// first bad field ("tags_any[1]").
func segmentProblem(err error) error {
	var ve scenarios.ValidationError
	if errors.As(err, &ve) && len(ve) > 0 {
		return badField(ve[0].Field, "%s", ve[0].Msg)
	}
	return err
}

// segmentCountView is a count's answer.
type segmentCountView struct {
	Segment string                  `json:"segment,omitempty"`
	Filter  scenarios.SegmentFilter `json:"filter"`
	segments.Result
	// MembersTotal is how many members are stored (the denominator).
	MembersTotal int         `json:"members_total"`
	Sample       []memberRow `json:"sample"`
	TookMS       float64     `json:"took_ms"`
	// Cached: the count of the same rules less than 30 s ago (at is when).
	Cached bool `json:"cached"`
}

// countSegment answers seg's count now, or the same rules' count of less
// than segmentCacheTTL ago unless fresh.
func (s *Server) countSegment(w http.ResponseWriter, r *http.Request, seg *scenarios.Segment, sample int, fresh bool) {
	rules, _ := json.Marshal(seg.Filter)
	key := fmt.Sprintf("%p|%s|%s|%d", s, seg.Name, rules, sample)
	now := s.o.Now()
	res, cached := counts.get(key, now)
	if fresh {
		cached = false
	}
	if !cached {
		select {
		case segmentScan <- struct{}{}:
		case <-r.Context().Done():
			s.fail(w, r, r.Context().Err())
			return
		}
		var err error
		res, err = segments.Count(r.Context(), s.o.Store, seg, now, sample)
		<-segmentScan
		if err != nil {
			s.fail(w, r, err)
			return
		}
		counts.put(key, res, now)
	}
	out := segmentCountView{Segment: seg.Name, Filter: seg.Filter, Result: res, Cached: cached, Sample: make([]memberRow, 0, len(res.Sample)),
		TookMS: float64(res.Took.Microseconds()) / 1000}
	for _, m := range res.Sample {
		out.Sample = append(out.Sample, s.memberRow(m))
	}
	if err := s.o.Store.View(r.Context(), func(tx bot.Tx) (err error) { out.MembersTotal, err = tx.MemberCount(); return err }); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// apiSegmentMembers is GET /api/v1/segments/{name}/members: the segment's
// members, cursor-paginated in external_userid order (a page reads at most
// maxScanPage members, so a rare segment's page may be short with a
// next_cursor to go on).
func (s *Server) apiSegmentMembers(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, "limit", "cursor")
	limit := q.int("limit", 50, 1, 500)
	cursor := q.str("cursor", 256)
	if q.err != nil {
		s.fail(w, r, q.err)
		return
	}
	seg := s.namedSegment(w, r)
	if seg == nil {
		return
	}
	list, next, err := segments.Page(r.Context(), s.o.Store, seg, s.o.Now(), cursor, limit, maxScanPage)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rows := make([]memberRow, 0, len(list))
	for _, m := range list {
		rows = append(rows, s.memberRow(m))
	}
	body := map[string]any{"segment": seg.Name, "members": rows, "at": s.o.Now().UTC().Format(time.RFC3339)}
	if next != "" {
		body["next_cursor"] = next
	}
	writeJSON(w, http.StatusOK, body)
}
