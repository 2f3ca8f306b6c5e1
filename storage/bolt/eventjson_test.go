package bolt

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// eventFromFuzz builds an event whose every field comes from the fuzzer's
// strings and numbers.
func eventFromFuzz(s1, s2, s3 string, n1, n2 int64, off int) bot.Event {
	zone := time.FixedZone("z", off)
	return bot.Event{
		Type: bot.EventType(s1), Source: s2, DedupeKey: s3,
		At: time.Unix(n1, n2).In(zone), ReceivedAt: time.Unix(n2, n1%1e9).UTC(),
		WeComEvent: s1, ChangeType: s2, StaffID: s3, ExternalUserID: s1 + s2, State: s2 + s3,
		WelcomeCode: s3 + s1, FailReason: s1,
		ChatID: s2, UpdateDetail: s3, JoinScene: int(n1), QuitScene: int(n2), MemChangeCnt: off,
		MemChangeList: strings.Split(s1, "|"), LastMemVer: s2, CurMemVer: s3,
		TagID: s1, TagType: s2, StrategyID: s3, Content: s1 + s3, MsgID: s2, AgentID: s3, EventKey: s1,
		KfToken: s2, OpenKfID: s3, Data: map[string]string{s1: s2, s3: s1, "k": s3}, Raw: s1 + s2 + s3,
	}
}

// FuzzEventJSONIsJSONMarshal: the ingest log's encoder gives
// json.Marshal's bytes (Seq 0) for any event, or leaves it to
// encoding/json, which then gives the same bytes or error.
func FuzzEventJSONIsJSONMarshal(f *testing.F) {
	f.Add("contact_add", "wecom", "evt:a|b", int64(1718000000), int64(5), 8*3600)
	f.Add("<xml>&amp;</xml>", "\u2028\u2029\x00\x1f\"\\", "你好\xff\xfe", int64(-62135596800), int64(0), -3600)
	f.Add("", "", "", int64(253402300800), int64(999999999), 0)
	f.Add("a\tb\nc\rd\be\ff", "", "x", int64(0), int64(0), 24*3600)
	f.Add("a", "b", "c", int64(0), int64(0), 5*3600+1)
	f.Fuzz(func(t *testing.T, s1, s2, s3 string, n1, n2 int64, off int) {
		for _, ev := range []bot.Event{eventFromFuzz(s1, s2, s3, n1, n2, off), {Type: bot.EventType(s1), Raw: s2}} {
			ev.Seq = 0
			want, wantErr := json.Marshal(&ev)
			got, ok := appendEventJSON(nil, &ev)
			if ok && (wantErr != nil || string(got) != string(want)) {
				t.Fatalf("appendEventJSON = %s, json.Marshal = %s, %v", got, want, wantErr)
			}
			if !ok && len(got) != 0 {
				t.Fatalf("appendEventJSON gave up after appending %q", got)
			}
			enc := encoders.Get().(*eventEncoder)
			got, err := enc.encode(&ev)
			if (err != nil) != (wantErr != nil) || (err == nil && string(got) != string(want)) {
				t.Fatalf("encode = %s, %v; json.Marshal = %s, %v", got, err, want, wantErr)
			}
			enc.put()
		}
	})
}

// TestEventJSONCoversEveryField: appendEventJSON writes every field
// json.Marshal writes (a field added to bot.Event and not to it fails here).
func TestEventJSONCoversEveryField(t *testing.T) {
	ev := eventFromFuzz("a", "b", "c", 1718000000, 7, 3600)
	var all map[string]any
	want, _ := json.Marshal(&ev)
	if err := json.Unmarshal(want, &all); err != nil {
		t.Fatal(err)
	}
	if n := len(all); n != 31 {
		t.Fatalf("json.Marshal wrote %d fields, want all 31 but seq: %s", n, want)
	}
	got, ok := appendEventJSON(nil, &ev)
	if !ok || string(got) != string(want) {
		t.Fatalf("appendEventJSON = %s, %v\nwant %s", got, ok, want)
	}
}

// BenchmarkEventJSON is the ingest log's encoding of a typical callback
// event (a contact add, its plaintext as Raw).
func BenchmarkEventJSON(b *testing.B) {
	raw := "<xml><ToUserName><![CDATA[ww3c6024bb94ecef59]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>" +
		"<CreateTime>1718000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event>" +
		"<ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID>" +
		"<ExternalUserID><![CDATA[wmXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX]]></ExternalUserID><State><![CDATA[xhs]]></State>" +
		"<WelcomeCode><![CDATA[WELCOMECODE1234567890]]></WelcomeCode></xml>"
	ev := bot.Event{Type: bot.EventContactAdd, Source: "wecom", DedupeKey: "evt:event=change_external_contact|change=add_external_contact|time=1718000000|from=sys|user=zhangsan|ext=wmXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
		At: time.Unix(1718000000, 0).UTC(), ReceivedAt: time.Now(), WeComEvent: "change_external_contact", ChangeType: "add_external_contact",
		StaffID: "zhangsan", ExternalUserID: "wmXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", State: "xhs", WelcomeCode: "WELCOMECODE1234567890", Raw: raw}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = appendEventJSON(buf[:0], &ev)
	}
}
