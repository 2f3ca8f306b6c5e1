package wecom

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
)

var receivedAt = time.Date(2024, 6, 10, 8, 0, 0, 0, time.UTC)

func readSample(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "messages", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

func TestParseMessage(t *testing.T) {
	const (
		staff     = "LiXiaoMei"
		customer  = "wmHt3kCQAAq9pXf1Yc7ZbW0rS4nE2uVg"
		customer2 = "wmHt3kCQAAr1Lk8sPq2Wd6Yx0zMbN5tC"
		chat      = "wrHt3kCQAAx7Qm2Vn9Lp4Kd1Zs8Yb6Tc"
	)
	tests := []struct {
		file string
		want bot.Event
	}{
		{"contact_add.xml", bot.Event{
			Type: bot.EventContactAdd, At: unix(1718000000),
			WeComEvent: "change_external_contact", ChangeType: "add_external_contact",
			StaffID: staff, ExternalUserID: customer, State: "poster_0618",
			WelcomeCode: "WCbT0mQ3x9L5HZkYp2VnA8rJcF1sDgE4uK7oN6iR",
			DedupeKey:   "evt:event=change_external_contact|change=add_external_contact|time=1718000000|from=sys|user=LiXiaoMei|ext=" + customer,
		}},
		{"contact_add_half.xml", bot.Event{
			Type: bot.EventContactAddHalf, At: unix(1718000100),
			WeComEvent: "change_external_contact", ChangeType: "add_half_external_contact",
			StaffID: staff, ExternalUserID: customer2, State: "store_sh_01",
			WelcomeCode: "WCq8Fh2Lm0Xz5Nc7Vb1Gk4Jd9Ts3Wp6Ry",
			DedupeKey:   "evt:event=change_external_contact|change=add_half_external_contact|time=1718000100|from=sys|user=LiXiaoMei|ext=" + customer2,
		}},
		{"contact_edit.xml", bot.Event{
			Type: bot.EventContactEdit, At: unix(1718000200),
			WeComEvent: "change_external_contact", ChangeType: "edit_external_contact",
			StaffID: staff, ExternalUserID: customer,
			DedupeKey: "evt:event=change_external_contact|change=edit_external_contact|time=1718000200|from=sys|user=LiXiaoMei|ext=" + customer,
		}},
		{"contact_del.xml", bot.Event{
			Type: bot.EventContactDel, At: unix(1718000300),
			WeComEvent: "change_external_contact", ChangeType: "del_external_contact",
			StaffID: "ZhangWei", ExternalUserID: customer, FailReason: "DELETE_BY_TRANSFER",
			DedupeKey: "evt:event=change_external_contact|change=del_external_contact|time=1718000300|from=sys|user=ZhangWei|ext=" + customer,
		}},
		{"contact_del_follow.xml", bot.Event{
			Type: bot.EventContactDelFollow, At: unix(1718000400),
			WeComEvent: "change_external_contact", ChangeType: "del_follow_user",
			StaffID: staff, ExternalUserID: customer,
			DedupeKey: "evt:event=change_external_contact|change=del_follow_user|time=1718000400|from=sys|user=LiXiaoMei|ext=" + customer,
		}},
		{"contact_transfer_fail.xml", bot.Event{
			Type: bot.EventContactTransferFail, At: unix(1718000500),
			WeComEvent: "change_external_contact", ChangeType: "transfer_fail",
			StaffID: "WangFang", ExternalUserID: customer2, FailReason: "customer_refused",
			DedupeKey: "evt:event=change_external_contact|change=transfer_fail|time=1718000500|from=sys|user=WangFang|ext=" + customer2,
		}},
		{"group_create.xml", bot.Event{
			Type: bot.EventGroupCreate, At: unix(1718001000),
			WeComEvent: "change_external_chat", ChangeType: "create", ChatID: chat,
			DedupeKey: "evt:event=change_external_chat|change=create|time=1718001000|from=sys|chat=" + chat,
		}},
		{"group_add_member.xml", bot.Event{
			Type: bot.EventGroupUpdate, At: unix(1718001100),
			WeComEvent: "change_external_chat", ChangeType: "update", ChatID: chat,
			UpdateDetail: bot.GroupAddMember, JoinScene: 3, MemChangeCnt: 2,
			MemChangeList: []string{customer, customer2},
			LastMemVer:    "3f2a9c1e7b4d5a6f8e0c1b2d3a4f5e6d", CurMemVer: "9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a",
			DedupeKey: "evt:event=change_external_chat|change=update|time=1718001100|from=sys|chat=" + chat +
				"|detail=add_member|mem=" + customer + "," + customer2 +
				"|lastver=3f2a9c1e7b4d5a6f8e0c1b2d3a4f5e6d|curver=9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a",
		}},
		{"group_del_member_legacy.xml", bot.Event{
			Type: bot.EventGroupUpdate, At: unix(1718001200),
			WeComEvent: "change_external_chat", ChangeType: "update", ChatID: chat,
			UpdateDetail: bot.GroupDelMember, QuitScene: 1, MemChangeCnt: 2,
			MemChangeList: []string{customer, customer2},
			DedupeKey: "evt:event=change_external_chat|change=update|time=1718001200|from=sys|chat=" + chat +
				"|detail=del_member|mem=" + customer + "," + customer2,
		}},
		{"group_change_name.xml", bot.Event{
			Type: bot.EventGroupUpdate, At: unix(1718001300),
			WeComEvent: "change_external_chat", ChangeType: "update", ChatID: chat,
			UpdateDetail: bot.GroupChangeName,
			DedupeKey:    "evt:event=change_external_chat|change=update|time=1718001300|from=sys|chat=" + chat + "|detail=change_name",
		}},
		{"group_dismiss.xml", bot.Event{
			Type: bot.EventGroupDismiss, At: unix(1718001400),
			WeComEvent: "change_external_chat", ChangeType: "dismiss", ChatID: chat,
			DedupeKey: "evt:event=change_external_chat|change=dismiss|time=1718001400|from=sys|chat=" + chat,
		}},
		{"tag_create.xml", bot.Event{
			Type: bot.EventTagChange, At: unix(1718002000),
			WeComEvent: "change_external_tag", ChangeType: "create",
			TagID: "etHt3kCQAAm4Vz8Qp1Lc6Nd2Xs9Kb7Tf", TagType: "tag",
			DedupeKey: "evt:event=change_external_tag|change=create|time=1718002000|from=sys|tag=etHt3kCQAAm4Vz8Qp1Lc6Nd2Xs9Kb7Tf|tagtype=tag",
		}},
		{"tag_shuffle.xml", bot.Event{
			Type: bot.EventTagChange, At: unix(1718002100),
			WeComEvent: "change_external_tag", ChangeType: "shuffle",
			TagID: "etHt3kCQAAg0Rw5Tn3Mb8Pk1Yc6Lz2Vd", TagType: "tag_group", StrategyID: "7",
			DedupeKey: "evt:event=change_external_tag|change=shuffle|time=1718002100|from=sys|tag=etHt3kCQAAg0Rw5Tn3Mb8Pk1Yc6Lz2Vd|tagtype=tag_group|strategy=7",
		}},
		{"app_text.xml", bot.Event{
			Type: bot.EventAppText, At: unix(1718003000),
			StaffID: staff, Content: "今天的签到活动开始了吗？ <b>&</b>", MsgID: "7378201638261052417", AgentID: "1000002",
			DedupeKey: "msg:7378201638261052417",
		}},
		{"app_enter_agent.xml", bot.Event{
			Type: bot.EventAppEnter, At: unix(1718003100), WeComEvent: "enter_agent",
			StaffID: staff, AgentID: "1000002",
			DedupeKey: "evt:event=enter_agent|time=1718003100|from=LiXiaoMei|agent=1000002",
		}},
		{"app_click.xml", bot.Event{
			Type: bot.EventAppClick, At: unix(1718003200), WeComEvent: "click",
			StaffID: staff, AgentID: "1000002", EventKey: "menu_today_stats",
			DedupeKey: "evt:event=click|time=1718003200|from=LiXiaoMei|key=menu_today_stats|agent=1000002",
		}},
		{"kf_msg_or_event.xml", bot.Event{
			Type: bot.EventKfNotify, At: unix(1718004000), WeComEvent: "kf_msg_or_event",
			KfToken: "ENCBm2Xq7Lz0Wc5Vn8Pk3Td1Ys6Hg9Rf4Jb2Mx", OpenKfID: "wkHt3kCQAAs5Pn1Vz7Qm3Lc9Xd2Kb8Tf",
			DedupeKey: "evt:event=kf_msg_or_event|time=1718004000|kf=wkHt3kCQAAs5Pn1Vz7Qm3Lc9Xd2Kb8Tf|token=ENCBm2Xq7Lz0Wc5Vn8Pk3Td1Ys6Hg9Rf4Jb2Mx",
		}},
		{"unknown_template_card.xml", bot.Event{
			Type: bot.EventUnknown, At: unix(1718005000), WeComEvent: "template_card_event",
			StaffID: "ZhangWei", AgentID: "1000002", EventKey: "approve",
			Data:      map[string]string{"msg_type": "event"},
			DedupeKey: "evt:event=template_card_event|time=1718005000|from=ZhangWei|key=approve|agent=1000002|sum=", // + digest, checked by prefix
		}},
		{"unknown_image.xml", bot.Event{
			Type: bot.EventUnknown, At: unix(1718005100),
			StaffID: staff, AgentID: "1000002", MsgID: "7378201638261052999",
			Data:      map[string]string{"msg_type": "image"},
			DedupeKey: "msg:7378201638261052999",
		}},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".xml"), func(t *testing.T) {
			plain := readSample(t, tt.file)
			got, err := ParseMessage(plain, receivedAt)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Source = bot.SourceWeCom
			want.ReceivedAt = receivedAt
			want.Raw = string(plain)
			if strings.HasSuffix(want.DedupeKey, "|sum=") {
				if !strings.HasPrefix(got.DedupeKey, want.DedupeKey) || len(got.DedupeKey) != len(want.DedupeKey)+16 {
					t.Errorf("DedupeKey = %q, want %q + 16 hex digits", got.DedupeKey, want.DedupeKey)
				}
				want.DedupeKey = got.DedupeKey
			}
			if !reflect.DeepEqual(*got, want) {
				g, _ := json.MarshalIndent(got, "", "  ")
				w, _ := json.MarshalIndent(want, "", "  ")
				t.Errorf("ParseMessage =\n%s\nwant\n%s", g, w)
			}
			if _, err := json.Marshal(got); err != nil {
				t.Errorf("event does not marshal: %v", err)
			}
		})
	}
}

func TestParseMessageOfficialVector(t *testing.T) {
	v := loadVectors(t)
	got, err := ParseMessage([]byte(v.Message.ExpectPlaintext), receivedAt)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != bot.EventAppText || got.StaffID != "mycreate" || got.Content != "hello" ||
		got.MsgID != "4561255354251345929" || got.AgentID != "218" || !got.At.Equal(unix(1409659813)) ||
		got.DedupeKey != "msg:4561255354251345929" {
		t.Errorf("ParseMessage = %+v", got)
	}
}

func TestParseMessageMalformed(t *testing.T) {
	for _, plain := range []string{
		"",
		"hello",
		"1616140317555161061", // an echostr is not a message
		`{"msgtype":"text"}`,
		"<xml>",
		"<xml><MsgType>text</MsgType>",
		"<xml></wrong>",
		"<root><MsgType>text</MsgType></root>",
		"<xml><Content>\xff\xfe</Content></xml>",
		"<xml><Content>a\x00b</Content></xml>",
	} {
		if ev, err := ParseMessage([]byte(plain), receivedAt); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseMessage(%q) = %+v, %v; want ErrMalformed", plain, ev, err)
		}
	}
}

func TestParseMessageLenient(t *testing.T) {
	tests := []struct {
		name, plain string
		check       func(*testing.T, *bot.Event)
	}{
		{"empty xml is unknown", "<xml></xml>", func(t *testing.T, ev *bot.Event) {
			if ev.Type != bot.EventUnknown || !ev.At.Equal(receivedAt) || !strings.HasPrefix(ev.DedupeKey, "evt:sum=") {
				t.Errorf("%+v", ev)
			}
		}},
		{"unknown contact change keeps its fields", "<xml><CreateTime>1718000000</CreateTime><MsgType>event</MsgType><Event>change_external_contact</Event><ChangeType>add_magic</ChangeType><UserID>u</UserID><ExternalUserID>wm1</ExternalUserID></xml>", func(t *testing.T, ev *bot.Event) {
			if ev.Type != bot.EventUnknown || ev.ChangeType != "add_magic" || ev.StaffID != "u" || ev.ExternalUserID != "wm1" {
				t.Errorf("%+v", ev)
			}
		}},
		{"unknown chat change", "<xml><MsgType>event</MsgType><Event>change_external_chat</Event><ChangeType>archive</ChangeType><ChatId>wr1</ChatId></xml>", func(t *testing.T, ev *bot.Event) {
			if ev.Type != bot.EventUnknown || ev.ChatID != "wr1" {
				t.Errorf("%+v", ev)
			}
		}},
		{"CreateTime not a number", "<xml><CreateTime>yesterday</CreateTime><MsgType>event</MsgType><Event>click</Event></xml>", func(t *testing.T, ev *bot.Event) {
			if ev.Type != bot.EventAppClick || !ev.At.Equal(receivedAt) {
				t.Errorf("%+v", ev)
			}
		}},
		{"CreateTime past year 9999", "<xml><CreateTime>9811170016713000</CreateTime><MsgType>event</MsgType><Event>click</Event></xml>", func(t *testing.T, ev *bot.Event) {
			if !ev.At.Equal(receivedAt) {
				t.Errorf("At = %v", ev.At)
			}
			if _, err := json.Marshal(ev); err != nil {
				t.Error(err)
			}
		}},
		{"negative CreateTime", "<xml><CreateTime>-5</CreateTime><MsgType>event</MsgType><Event>click</Event></xml>", func(t *testing.T, ev *bot.Event) {
			if !ev.At.Equal(receivedAt) {
				t.Errorf("At = %v", ev.At)
			}
		}},
		{"scene codes that are not numbers", "<xml><MsgType>event</MsgType><Event>change_external_chat</Event><ChangeType>update</ChangeType><JoinScene>x</JoinScene><QuitScene>-1</QuitScene><MemChangeCnt>99999999999999999999</MemChangeCnt></xml>", func(t *testing.T, ev *bot.Event) {
			if ev.Type != bot.EventGroupUpdate || ev.JoinScene != 0 || ev.QuitScene != 0 || ev.MemChangeCnt != 0 {
				t.Errorf("%+v", ev)
			}
		}},
		{"padded values are trimmed, content is not", "<xml>\n  <FromUserName>\n    zs\n  </FromUserName>\n  <CreateTime> 1718000000 </CreateTime>\n  <MsgType> text </MsgType>\n  <Content>  hi  </Content>\n  <MsgId> 42 </MsgId>\n</xml>", func(t *testing.T, ev *bot.Event) {
			if ev.Type != bot.EventAppText || ev.StaffID != "zs" || ev.Content != "  hi  " || ev.DedupeKey != "msg:42" || !ev.At.Equal(unix(1718000000)) {
				t.Errorf("%+v", ev)
			}
		}},
		{"text without MsgId falls back to an event key", "<xml><FromUserName>zs</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content></xml>", func(t *testing.T, ev *bot.Event) {
			if ev.DedupeKey != "evt:time=1|from=zs" {
				t.Errorf("DedupeKey = %q", ev.DedupeKey)
			}
		}},
		{"empty MemChangeList", "<xml><MsgType>event</MsgType><Event>change_external_chat</Event><ChangeType>update</ChangeType><MemChangeList></MemChangeList></xml>", func(t *testing.T, ev *bot.Event) {
			if ev.MemChangeList != nil {
				t.Errorf("MemChangeList = %q", ev.MemChangeList)
			}
		}},
		{"a third-party (suite) callback is unknown", "<xml><SuiteId>ww4a</SuiteId><InfoType>change_external_contact</InfoType><TimeStamp>1403610513</TimeStamp><ChangeType>add_external_contact</ChangeType><UserID>zs</UserID><ExternalUserID>wm1</ExternalUserID></xml>", func(t *testing.T, ev *bot.Event) {
			if ev.Type != bot.EventUnknown {
				t.Errorf("%+v", ev)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseMessage([]byte(tt.plain), receivedAt)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, ev)
		})
	}
}

// TestDedupeKeysDistinct: every sample, and pairs of events that differ in
// one field only, get different keys.
func TestDedupeKeysDistinct(t *testing.T) {
	const addMember = `<xml><ToUserName>ww1</ToUserName><FromUserName>sys</FromUserName><CreateTime>1718001100</CreateTime>` +
		`<MsgType>event</MsgType><Event>change_external_chat</Event><ChatId>wr1</ChatId><ChangeType>update</ChangeType>` +
		`<UpdateDetail>add_member</UpdateDetail><JoinScene>3</JoinScene><MemChangeCnt>1</MemChangeCnt>` +
		`<MemChangeList><Item>%s</Item></MemChangeList><LastMemVer>%s</LastMemVer><CurMemVer>%s</CurMemVer></xml>`
	contact := func(user, ext string) string {
		return `<xml><FromUserName>sys</FromUserName><CreateTime>1718000000</CreateTime><MsgType>event</MsgType>` +
			`<Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType>` +
			`<UserID>` + user + `</UserID><ExternalUserID>` + ext + `</ExternalUserID></xml>`
	}
	kf := func(token string) string {
		return `<xml><ToUserName>ww1</ToUserName><CreateTime>1718004000</CreateTime><MsgType>event</MsgType>` +
			`<Event>kf_msg_or_event</Event><Token>` + token + `</Token><OpenKfId>wk1</OpenKfId></xml>`
	}
	plains := []string{
		// Two customers join the same group in the same second.
		fmt.Sprintf(addMember, "wmA", "v0", "v1"),
		fmt.Sprintf(addMember, "wmB", "v1", "v2"),
		// Same member list, other version (WeCom reordering a retry never changes versions).
		fmt.Sprintf(addMember, "wmA", "v5", "v6"),
		// Separator injection cannot forge another event's key.
		contact("a", "b"),
		contact("a|ext=b", ""),
		contact("a%7Cext=b", ""),
		contact("a,b", "c"),
		contact("a%2Cb", "c"),
		kf("T1"),
		kf("T2"),
		`<xml><FromUserName>zs</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>click</Event><EventKey>k1</EventKey></xml>`,
		`<xml><FromUserName>zs</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>click</Event><EventKey>k2</EventKey></xml>`,
		`<xml><FromUserName>sys</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>change_external_tag</Event><ChangeType>delete</ChangeType><Id>et1</Id><TagType>tag</TagType></xml>`,
		`<xml><FromUserName>sys</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>change_external_tag</Event><ChangeType>delete</ChangeType><Id>et2</Id><TagType>tag</TagType></xml>`,
		// Unknown events that differ only in fields the key does not list.
		`<xml><FromUserName>sys</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>change_contact</Event><ChangeType>update_user</ChangeType><NewUserID>x</NewUserID></xml>`,
		`<xml><FromUserName>sys</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>change_contact</Event><ChangeType>update_user</ChangeType><NewUserID>y</NewUserID></xml>`,
	}
	entries, err := os.ReadDir(filepath.Join("testdata", "messages"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		plains = append(plains, string(readSample(t, e.Name())))
	}
	plains = append(plains, loadVectors(t).Message.ExpectPlaintext)

	seen := map[string]string{}
	for _, p := range plains {
		ev, err := ParseMessage([]byte(p), receivedAt)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if ev.DedupeKey == "" {
			t.Errorf("empty key for %s", p)
		}
		if prev, ok := seen[ev.DedupeKey]; ok {
			t.Errorf("key %q shared by\n%s\nand\n%s", ev.DedupeKey, prev, p)
		}
		seen[ev.DedupeKey] = p
	}
}

// TestDedupeKeyStableAcrossRetries: a retry is the same plaintext sealed
// afresh, so it must get the same key; a known event re-serialized with other
// whitespace or element order keeps its key too.
func TestDedupeKeyStableAcrossRetries(t *testing.T) {
	c := vectorCrypter(t, "ww3c6024bb94ecef59")
	for _, name := range []string{"contact_add.xml", "group_add_member.xml", "kf_msg_or_event.xml", "app_text.xml", "unknown_template_card.xml"} {
		plain := readSample(t, name)
		var keys []string
		for i := range 3 {
			body, sig, err := c.SealXML(plain, "1718000000", fmt.Sprintf("nonce%d", i))
			if err != nil {
				t.Fatal(err)
			}
			opened, err := c.OpenXML(sig, "1718000000", fmt.Sprintf("nonce%d", i), body)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := ParseMessage(opened, receivedAt.Add(time.Duration(i)*5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, ev.DedupeKey)
		}
		if keys[0] != keys[1] || keys[1] != keys[2] {
			t.Errorf("%s: retry keys differ: %q", name, keys)
		}
	}

	pretty := readSample(t, "group_add_member.xml")
	compact := `<xml><CurMemVer>9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a</CurMemVer><ToUserName>ww3c6024bb94ecef59</ToUserName><FromUserName>sys</FromUserName>` +
		`<CreateTime>1718001100</CreateTime><MsgType>event</MsgType><Event>change_external_chat</Event>` +
		`<ChatId>wrHt3kCQAAx7Qm2Vn9Lp4Kd1Zs8Yb6Tc</ChatId><ChangeType>update</ChangeType><UpdateDetail>add_member</UpdateDetail>` +
		`<JoinScene>3</JoinScene><MemChangeCnt>2</MemChangeCnt><MemChangeList><Item>wmHt3kCQAAq9pXf1Yc7ZbW0rS4nE2uVg</Item>` +
		`<Item>wmHt3kCQAAr1Lk8sPq2Wd6Yx0zMbN5tC</Item></MemChangeList><LastMemVer>3f2a9c1e7b4d5a6f8e0c1b2d3a4f5e6d</LastMemVer></xml>`
	a, err := ParseMessage(pretty, receivedAt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseMessage([]byte(compact), receivedAt)
	if err != nil {
		t.Fatal(err)
	}
	if a.DedupeKey != b.DedupeKey {
		t.Errorf("re-serialized event changed key:\n%q\n%q", a.DedupeKey, b.DedupeKey)
	}
}
