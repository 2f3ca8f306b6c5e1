package fakewecom_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

func newRulesFake(t *testing.T) (*fakewecom.Server, *fakewecom.Clock, string) {
	t.Helper()
	s := fakewecom.New(t)
	c := fakewecom.NewClock(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC))
	s.SetClock(c.Now)
	return s, c, token(t, s)
}

func upload(t *testing.T, s *fakewecom.Server, path, name string, data []byte) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	part, _ := w.CreateFormFile("media", name)
	part.Write(data)
	w.Close()
	return postAs(t, s, path, w.FormDataContentType(), &buf)
}

func code(m map[string]any) float64 { f, _ := m["errcode"].(float64); return f }

// The send_welcome_msg body is the official example's shape.
func welcomeBody(code, attachments string) string {
	return `{"welcome_code":"` + code + `","text":{"content":"文本消息内容"},"attachments":[` + attachments + `]}`
}

func TestFakeMediaExpiresAfterThreeDays(t *testing.T) {
	s, c, tok := newRulesFake(t)
	up := upload(t, s, "media/upload?type=file&access_token="+tok, "wework.txt", []byte("mytext"))
	id, _ := up["media_id"].(string)
	if code(up) != 0 || id == "" || up["type"] != "file" {
		t.Fatalf("upload answer %v", up)
	}
	if _, isString := up["created_at"].(string); !isString {
		t.Errorf("created_at %T, want a string as in WeCom's example", up["created_at"])
	}
	att := `{"msgtype":"file","file":{"media_id":"` + id + `"}}`
	if got := post(t, s, "externalcontact/send_welcome_msg?access_token="+tok, welcomeBody("wc-1", att)); code(got) != 0 {
		t.Fatalf("fresh media refused: %v", got)
	}
	c.Add(72*time.Hour - time.Minute)
	if got := post(t, s, "externalcontact/send_welcome_msg?access_token="+tok, welcomeBody("wc-2", att)); code(got) != 0 {
		t.Fatalf("media refused before 3 days: %v", got)
	}
	c.Add(time.Minute)
	got := post(t, s, "externalcontact/send_welcome_msg?access_token="+tok, welcomeBody("wc-3", att))
	if code(got) != 40007 {
		t.Fatalf("media after 3 days: %v, want 40007", got)
	}
	// The failed call did not use the welcome code.
	if got := post(t, s, "externalcontact/send_welcome_msg?access_token="+tok, welcomeBody("wc-3", "")); code(got) != 0 {
		t.Errorf("welcome code used by a refused call: %v", got)
	}
	if got := upload(t, s, "media/upload?type=file&access_token="+tok, "x.txt", []byte("tiny")); code(got) != 40006 {
		t.Errorf("5-byte file: %v, want 40006", got)
	}
}

func TestFakePicURLMustComeFromUploadImg(t *testing.T) {
	s, c, tok := newRulesFake(t)
	// The official example's pic_url is not one this corp uploaded.
	foreign := `{"msgtype":"image","image":{"pic_url":"http://p.qpic.cn/pic_wework/3474110808/7a6344sdadfwehe42060/0"}}`
	if got := post(t, s, "externalcontact/send_welcome_msg?access_token="+tok, welcomeBody("wc-1", foreign)); code(got) != 40058 {
		t.Errorf("foreign pic_url: %v, want 40058", got)
	}
	up := upload(t, s, "media/uploadimg?access_token="+tok, "menu.png", bytes.Repeat([]byte{1}, 100))
	u, _ := up["url"].(string)
	if code(up) != 0 || !strings.HasPrefix(u, "https://") {
		t.Fatalf("uploadimg answer %v", up)
	}
	c.Add(30 * 24 * time.Hour) // uploadimg URLs are permanent
	own := `{"msgtype":"image","image":{"pic_url":"` + u + `"}}`
	if got := post(t, s, "externalcontact/send_welcome_msg?access_token="+tok, welcomeBody("wc-2", own)); code(got) != 0 {
		t.Errorf("uploadimg URL after 30 days: %v", got)
	}
	if got := upload(t, s, "media/uploadimg?access_token="+tok, "big.png", make([]byte, 2<<20+1)); code(got) != 40006 {
		t.Errorf("uploadimg over 2 MB: %v, want 40006", got)
	}
}

func kfSend(t *testing.T, s *fakewecom.Server, tok, msgID string) map[string]any {
	t.Helper()
	// The official kf/send_msg example, with our ids.
	body := `{"touser":"wmAAA","open_kfid":"wkAAA","msgid":"` + msgID + `","msgtype":"text","text":{"content":"你购买的物品已发货，可点击链接查看物流状态http://work.weixin.qq.com/xxxxxx"}}`
	return post(t, s, "kf/send_msg?access_token="+tok, body)
}

func TestFakeKfWindowAndReplyLimit(t *testing.T) {
	s, c, tok := newRulesFake(t)
	if got := kfSend(t, s, tok, "m0"); code(got) != 95002 {
		t.Errorf("send to a customer who never wrote: %v, want 95002", got)
	}
	s.CustomerMessage("wkAAA", "wmAAA", c.Now())
	for i := range 5 {
		if got := kfSend(t, s, tok, "m"+string(rune('1'+i))); code(got) != 0 {
			t.Fatalf("reply %d: %v", i+1, got)
		}
	}
	if got := kfSend(t, s, tok, "m6"); code(got) != 95001 {
		t.Errorf("6th reply to one message: %v, want 95001", got)
	}
	s.CustomerMessage("wkAAA", "wmAAA", c.Now())
	if got := kfSend(t, s, tok, "m7"); code(got) != 0 {
		t.Errorf("reply after a new message: %v", got)
	}
	if got := kfSend(t, s, tok, "m7"); code(got) != fakewecom.CodeKfDuplicateMsgID {
		t.Errorf("reused msgid: %v, want %d", got, fakewecom.CodeKfDuplicateMsgID)
	}
	c.Add(48*time.Hour + time.Second)
	if got := kfSend(t, s, tok, "m8"); code(got) != 95002 {
		t.Errorf("reply after 48 h: %v, want 95002", got)
	}
}

func TestFakeKfSessionStates(t *testing.T) {
	s, c, tok := newRulesFake(t)
	// A customer message served by sync_msg opens the session (state 0).
	s.ScriptKf("tok", "", fakewecom.KfPage{Msgs: []map[string]any{
		fakewecom.KfEnterSession("e1", "wkAAA", "wmAAA", "channel-a", "p=1", "WELCOME-1", c.Now()),
		fakewecom.KfText("t1", "wkAAA", "wmAAA", "人工", c.Now()),
	}, NextCursor: "c1"})
	post(t, s, "kf/sync_msg?access_token="+tok, `{"cursor":"","token":"tok","limit":1000,"voice_format":0,"open_kfid":"wkAAA"}`)
	get := func() map[string]any {
		return post(t, s, "kf/service_state/get?access_token="+tok, `{"open_kfid":"wkAAA","external_userid":"wmAAA"}`)
	}
	if got := get(); got["service_state"] != 0.0 {
		t.Fatalf("state after a message: %v", got)
	}
	onEvent := `{"code":"WELCOME-1","msgid":"w1","msgtype":"text","text":{"content":"欢迎咨询"}}`
	if got := post(t, s, "kf/send_msg_on_event?access_token="+tok, onEvent); code(got) != 0 || got["msgid"] != "w1" {
		t.Fatalf("send_msg_on_event: %v", got)
	}
	onEvent2 := `{"code":"WELCOME-1","msgid":"w2","msgtype":"text","text":{"content":"欢迎咨询"}}`
	if got := post(t, s, "kf/send_msg_on_event?access_token="+tok, onEvent2); code(got) == 0 {
		t.Errorf("welcome_code used twice: %v", got)
	}
	s.SetServicers("zhangsan")
	trans := func(state int, servicer string) map[string]any {
		body, _ := json.Marshal(map[string]any{"open_kfid": "wkAAA", "external_userid": "wmAAA", "service_state": state, "servicer_userid": servicer})
		return post(t, s, "kf/service_state/trans?access_token="+tok, string(body))
	}
	if got := trans(3, "lisi"); code(got) != 95014 {
		t.Errorf("trans to a non-servicer: %v, want 95014", got)
	}
	if got := trans(3, "zhangsan"); code(got) != 0 {
		t.Fatalf("trans to a person: %v", got)
	}
	if got := get(); got["service_state"] != 3.0 || got["servicer_userid"] != "zhangsan" {
		t.Errorf("state after trans: %v", got)
	}
	if got := kfSend(t, s, tok, "p1"); code(got) != 95018 {
		t.Errorf("bot send while a person holds the session: %v, want 95018", got)
	}
	if got := trans(4, ""); code(got) != 0 || got["msg_code"] == nil {
		t.Errorf("end session: %v (want a msg_code)", got)
	}
	if got := trans(1, ""); code(got) != 95016 {
		t.Errorf("ended → bot: %v, want 95016", got)
	}
	if got := kfSend(t, s, tok, "p2"); code(got) != 95018 {
		t.Errorf("bot send to an ended session: %v, want 95018", got)
	}
	s.CustomerMessage("wkAAA", "wmAAA", c.Now())
	if got := kfSend(t, s, tok, "p3"); code(got) != 0 {
		t.Errorf("bot send after the customer wrote again: %v", got)
	}
}

func TestFakeMassSendQuotaAndResults(t *testing.T) {
	s, c, tok := newRulesFake(t)
	s.SetMassQuota(2)
	s.NotFriend("wmGone")
	// The official add_msg_template example, trimmed to text.
	body := `{"chat_type":"single","external_userid":["woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA","wmGone"],"sender":"zhangsan","text":{"content":"文本消息内容"}}`
	var ids []string
	for i := range 3 {
		got := post(t, s, "externalcontact/add_msg_template?access_token="+tok, body)
		fail, _ := got["fail_list"].([]any)
		want := []string{"wmGone"}
		if i == 2 {
			want = []string{"woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA", "wmGone"}
		}
		if code(got) != 0 || len(fail) != len(want) {
			t.Fatalf("task %d: %v, want fail_list %v", i+1, got, want)
		}
		ids = append(ids, got["msgid"].(string))
	}
	res := func(id string) map[string]float64 {
		got := post(t, s, "externalcontact/get_groupmsg_send_result?access_token="+tok, `{"msgid":"`+id+`","userid":"zhangsan","limit":500}`)
		out := map[string]float64{}
		list, _ := got["send_list"].([]any)
		for _, x := range list {
			m := x.(map[string]any)
			out[m["external_userid"].(string)] = m["status"].(float64)
		}
		return out
	}
	if got := res(ids[0]); got["woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA"] != 0 || got["wmGone"] != 2 {
		t.Errorf("before confirmation: %v (want 0 unsent, 2 not a friend)", got)
	}
	if got := post(t, s, "externalcontact/remind_groupmsg_send?access_token="+tok, `{"msgid":"`+ids[0]+`"}`); code(got) != 0 {
		t.Errorf("remind: %v", got)
	}
	task := post(t, s, "externalcontact/get_groupmsg_task?access_token="+tok, `{"msgid":"`+ids[0]+`","limit":50}`)
	if list := task["task_list"].([]any); list[0].(map[string]any)["status"] != 0.0 {
		t.Errorf("unconfirmed task status: %v", task)
	}
	// A stopped task (cancel_groupmsg_send) can no longer be sent; a sent
	// one can't be stopped.
	if got := post(t, s, "externalcontact/cancel_groupmsg_send?access_token="+tok, `{"msgid":"`+ids[1]+`"}`); code(got) != 0 || s.ConfirmMassSend(ids[1]) {
		t.Errorf("cancel: %v, then confirmable", got)
	}
	s.ConfirmMassSend(ids[0])
	if got := post(t, s, "externalcontact/cancel_groupmsg_send?access_token="+tok, `{"msgid":"`+ids[0]+`"}`); code(got) != 41063 {
		t.Errorf("cancel of a sent task: %v, want 41063", got)
	}
	if got := res(ids[0]); got["woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA"] != 1 {
		t.Errorf("after confirmation: %v (want 1 sent)", got)
	}
	if got := res(ids[2]); got["woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA"] != 3 {
		t.Errorf("over quota: %v (want 3)", got)
	}
	// A new natural month resets the quota.
	c.Add(25 * 24 * time.Hour)
	got := post(t, s, "externalcontact/add_msg_template?access_token="+tok, body)
	if fail, _ := got["fail_list"].([]any); len(fail) != 1 {
		t.Errorf("next month: %v", got)
	}
}

func TestFakeDeletedTagAndAgentID(t *testing.T) {
	s, _, tok := newRulesFake(t)
	g := s.AddTagGroup("等级", "VIP")
	id := g.Tags[0].ID
	mark := `{"userid":"zhangsan","external_userid":"woAJ2GCAAAd1NPGHKSD4wKmE8Aabj9AAA","add_tag":["` + id + `"],"remove_tag":[]}`
	if got := post(t, s, "externalcontact/mark_tag?access_token="+tok, mark); code(got) != 0 {
		t.Fatalf("mark_tag: %v", got)
	}
	s.DeleteTag(id)
	if got := post(t, s, "externalcontact/mark_tag?access_token="+tok, mark); code(got) != 40068 {
		t.Errorf("deleted tag: %v, want 40068", got)
	}
	s.SetAgentID("1000002")
	send := func(agent string) map[string]any {
		return post(t, s, "message/send?access_token="+tok, `{"touser":"UserID1","msgtype":"text","agentid":`+agent+`,"text":{"content":"hi"}}`)
	}
	if got := send("1000002"); code(got) != 0 {
		t.Errorf("own agentid: %v", got)
	}
	if got := send("1000099"); code(got) != 301002 {
		t.Errorf("foreign agentid: %v, want 301002", got)
	}
}

func TestFakeProfilesAndLatency(t *testing.T) {
	s, _, tok := newRulesFake(t)
	s.SetContact(fakewecom.Contact{ExternalUserID: "woAJ2GCAAAXtWyujaWJHDDGi0mACHAAA", Name: "李四", Type: 1, Gender: 1, UnionID: "ozynqsulJFCZ2z1aYeS8h-nuasdAAA",
		FollowUsers: []fakewecom.FollowUser{{UserID: "rocky", State: "xhs", Tags: []fakewecom.FollowTag{{GroupName: "人群", TagName: "宝妈", TagID: "et1", Type: 1}}}}})
	resp, err := http.Get(s.URL() + "/cgi-bin/externalcontact/get?access_token=" + tok + "&external_userid=woAJ2GCAAAXtWyujaWJHDDGi0mACHAAA")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		ExternalContact struct {
			Name    string `json:"name"`
			Gender  int    `json:"gender"`
			UnionID string `json:"unionid"`
		} `json:"external_contact"`
		FollowUser []struct {
			UserID string `json:"userid"`
			State  string `json:"state"`
			Tags   []struct {
				TagName string `json:"tag_name"`
			} `json:"tags"`
		} `json:"follow_user"`
	}
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if got.ExternalContact.Name != "李四" || got.ExternalContact.Gender != 1 || got.ExternalContact.UnionID == "" ||
		len(got.FollowUser) != 1 || got.FollowUser[0].State != "xhs" || got.FollowUser[0].Tags[0].TagName != "宝妈" {
		t.Errorf("externalcontact/get = %+v", got)
	}
	s.SetGroupChat(fakewecom.GroupChat{ChatID: "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA", Name: "销售客服群", Owner: "ZhuShengBen",
		Members: []fakewecom.GroupMember{{UserID: "wmOgQhDgAAuXFJGwbve4g4iXknfOAAAA", Type: 2, JoinScene: 3, State: "qr-1"}}})
	g := post(t, s, "externalcontact/groupchat/get?access_token="+tok, `{"chat_id":"wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA","need_name":1}`)
	chat, _ := g["group_chat"].(map[string]any)
	if chat["owner"] != "ZhuShengBen" || len(chat["member_list"].([]any)) != 1 {
		t.Errorf("groupchat/get = %v", g)
	}
	s.SetLatency(80 * time.Millisecond)
	start := time.Now()
	post(t, s, "externalcontact/groupchat/get?access_token="+tok, `{"chat_id":"x"}`)
	if took := time.Since(start); took < 80*time.Millisecond {
		t.Errorf("answer took %v with 80 ms latency", took)
	}
}

// A welcome_code is usable once and only for 20 s after WeCom handed it out.
func TestFakeWelcomeCodeLifetime(t *testing.T) {
	s, c, tok := newRulesFake(t)
	send := func(code string) map[string]any {
		return post(t, s, "externalcontact/send_welcome_msg?access_token="+tok, welcomeBody(code, ""))
	}
	for _, wc := range []string{"wc-fresh", "wc-edge", "wc-late"} {
		s.IssueWelcomeCode(wc)
	}
	if got := send("wc-fresh"); code(got) != 0 {
		t.Fatalf("fresh code refused: %v", got)
	}
	if got := send("wc-fresh"); code(got) != 41051 {
		t.Fatalf("second use of a code: %v, want 41051", got)
	}
	c.Add(fakewecom.WelcomeCodeLifetime)
	if got := send("wc-edge"); code(got) != 0 {
		t.Fatalf("code used at exactly 20 s refused: %v", got)
	}
	c.Add(time.Second)
	s.IssueWelcomeCode("wc-late") // a second issue of a known code changes nothing
	if got := send("wc-late"); code(got) != 41051 || !strings.Contains(got["errmsg"].(string), "expired") {
		t.Fatalf("code used 21 s after issue: %v, want 41051 expired", got)
	}
	if got := send("wc-never-issued"); code(got) != 0 {
		t.Fatalf("a code the fake was not told of is taken as fresh: %v", got)
	}
	if n := s.ExpiredWelcomes(); n != 1 {
		t.Fatalf("ExpiredWelcomes = %d, want 1", n)
	}
}
