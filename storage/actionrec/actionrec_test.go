package actionrec

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// body is what Body writes, for encoding/json: bot.Action's fixed
// fields under the same names.
type body struct {
	Key       string            `json:"key"`
	Kind      bot.ActionKind    `json:"kind"`
	Purpose   bot.ActionPurpose `json:"purpose,omitempty"`
	MemberID  string            `json:"member_id,omitempty"`
	EventSeq  uint64            `json:"event_seq,omitempty"`
	NotAfter  time.Time         `json:"not_after,omitzero"`
	CreatedAt time.Time         `json:"created_at"`
	Payload   json.RawMessage   `json:"payload"`
}

// TestBodyIsJSONMarshal: Body's hand-written JSON is byte for byte
// json.Marshal's, for strings that need escaping (HTML characters,
// controls, invalid UTF-8, U+2028) and times in any zone.
func TestBodyIsJSONMarshal(t *testing.T) {
	t.Parallel()
	strs := []string{"", "welcome|WC-1", "a<b>&c", "引号\"和\\", "tab\tnl\n\x01", "bad\xffutf8", "line\u2028sep", "wm_bench_000001", "😀"}
	times := []time.Time{{}, time.Unix(1e9, 123456789).UTC(), time.Unix(1e9, 0).In(time.FixedZone("CST", 8*3600)), time.Unix(1e9, 5).In(time.FixedZone("", -(3*3600 + 30*60)))}
	payloads := []json.RawMessage{nil, json.RawMessage(`{"text":"欢迎"}`), json.RawMessage(`[1,2]`)}
	for i, key := range strs {
		for j, tm := range times {
			a := &bot.Action{Key: key, Kind: bot.ActionKind(strs[(i+1)%len(strs)]), Purpose: bot.ActionPurpose(strs[(i+j)%len(strs)]),
				MemberID: strs[(i+2*j)%len(strs)], EventSeq: uint64(i * j), NotAfter: tm, CreatedAt: times[(j+1)%len(times)], Payload: payloads[(i+j)%len(payloads)]}
			want, err := json.Marshal(&body{Key: a.Key, Kind: a.Kind, Purpose: a.Purpose, MemberID: a.MemberID, EventSeq: a.EventSeq,
				NotAfter: a.NotAfter, CreatedAt: a.CreatedAt, Payload: a.Payload})
			if err != nil {
				t.Fatal(err)
			}
			got, err := Body(a)
			if err != nil || string(got) != string(want) {
				t.Fatalf("Body:\n%s (%v)\nwant json.Marshal's\n%s", got, err, want)
			}
		}
	}
	// A time json.Marshal refuses is refused.
	if _, err := Body(&bot.Action{Key: "k", CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Error("Body took a year-10000 time")
	}
}

// TestRoundTrip: an action stored as body and status record
// reads back as it was — every field, times at the same instant and
// offset as a JSON record kept them — and the fast body encoding is byte
// for byte what json.Marshal writes of the body, with and without a payload.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	a, err := bot.NewAction(bot.ActionWelcome, "welcome|1", bot.WelcomeMessage{WelcomeCode: "wc", Text: "欢迎 <b>\"hi\"</b>",
		Attachments: []bot.Attachment{{Type: "link", Title: "t", URL: "https://x.test/?a=1&b=2"}}})
	if err != nil {
		t.Fatal(err)
	}
	cst := time.FixedZone("CST", 8*3600)
	a.ID, a.MemberID, a.EventSeq, a.Purpose = 7, "wm1", 42, bot.PurposeFollowUp
	a.Status, a.Attempts, a.LastError, a.Detail, a.Result = bot.ActionSent, 2, "system busy", "msgid-1", bot.MassDelivered
	a.DueAt, a.NotAfter, a.CreatedAt = time.Unix(1e9, 5).In(cst), time.Unix(1e9+20, 0).UTC(), time.Unix(1e9, 0)
	a.SentAt, a.AttemptAt, a.ResultAt = time.Unix(1e9+3, 999_999_999).UTC(), time.Unix(-5e9, 1).In(cst), time.Unix(1e9+60, 0)
	a.PossiblyDelivered = true
	empty := *a
	empty.Payload = nil
	fresh := bot.Action{Key: "k", Kind: bot.ActionMarkTag, Status: bot.ActionPending, Payload: json.RawMessage(`{}`)}
	for _, x := range []*bot.Action{a, &empty, &fresh} {
		body := body{Key: x.Key, Kind: x.Kind, Purpose: x.Purpose, MemberID: x.MemberID, EventSeq: x.EventSeq,
			NotAfter: x.NotAfter, CreatedAt: x.CreatedAt, Payload: x.Payload}
		want, err := json.Marshal(&body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Body(x)
		if err != nil || string(got) != string(want) {
			t.Fatalf("Body:\n%s (%v)\nwant json.Marshal's\n%s", got, err, want)
		}
		// What a JSON record of the whole action read back as.
		full, _ := json.Marshal(x)
		var viaJSON bot.Action
		if err := json.Unmarshal(full, &viaJSON); err != nil {
			t.Fatal(err)
		}
		var back bot.Action
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		urgent, err := DecodeStatus(Status(x, !x.NotAfter.IsZero()), &back)
		if err != nil || urgent != !x.NotAfter.IsZero() {
			t.Fatalf("DecodeStatus: urgent %v, %v", urgent, err)
		}
		back.ID = x.ID
		if !reflect.DeepEqual(back, viaJSON) {
			t.Errorf("read back:\n%+v\nwant (as JSON kept it)\n%+v", back, viaJSON)
		}
	}
	for _, bad := range [][]byte{nil, {2, 0}, {Version, 0}, Status(a, false)[:20]} {
		if _, err := DecodeStatus(bad, new(bot.Action)); err == nil {
			t.Errorf("DecodeStatus(%x) took a malformed record", bad)
		}
	}
}

// TestDecodeLegacy: a record from before status records (the whole action
// as JSON, no status record) reads back whole, and Legacy takes its status.
func TestDecodeLegacy(t *testing.T) {
	t.Parallel()
	a, _ := bot.NewAction(bot.ActionMarkTag, "tag|1", bot.MarkTag{StaffID: "zhangsan", ExternalUserID: "wm1", Add: []string{"et1"}})
	a.Status, a.Attempts, a.LastError, a.DueAt, a.NotAfter = bot.ActionFailed, 3, "invalid tag", time.Unix(1e9, 0).UTC(), time.Unix(1e9+20, 0).UTC()
	whole, _ := json.Marshal(a)
	var want bot.Action
	_ = json.Unmarshal(whole, &want)
	got, err := Decode(whole, nil)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode(legacy) = %+v, %v\nwant %+v", got, err, want)
	}
	var st bot.Action
	urgent, err := Legacy(whole, &st)
	if err != nil || !urgent || st.Status != bot.ActionFailed || st.Attempts != 3 || st.LastError != "invalid tag" || !st.DueAt.Equal(a.DueAt) {
		t.Fatalf("Legacy = %+v urgent %v, %v", st, urgent, err)
	}
	// Once it has a status record, that decides.
	st.Status = bot.ActionPending
	got, err = Decode(whole, Status(&st, urgent))
	if err != nil || got.Status != bot.ActionPending || got.Key != "tag|1" {
		t.Fatalf("Decode(legacy body, status) = %+v, %v", got, err)
	}
}
