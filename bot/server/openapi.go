package server

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// /api/v1/openapi.json is generated from the route table (Routes) and the
// per-route notes below: every /api/v1 route is in it, with its method,
// path parameters, query parameters, request body and answers. A route with
// no note still appears ("undocumented") and fails TestOpenAPICoversRoutes,
// so the document can't silently fall behind the server.

// apiDoc describes one /api/v1 route for the OpenAPI document.
type apiDoc struct {
	summary string
	// query names the query parameters (described in queryParamDocs).
	query []string
	// body describes a JSON request body ("" = none); bodyType overrides
	// its media type (text/csv, application/yaml).
	body, bodyType string
	// produces is the success answer's media type (default application/json).
	produces string
	// status is the success status (default 200).
	status int
	// list names the item array of a paginated list (cursor/next_cursor).
	list string
	// public: no admin token needed.
	public bool
}

const (
	mediaJSON = "application/json"
	mediaCSV  = "text/csv"
	mediaXLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
)

var apiDocs = map[string]apiDoc{
	"GET /api/v1/openapi.json":                      {summary: "This OpenAPI 3.1 document", public: true},
	"GET /api/v1/status":                            {summary: "Version, sandbox flag, event log and outbox counts, scenario and AI status"},
	"GET /api/v1/backup":                            {summary: "A consistent copy of the database (bbolt file), streamed while serving", produces: "application/octet-stream"},
	"GET /api/v1/events":                            {summary: "The event log in append order", query: []string{"cursor", "limit"}, list: "events"},
	"GET /api/v1/outbox":                            {summary: "Outbox actions in creation order (secrets redacted)", query: []string{"cursor", "limit"}, list: "actions"},
	"GET /api/v1/members":                           {summary: "Members (客户) filtered, in external_userid order", query: []string{"stage", "tag", "channel", "staff", "level", "q", "lost", "limit", "cursor"}, list: "members"},
	"GET /api/v1/members/{external_userid}":         {summary: "One member: profile, stage history, timeline (with her follow-ups planned for a later slot, status planned), conversation, coupons, check-ins"},
	"GET /api/v1/sync":                              {summary: "The running or last sync of customers, groups and tags from WeCom (progress, ETA, counts) and recent runs"},
	"POST /api/v1/sync":                             {summary: "Start (or resume) a sync from WeCom; 202 when started, 200 with the running one's progress"},
	"GET /api/v1/transfers":                         {summary: "Staff transfers (在职/离职继承), newest first, with each customer's status and the failures"},
	"POST /api/v1/transfers":                        {summary: "Move a staff member's customers and groups to another (transfer_customer / resigned, groupchat transfer); 202 with the id", body: `{"from": "userid", "to": "userid", "customers": ["external_userid", …], "resigned": false, "groups": true, "message": "…"}`},
	"GET /api/v1/transfers/unassigned":              {summary: "Customers of departed staff waiting for a new one (get_unassigned_list)"},
	"GET /api/v1/transfers/{id}":                    {summary: "One staff transfer and where each customer stands"},
	"GET /api/v1/channels":                          {summary: "Channels (渠道活码): the scenario's and those seen in events, with their contact me codes"},
	"POST /api/v1/channels/{state}/contact_way":     {summary: "Create a contact me (联系我) code for a channel (add_contact_way), or a group channel's 加入群聊 QR code (add_join_way, with group: true); 202 while WeCom hasn't answered", body: `{"staff": ["userid", …], "remark": "…", "group": false} (optional)`},
	"GET /api/v1/funnel":                            {summary: "The AIPL funnel, channel table and weekly trend", query: []string{"weeks", "channel", "fresh"}},
	"GET /api/v1/metrics":                           {summary: "Money metrics per week and channel (new members, stage entries, buyers, orders, GMV, refunds, 客单价, 复购率, LTV, referral K-factor, lost, silent / came back) and the GMV decomposition 流量 × 转化率 × 复购 × 客单价", query: []string{"weeks", "channel"}},
	"GET /api/v1/segments":                          {summary: "Segments (客户分群) in the scenario, and the catalog a filter picks from (stages, channels, tags, levels, staff)"},
	"POST /api/v1/segments/count":                   {summary: "Count an ad-hoc segment now (the same rules' count of the last 30 s unless fresh): total, per-staff split, sample members; an unknown field or a bad rule is a 400 naming it", body: `{"stages": ["aware"], "channels": ["xhs"], "tags_any": ["…"], "tags_all": [], "tags_none": [], "staff": ["userid"], "levels": [], "groups": ["chat_id" | "any"], "silent_days": 14, "active_days": 0, "added_within": "30d", "min_spend_yuan": 100, "min_orders": 0, "lost": false, "sample": 10}`, query: []string{"fresh"}},
	"GET /api/v1/segments/{name}":                   {summary: "A named segment's count now (the same rules' count of the last 30 s unless fresh): total, per-staff split (who would send), sample members", query: []string{"sample", "fresh"}},
	"GET /api/v1/segments/{name}/members":           {summary: "A named segment's members, in external_userid order", query: []string{"cursor", "limit"}, list: "members"},
	"GET /api/v1/campaigns":                         {summary: "Check-in campaigns: participants per day, leaderboard", query: []string{"days"}},
	"GET /api/v1/coupons":                           {summary: "Coupon pools: stock, issued, redeemed, expired, by hook"},
	"GET /api/v1/scenarios":                         {summary: "The loaded scenario: files, version, counts, last reload"},
	"POST /api/v1/scenarios/validate":               {summary: "Validate an uploaded scenario file (422 with file:line problems)", query: []string{"name", "alone"}, body: "a scenario YAML file", bodyType: "application/yaml"},
	"POST /api/v1/scenarios/reload":                 {summary: "Reload the scenarios now (422 with file:line problems; the last good one stays)"},
	"POST /api/v1/scenarios/simulate":               {summary: "Run a `wecombot simulate` script on a temporary store; answers the transcript", body: "a simulation script (YAML)", bodyType: "application/yaml"},
	"GET /api/v1/operations":                        {summary: "Event-log lag, outbox depth and overdue, failed actions, WeCom errors, pipeline", query: []string{"failed"}},
	"POST /api/v1/outbox/{id}/retry":                {summary: "Put a failed or possibly delivered action back into the outbox, due now (409 otherwise)"},
	"GET /api/v1/events/failed":                     {summary: "Events a handler failed on (on a healthy store), with their errors (redacted)", query: []string{"cursor", "limit"}, list: "failed_events"},
	"POST /api/v1/events/retry":                     {summary: "Replay every failed event through the engine's usual idempotency"},
	"POST /api/v1/events/{seq}/retry":               {summary: "Replay one failed event (404 unknown, 409 if it did not fail)"},
	"GET /api/v1/export/members.csv":                {summary: "Members as CSV (UTF-8 with BOM, 中文 headers by default)", query: []string{"stage", "tag", "channel", "staff", "level", "q", "lost", "lang"}, produces: mediaCSV},
	"GET /api/v1/export/members.xlsx":               {summary: "Members as an Excel workbook", query: []string{"stage", "tag", "channel", "staff", "level", "q", "lost", "lang"}, produces: mediaXLSX},
	"GET /api/v1/export/orders.csv":                 {summary: "Orders as CSV", query: []string{"member", "lang"}, produces: mediaCSV},
	"GET /api/v1/export/orders.xlsx":                {summary: "Orders as an Excel workbook", query: []string{"member", "lang"}, produces: mediaXLSX},
	"POST /api/v1/sandbox/events":                   {summary: "Sandbox only: simulate a member (add, join_group, check_in, kf, order) through the real engine", status: http.StatusAccepted, body: `{"action": "add|join_group|check_in|kf|order", "member", "name", "state", "staff", "chat", "text", "amount": 88 (yuan, a number; a string is accepted), "at": RFC 3339 (within 7 days)}`},
	"POST /api/v1/coupons/{pool}/import":            {summary: "Import coupon codes from CSV (a bad row names its line; nothing is imported)", body: "CSV: code[,expires]", bodyType: mediaCSV},
	"POST /api/v1/coupons/{pool}/generate":          {summary: "Generate n coupon codes", query: []string{"n"}},
	"GET /api/v1/economy":                           {summary: "The member economy: points issued, spent, redeemed, clawed back and expired per ISO week; points outstanding and debt; catalogue items by redemptions; stock alerts; gifts to ship", query: []string{"weeks"}},
	"GET /api/v1/redemptions":                       {summary: "Redemptions (积分兑换) in order, optionally by status (to_ship: gifts with an address, not shipped)", query: []string{"status", "cursor", "limit"}, list: "redemptions"},
	"POST /api/v1/redemptions/{id}/shipped":         {summary: "Mark a gift shipped; the member is told (409: no address yet or already shipped)", body: `{"carrier": "顺丰", "tracking": "SF…", "operator": "…", "request_id": "…"}`},
	"POST /api/v1/coupons/{pool}/grant":             {summary: "Give a member one code from the pool", body: `{"external_userid": "…", "operator": "…", "note": "…", "request_id": "…"}`},
	"PUT /api/v1/members/{external_userid}/profile": {summary: "Record a member's profile form (问卷) answers on her behalf: tags, birthday, points once, as her own submission; 400 names the refused field", status: http.StatusAccepted, body: `{"answers": {"birthday": "1990-05-17", "taste": ["tea", "milk"], "note": "…"}}`},
	"GET /api/v1/posters":                           {summary: "The 任务宝 poster campaign's funnel: members with a poster, posters sent, invitees added, held, counted, void, rewards issued"},
	"GET /api/v1/broadcasts":                        {summary: "Broadcasts (群发): every run, newest first, with targeted/queued/skipped counts, and the scenario's broadcasts with their next time"},
	"POST /api/v1/broadcasts":                       {summary: "Send a broadcast to a segment or an inline filter, via mass_send, group or kf, now or at a time (brand zone); dry_run answers the count and per-staff split without sending; 202 with the id", body: `{"segment": "小红书新客", "filter": {"channels": ["xhs"]}, "via": "mass_send", "text": "{{.Name}}，本周上新……", "at": "2026-12-04 20:00", "dry_run": false}`},
	"GET /api/v1/broadcasts/{id}":                   {summary: "One broadcast run's report: targeted, tasks, confirmed, delivered, skipped by reason, orders and GMV within 7 days, and per-customer results (cursor/limit)"},
	"GET /api/v1/sops":                              {summary: "SOP sequences (客户SOP) of the scenario, the welcome scripts' follow-ups first: trigger, segment, stop conditions, steps with each step's messages by status, enrolled, stopped by reason, paused"},
	"GET /api/v1/sops/{name}":                       {summary: "One SOP with its counts and a page of its members: each one's state (running, stopped, done), the step due next and every step's message status", query: []string{"state", "cursor", "limit"}, list: "members"},
	"POST /api/v1/sops/{name}/pause":                {summary: "Pause an SOP: nobody enrolls and steps falling due are canceled until it is resumed (applied by the engine, in order)", status: http.StatusAccepted},
	"POST /api/v1/sops/{name}/resume":               {summary: "Resume a paused SOP: members enroll again when its trigger fires", status: http.StatusAccepted},
}

// queryParamDocs describes each query parameter once.
var queryParamDocs = map[string]struct{ desc, typ string }{
	"cursor":  {"Opaque cursor: the next_cursor of the previous page; absent for the first page.", "string"},
	"limit":   {"Page size.", "integer"},
	"sample":  {"How many sample members to answer (0-50, default 10).", "integer"},
	"stage":   {"Funnel stage: aware, interest, purchase, loyal.", "string"},
	"tag":     {"A corp tag (企业客户标签) the member carries.", "string"},
	"channel": {"Channel state (渠道活码 state).", "string"},
	"staff":   {"Staff userid the member was added by.", "string"},
	"level":   {"Member level name.", "string"},
	"q":       {"Search: name, remark or external_userid.", "string"},
	"lost":    {"true: only members who deleted the staff (流失); false: only current ones.", "boolean"},
	"weeks":   {"Weeks of trend.", "integer"},
	"fresh":   {"true: recompute now instead of the cached pass.", "boolean"},
	"days":    {"Days of history.", "integer"},
	"failed":  {"How many failed actions to list.", "integer"},
	"name":    {"File name the uploaded scenario is reported under.", "string"},
	"alone":   {"true: validate the file on its own, not merged with the loaded directory.", "boolean"},
	"lang":    {"Header language: zh (default) or en.", "string"},
	"member":  {"Only this member's orders (external_userid).", "string"},
	"n":       {"How many codes.", "integer"},
	"status":  {"Redemption status: done, awaiting_address, to_ship, shipped.", "string"},
	"state":   {"An SOP member's state: running, stopped or done.", "string"},
}

var pathParamRe = regexp.MustCompile(`\{([A-Za-z_]+)\}`)

// openAPI builds the document from routes.
func openAPI(routes []Route, version string) map[string]any {
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		if !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		doc, ok := apiDocs[rt.Pattern]
		if !ok {
			doc = apiDoc{summary: "undocumented"}
		}
		op := map[string]any{
			"summary":     doc.summary,
			"operationId": operationID(method, path),
		}
		var params []any
		for _, m := range pathParamRe.FindAllStringSubmatch(path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, name := range doc.query {
			d := queryParamDocs[name]
			typ := d.typ
			if typ == "" {
				typ = "string"
			}
			params = append(params, map[string]any{"name": name, "in": "query", "description": d.desc, "schema": map[string]any{"type": typ}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if doc.body != "" {
			bt := doc.bodyType
			if bt == "" {
				bt = mediaJSON
			}
			op["requestBody"] = map[string]any{"description": doc.body, "content": map[string]any{bt: map[string]any{}}}
		}
		status := doc.status
		if status == 0 {
			status = http.StatusOK
		}
		produces := doc.produces
		if produces == "" {
			produces = mediaJSON
		}
		success := map[string]any{"schema": map[string]any{"type": "object"}}
		if produces != mediaJSON {
			success = map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
		} else if doc.list != "" {
			success = map[string]any{"schema": map[string]any{
				"type":     "object",
				"required": []string{doc.list},
				"properties": map[string]any{
					doc.list:      map[string]any{"type": "array", "items": map[string]any{"type": "object"}},
					"next_cursor": map[string]any{"type": "string", "description": "Present when another page may follow; absent on the last page."},
				},
			}}
		}
		op["responses"] = map[string]any{
			strconv.Itoa(status): map[string]any{"description": http.StatusText(status), "content": map[string]any{produces: success}},
			"4XX":                map[string]any{"$ref": "#/components/responses/Problem"},
			"5XX":                map[string]any{"$ref": "#/components/responses/Problem"},
		}
		if doc.public {
			op["security"] = []any{}
		}
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "wecombot admin API",
			"version":     version,
			"description": "The operator console's API. Errors are application/problem+json (RFC 9457) with a stable code; lists page with ?cursor=&limit= and answer next_cursor until the last page. See docs/console.md.",
		},
		"servers":  []any{map[string]any{"url": "/"}},
		"security": []any{map[string]any{"bearer": []string{}}},
		"paths":    paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "WECOMBOT_ADMIN_TOKEN; without one set, the API answers on loopback only."},
			},
			"responses": map[string]any{
				"Problem": map[string]any{
					"description": "An error (RFC 9457 problem details).",
					"content":     map[string]any{problemContentType: map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}},
				},
			},
			"schemas": map[string]any{
				"Problem": map[string]any{
					"type":     "object",
					"required": []string{"type", "title", "status", "detail", "code"},
					"properties": map[string]any{
						"type":     map[string]any{"type": "string", "format": "uri", "description": "urn:wecombot:problem:<code>"},
						"title":    map[string]any{"type": "string"},
						"status":   map[string]any{"type": "integer"},
						"detail":   map[string]any{"type": "string"},
						"instance": map[string]any{"type": "string"},
						"code":     map[string]any{"type": "string", "description": "Stable error code: bad_parameter, not_found, conflict, unauthorized, …"},
						"param":    map[string]any{"type": "string", "description": "The bad query parameter or body field (400)."},
						"error":    map[string]any{"type": "string", "description": "Same as detail (kept for earlier clients)."},
						"problems": map[string]any{"type": "array", "description": "A scenario's problems at file:line (422).", "items": map[string]any{"type": "object"}},
					},
				},
			},
		},
	}
}

func operationID(method, path string) string {
	p := strings.TrimPrefix(path, "/api/v1/")
	p = pathParamRe.ReplaceAllString(p, "by_$1")
	p = strings.NewReplacer("/", "_", ".", "_", "-", "_").Replace(p)
	return strings.ToLower(method) + "_" + p
}

// apiOpenAPI answers GET /api/v1/openapi.json.
func (s *Server) apiOpenAPI() http.HandlerFunc {
	var once sync.Once
	var doc map[string]any
	return func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { doc = openAPI(s.Routes(), s.o.Version) })
		writeJSON(w, http.StatusOK, doc)
	}
}
