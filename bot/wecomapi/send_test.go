package wecomapi_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/wecomapi"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

func TestSendBuildsRequests(t *testing.T) {
	t.Parallel()
	link := bot.Attachment{Type: "link", Title: "签到", URL: "https://h5.example/checkin?sig=abc&m=1", PicURL: "https://h5.example/p.png", Desc: "每日签到"}
	mini := bot.Attachment{Type: "miniprogram", Title: "商城", AppID: "wx123", Page: "pages/index", MediaID: "cover-1"}
	type want map[string]any // jsonPath → value
	for _, tc := range []struct {
		name    string
		kind    bot.ActionKind
		payload any
		api     string
		body    want
		query   map[string]string
		detail  string
	}{
		{
			name: "welcome", kind: bot.ActionWelcome, api: fakewecom.APISendWelcomeMsg,
			payload: bot.WelcomeMessage{WelcomeCode: "wc-1", Text: "欢迎", Attachments: []bot.Attachment{link, mini,
				{Type: "image", MediaID: "img-1"}, {Type: "video", MediaID: "v-1"}, {Type: "file", MediaID: "f-1"}}},
			body: want{
				"welcome_code": "wc-1", "text.content": "欢迎",
				"attachments.0.msgtype": "link", "attachments.0.link.url": link.URL, "attachments.0.link.title": "签到",
				"attachments.0.link.picurl": link.PicURL, "attachments.0.link.desc": "每日签到",
				"attachments.1.msgtype": "miniprogram", "attachments.1.miniprogram.appid": "wx123",
				"attachments.1.miniprogram.page": "pages/index", "attachments.1.miniprogram.pic_media_id": "cover-1",
				"attachments.2.image.media_id": "img-1", "attachments.3.video.media_id": "v-1", "attachments.4.file.media_id": "f-1",
			},
			detail: "welcome sent (5 attachments)",
		},
		{
			name: "mark_tag", kind: bot.ActionMarkTag, api: fakewecom.APIMarkTag,
			payload: bot.MarkTag{StaffID: "zhangsan", ExternalUserID: "wm-1", Add: []string{"VIP"}, Remove: []string{"新客"}},
			body:    want{"userid": "zhangsan", "external_userid": "wm-1", "add_tag.0": "TAG:VIP", "remove_tag.0": "TAG:新客"},
			detail:  "tags +1 -1",
		},
		{
			name: "mass_send", kind: bot.ActionMassSend, api: fakewecom.APIAddMsgTemplate,
			payload: bot.MassSend{ChatType: "single", Sender: "zhangsan", ExternalUserIDs: []string{"wm-1", "wm-2"}, Text: "周末活动", Attachments: []bot.Attachment{link}},
			body: want{"chat_type": "single", "sender": "zhangsan", "external_userid.1": "wm-2", "text.content": "周末活动",
				"attachments.0.link.url": link.URL},
		},
		{
			name: "mass_send to groups", kind: bot.ActionMassSend, api: fakewecom.APIAddMsgTemplate,
			payload: bot.MassSend{ChatType: "group", Sender: "zhangsan", ChatIDs: []string{"wr-1"}, Text: "群发"},
			body:    want{"chat_type": "group", "chat_id_list.0": "wr-1", "text.content": "群发"},
		},
		{
			name: "group_welcome add", kind: bot.ActionGroupWelcome, api: fakewecom.APIGroupWelcomeTemplateAdd,
			payload: bot.GroupWelcome{Name: "入群", Text: "欢迎入群", Attachments: []bot.Attachment{{Type: "image", MediaID: "img-9"}}},
			body:    want{"text.content": "欢迎入群", "image.media_id": "img-9"},
		},
		{
			name: "group_welcome edit", kind: bot.ActionGroupWelcome, api: fakewecom.APIGroupWelcomeTemplateEdit,
			payload: bot.GroupWelcome{TemplateID: "TEMPLATE", Name: "入群", Text: "新欢迎语", Attachments: []bot.Attachment{link}},
			body:    want{"template_id": "TEMPLATE", "text.content": "新欢迎语", "link.url": link.URL},
			detail:  "template_id=TEMPLATE",
		},
		{
			name: "staff_message", kind: bot.ActionStaffMessage, api: fakewecom.APIMessageSend,
			payload: bot.StaffMessage{ToUsers: []string{"zhangsan", "lisi"}, Text: "新客户"},
			body:    want{"touser": "zhangsan|lisi", "msgtype": "text", "agentid": "1000002", "text.content": "新客户"},
		},
		{
			name: "kf_message", kind: bot.ActionKfMessage, api: fakewecom.APIKfSendMsg,
			payload: bot.KfMessage{OpenKfID: "wk-1", ExternalUserID: "wm-1", Text: "签到成功", MsgID: "reply-42"},
			body:    want{"touser": "wm-1", "open_kfid": "wk-1", "msgid": "reply-42", "msgtype": "text", "text.content": "签到成功"},
			detail:  "msgid=reply-42",
		},
		{
			name: "robot text", kind: bot.ActionRobot, api: fakewecom.APIWebhookSend,
			payload: bot.RobotMessage{Robot: "ops", Text: "日报"},
			body:    want{"msgtype": "text", "text.content": "日报"},
			query:   map[string]string{"key": "robot-key-1"},
			detail:  "robot ops",
		},
		{
			name: "robot markdown", kind: bot.ActionRobot, api: fakewecom.APIWebhookSend,
			payload: bot.RobotMessage{Robot: "ops", Markdown: "**日报**"},
			body:    want{"msgtype": "markdown", "markdown.content": "**日报**"},
			query:   map[string]string{"key": "robot-key-1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			e.fake.AddTagGroup("客户等级", "VIP", "新客")
			// What real WeCom would know: uploaded media, a customer who wrote to kf.
			for _, id := range []string{"cover-1", "img-1", "v-1", "f-1", "img-9"} {
				e.fake.AddMedia(id, time.Now())
			}
			e.fake.CustomerMessage("wk-1", "wm-1", time.Now())
			ctx := context.Background()
			if tc.api == fakewecom.APIGroupWelcomeTemplateEdit {
				// Create the template to edit; its id replaces TEMPLATE.
				res, _, err := e.client.Send(ctx, action(t, bot.ActionGroupWelcome, bot.GroupWelcome{Name: "x", Text: "x"}))
				if err != nil {
					t.Fatal(err)
				}
				id := res.Detail[len("template_id="):]
				p := tc.payload.(bot.GroupWelcome)
				p.TemplateID = id
				tc.payload = p
				tc.body["template_id"] = id
				tc.detail = "template_id=" + id
			}
			res, retry, err := e.client.Send(ctx, action(t, tc.kind, tc.payload))
			if err != nil || retry {
				t.Fatalf("Send: retry %v, %v", retry, err)
			}
			if tc.detail != "" && res.Detail != tc.detail {
				t.Errorf("detail = %q, want %q", res.Detail, tc.detail)
			}
			calls := e.fake.Calls(tc.api)
			if len(calls) != 1 {
				t.Fatalf("%s calls = %d, want 1", tc.api, len(calls))
			}
			call := calls[0]
			for path, wantValue := range tc.body {
				if s, ok := wantValue.(string); ok && len(s) > 4 && s[:4] == "TAG:" {
					wantValue = e.fake.TagID("客户等级", s[4:])
				}
				if got := jsonPath(call.Body, path); !reflect.DeepEqual(got, wantValue) {
					t.Errorf("%s = %#v, want %#v (body %s)", path, got, wantValue, call.RawBody)
				}
			}
			for k, v := range tc.query {
				if got := call.Query.Get(k); got != v {
					t.Errorf("query %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestInvalidActionsAreFinal(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for name, a := range map[string]*bot.Action{
		"unknown kind":       action(t, "poke", map[string]string{}),
		"bad payload":        {Kind: bot.ActionWelcome, Payload: []byte(`[`)},
		"no welcome code":    action(t, bot.ActionWelcome, bot.WelcomeMessage{Text: "hi"}),
		"bad attachment":     action(t, bot.ActionWelcome, bot.WelcomeMessage{WelcomeCode: "wc", Attachments: []bot.Attachment{{Type: "gif"}}}),
		"ten attachments":    action(t, bot.ActionWelcome, bot.WelcomeMessage{WelcomeCode: "wc", Attachments: make([]bot.Attachment, 10)}),
		"two group welcome":  action(t, bot.ActionGroupWelcome, bot.GroupWelcome{Text: "x", Attachments: make([]bot.Attachment, 2)}),
		"no staff":           action(t, bot.ActionStaffMessage, bot.StaffMessage{Text: "x"}),
		"bad chat type":      action(t, bot.ActionMassSend, bot.MassSend{ChatType: "all", Text: "x"}),
		"tag without member": action(t, bot.ActionMarkTag, bot.MarkTag{Add: []string{"VIP"}}),
	} {
		_, retry, err := e.client.Send(context.Background(), a)
		if err == nil || retry {
			t.Errorf("%s: retry %v, err %v; want a final error", name, retry, err)
		}
	}
	if n := e.fake.Count(""); n != 0 {
		t.Errorf("invalid actions reached the fake: %d calls", n)
	}
}

func TestTagsResolvedAndCreatedOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.fake.AddTagGroup("客户等级", "VIP")
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			a := action(t, bot.ActionMarkTag, bot.MarkTag{StaffID: "s1", ExternalUserID: fmt.Sprintf("wm-%d", i),
				Add: []string{"VIP", "来自海报", "签到达人"}, Remove: []string{"不存在"}})
			if _, _, err := e.client.Send(context.Background(), a); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := e.fake.Count(fakewecom.APIAddCorpTag); n != 1 {
		t.Errorf("add_corp_tag calls = %d, want 1", n)
	}
	if n := e.fake.Count(fakewecom.APIGetCorpTagList); n != 1 {
		t.Errorf("get_corp_tag_list calls = %d, want 1", n)
	}
	add := e.fake.Calls(fakewecom.APIAddCorpTag)[0]
	if got := jsonPath(add.Body, "group_name"); got != wecomapi.DefaultTagGroup {
		t.Errorf("created in group %v, want %s", got, wecomapi.DefaultTagGroup)
	}
	ids := []any{e.fake.TagID("客户等级", "VIP"), e.fake.TagID("wecombot", "来自海报"), e.fake.TagID("wecombot", "签到达人")}
	for _, c := range e.fake.Calls(fakewecom.APIMarkTag) {
		if got := c.Body["add_tag"]; !reflect.DeepEqual(got, ids) {
			t.Fatalf("add_tag = %v, want %v", got, ids)
		}
		if got := c.Body["remove_tag"]; got != nil {
			t.Fatalf("remove_tag = %v, want none (unknown tags are not created to be removed)", got)
		}
	}
	if n := e.fake.Count(fakewecom.APIMarkTag); n != 30 {
		t.Errorf("mark_tag calls = %d, want 30", n)
	}
}

func TestTagCreatedInPayloadGroupAndExistingGroupReused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	g := e.fake.AddTagGroup("活动", "老标签")
	a := action(t, bot.ActionMarkTag, bot.MarkTag{StaffID: "s1", ExternalUserID: "wm-1", Add: []string{"新标签"}, Group: "活动"})
	if _, _, err := e.client.Send(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	add := e.fake.Calls(fakewecom.APIAddCorpTag)[0]
	if got := jsonPath(add.Body, "group_id"); got != g.ID {
		t.Errorf("group_id = %v, want the existing group %s", got, g.ID)
	}
	// A tag created in the admin console after the last refresh is found
	// by the refresh a miss triggers, not created twice.
	e.fake.AddTagGroup("wecombot", "后台新建")
	b := action(t, bot.ActionMarkTag, bot.MarkTag{StaffID: "s1", ExternalUserID: "wm-1", Add: []string{"后台新建"}})
	if _, _, err := e.client.Send(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.Count(fakewecom.APIAddCorpTag); n != 1 {
		t.Errorf("add_corp_tag calls = %d, want 1", n)
	}
}

func TestOtherMethods(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()

	id, qr, err := e.client.CreateContactWay(ctx, "poster-2026", []string{"zhangsan"})
	if err != nil || id == "" || qr == "" {
		t.Fatalf("CreateContactWay = %q %q %v", id, qr, err)
	}
	body := e.fake.Calls(fakewecom.APIAddContactWay)[0].Body
	for path, v := range map[string]any{"type": 1.0, "scene": 2.0, "state": "poster-2026", "user.0": "zhangsan", "skip_verify": true} {
		if got := jsonPath(body, path); got != v {
			t.Errorf("add_contact_way %s = %v, want %v", path, got, v)
		}
	}
	if _, _, err := e.client.CreateContactWay(ctx, "multi", []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if got := jsonPath(e.fake.Calls(fakewecom.APIAddContactWay)[1].Body, "type"); got != 2.0 {
		t.Errorf("multi-staff type = %v, want 2", got)
	}
	if _, _, err := e.client.CreateContactWay(ctx, "this-state-is-much-longer-than-thirty", []string{"a"}); err == nil {
		t.Error("long state accepted")
	}

	e.fake.AddExternalContact("wm-1", "小明")
	name, err := e.client.GetExternalContact(ctx, "wm-1")
	if err != nil || name != "小明" {
		t.Fatalf("GetExternalContact = %q, %v", name, err)
	}
	if _, err := e.client.GetExternalContact(ctx, "wm-404"); !isCode(err, 40096) {
		t.Fatalf("unknown contact: %v, want 40096", err)
	}

	sent := time.Unix(1767225600, 0)
	e.fake.ScriptKf("cb-token", "", fakewecom.KfPage{NextCursor: "c1", HasMore: true, Msgs: []map[string]any{
		fakewecom.KfText("m1", "wk-1", "wm-1", "签到", sent),
		fakewecom.KfEnterSession("e1", "wk-1", "wm-1", "xhs", "p=1", "WELCOMECODE", sent),
		{"msgid": "r1", "msgtype": "text", "origin": 5, "open_kfid": "wk-1", "text": map[string]any{"content": "our reply"}},
	}})
	e.fake.ScriptKf("cb-token", "c1", fakewecom.KfPage{NextCursor: "c2", Msgs: []map[string]any{fakewecom.KfText("m2", "wk-1", "wm-2", "领券", sent)}})
	msgs, next, more, err := e.client.KfSyncMsg(ctx, "cb-token", "wk-1", "")
	want := []wecomapi.KfMsg{{MsgID: "m1", OpenKfID: "wk-1", ExternalUserID: "wm-1", Text: "签到", SendTime: sent},
		{MsgID: "e1", OpenKfID: "wk-1", ExternalUserID: "wm-1", SendTime: sent, Event: &wecomapi.KfEvent{Type: "enter_session",
			OpenKfID: "wk-1", ExternalUserID: "wm-1", Scene: "xhs", SceneParam: "p=1", WelcomeCode: "WELCOMECODE"}}}
	if err != nil || next != "c1" || !more || !reflect.DeepEqual(msgs, want) {
		t.Fatalf("KfSyncMsg = %+v %q %v %v", msgs, next, more, err)
	}
	msgs, next, more, err = e.client.KfSyncMsg(ctx, "cb-token", "wk-1", next)
	if err != nil || next != "c2" || more || len(msgs) != 1 || msgs[0].Text != "领券" {
		t.Fatalf("KfSyncMsg page 2 = %+v %q %v %v", msgs, next, more, err)
	}
	call := e.fake.Calls(fakewecom.APIKfSyncMsg)[1]
	if jsonPath(call.Body, "token") != "cb-token" || jsonPath(call.Body, "cursor") != "c1" || jsonPath(call.Body, "open_kfid") != "wk-1" {
		t.Errorf("sync_msg body %s", call.RawBody)
	}
}

func isCode(err error, code int64) bool {
	var apiErr *wecomapi.APIError
	return errors.As(err, &apiErr) && apiErr.Code == code
}

func TestSandboxRecords(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	s := wecomapi.NewSandbox(zerolog.New(logs))
	var sender bot.Sender = s
	a := welcome(t, "wc-1")
	a.MemberID = "wm-1"
	res, retry, err := sender.Send(context.Background(), a)
	if err != nil || retry || res.Detail != "sandbox" {
		t.Fatalf("Send = %+v %v %v", res, retry, err)
	}
	a.Payload[0] = 'X' // the recorded copy must not change
	if _, _, err := s.Send(context.Background(), action(t, bot.ActionRobot, bot.RobotMessage{Robot: "ops", Text: "日报"})); err != nil {
		t.Fatal(err)
	}
	got := s.Sent()
	if len(got) != 2 || got[0].Kind != bot.ActionWelcome || got[0].MemberID != "wm-1" || got[1].Kind != bot.ActionRobot {
		t.Fatalf("Sent = %+v", got)
	}
	var p bot.WelcomeMessage
	if err := got[0].Decode(&p); err != nil || p.Text != "欢迎 welcome" {
		t.Fatalf("recorded payload %s: %v", got[0].Payload, err)
	}
	for _, want := range []string{`"kind":"welcome"`, `"member":"wm-1"`, "欢迎 welcome", `"kind":"robot"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s: %s", want, logs.String())
		}
	}
}
