package wecomapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/wecomapi"
	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// A tag deleted in the admin console answers 40068: the client reloads the
// tag library (recreating the tag) and retries once.
func TestMarkTagReloadsAfterDeletedTag(t *testing.T) {
	t.Parallel()
	e := setup(t)
	g := e.fake.AddTagGroup("wecombot", "VIP")
	ctx := context.Background()
	mark := action(t, bot.ActionMarkTag, bot.MarkTag{StaffID: "zhangsan", ExternalUserID: "wm-1", Add: []string{"VIP"}})
	if _, _, err := e.client.Send(ctx, mark); err != nil {
		t.Fatal(err)
	}
	e.fake.DeleteTag(g.Tags[0].ID)
	if _, _, err := e.client.Send(ctx, mark); err != nil {
		t.Fatalf("after the tag was deleted: %v", err)
	}
	calls := e.fake.Calls(fakewecom.APIMarkTag)
	if len(calls) != 3 {
		t.Fatalf("mark_tag calls = %d, want 3 (ok, 40068, retry)", len(calls))
	}
	newID := e.fake.TagID("wecombot", "VIP")
	if newID == "" || newID == g.Tags[0].ID || jsonPath(calls[2].Body, "add_tag.0") != newID {
		t.Errorf("retry used %v, want the recreated tag %q", jsonPath(calls[2].Body, "add_tag.0"), newID)
	}
	// Only once: a library that keeps refusing is a final error.
	e.fake.FailNext(fakewecom.APIMarkTag, 40068, 2)
	_, retry, err := e.client.Send(ctx, mark)
	var apiErr *wecomapi.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 40068 || retry {
		t.Errorf("second 40068: retry %v, err %v", retry, err)
	}
}

// WeCom refuses a reused kf msgid although the first send was delivered:
// on a retried action that means delivered, not failed.
func TestKfReusedMsgIDAfterLostAnswer(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.fake.CustomerMessage("wk1", "wm1", time.Now())
	ctx := context.Background()
	a := action(t, bot.ActionKfMessage, bot.KfMessage{OpenKfID: "wk1", ExternalUserID: "wm1", Text: "hi", MsgID: "reply-1"})
	if _, _, err := e.client.Send(ctx, a); err != nil {
		t.Fatal(err)
	}
	// The same action again, as the outbox would after a lost answer.
	a.Attempts = 1
	res, _, err := e.client.Send(ctx, a)
	if err != nil {
		t.Fatalf("retry of a delivered kf message: %v", err)
	}
	if res.Detail == "" {
		t.Error("no detail")
	}
	// A first attempt that meets a reused msgid is a real error.
	b := action(t, bot.ActionKfMessage, bot.KfMessage{OpenKfID: "wk1", ExternalUserID: "wm1", Text: "hi", MsgID: "reply-1"})
	if _, _, err := e.client.Send(ctx, b); err == nil {
		t.Error("a new action reusing a msgid succeeded")
	}
}

// kf sends outside WeCom's rules are final errors with the real codes.
func TestKfRulesAreFinal(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	send := func() (bool, error) {
		_, retry, err := e.client.Send(ctx, action(t, bot.ActionKfMessage, bot.KfMessage{OpenKfID: "wk1", ExternalUserID: "wm1", Text: "hi"}))
		return retry, err
	}
	check := func(what string, code int64) {
		t.Helper()
		retry, err := send()
		var apiErr *wecomapi.APIError
		if !errors.As(err, &apiErr) || apiErr.Code != code || retry {
			t.Errorf("%s: retry %v err %v, want final %d", what, retry, err, code)
		}
	}
	check("never wrote", 95002)
	e.fake.CustomerMessage("wk1", "wm1", time.Now())
	e.fake.SetKfSessionState("wk1", "wm1", fakewecom.KfStatePerson, "zhangsan")
	check("person holds the session", 95018)
	e.fake.SetKfSessionState("wk1", "wm1", fakewecom.KfStateNew, "")
	for range 5 {
		if _, err := send(); err != nil {
			t.Fatal(err)
		}
	}
	check("sixth reply", 95001)
}

// group_welcome_template/add: notify absent means "notify"; notify: false
// must reach WeCom as 0 (the library's omitempty would drop it).
func TestGroupWelcomeNotify(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	no := false
	for _, p := range []bot.GroupWelcome{{Name: "a", Text: "欢迎"}, {Name: "b", Text: "欢迎", Notify: &no}} {
		if _, _, err := e.client.Send(ctx, action(t, bot.ActionGroupWelcome, p)); err != nil {
			t.Fatal(err)
		}
	}
	calls := e.fake.Calls(fakewecom.APIGroupWelcomeTemplateAdd)
	if len(calls) != 2 || calls[0].Body["notify"] != 1.0 || calls[1].Body["notify"] != 0.0 {
		t.Fatalf("notify sent: %v / %v, want 1 then 0", calls[0].Body["notify"], calls[1].Body["notify"])
	}
	if jsonPath(calls[0].Body, "text.content") != "欢迎" {
		t.Errorf("text lost: %s", calls[0].RawBody)
	}
}

// A tag_refresh action reloads the library: a tag created in the admin
// console is then found without creating a duplicate.
func TestTagRefreshAction(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	if err := e.client.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	e.fake.AddTagGroup("wecombot", "宝妈") // created in the console after the cache was filled
	if _, _, err := e.client.Send(ctx, action(t, bot.ActionTagRefresh, bot.TagRefresh{ChangeType: "create"})); err != nil {
		t.Fatal(err)
	}
	mark := action(t, bot.ActionMarkTag, bot.MarkTag{StaffID: "zhangsan", ExternalUserID: "wm-1", Add: []string{"宝妈"}})
	if _, _, err := e.client.Send(ctx, mark); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.Count(fakewecom.APIAddCorpTag); n != 0 {
		t.Errorf("add_corp_tag calls = %d: the refreshed library should have had the tag", n)
	}
	if n := e.fake.Count(fakewecom.APIGetCorpTagList); n != 2 {
		t.Errorf("get_corp_tag_list calls = %d, want 2 (ping, refresh)", n)
	}
}

// contact_profile reads externalcontact/get (the official example's shape)
// and hands name, gender, unionid and each follow user's corp tags and state back.
func TestContactProfile(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.fake.SetContact(fakewecom.Contact{ExternalUserID: "woAJ2GCAAAXtWyujaWJHDDGi0mACHAAA", Name: "李四", Type: 1, Gender: 1,
		UnionID: "ozynqsulJFCZ2z1aYeS8h-nuasdAAA", FollowUsers: []fakewecom.FollowUser{{UserID: "rocky", State: "xhs",
			Tags: []fakewecom.FollowTag{{GroupName: "人群", TagName: "宝妈", TagID: "et1", Type: 1}, {TagName: "私人", Type: 2}}}}})
	res, _, err := e.client.Send(context.Background(), action(t, bot.ActionContactProfile, bot.ContactProfile{ExternalUserID: "woAJ2GCAAAXtWyujaWJHDDGi0mACHAAA"}))
	if err != nil {
		t.Fatal(err)
	}
	var p bot.ContactProfileData
	if err := json.Unmarshal([]byte(res.Data["profile"]), &p); err != nil {
		t.Fatal(err)
	}
	if p.Name != "李四" || p.Gender != 1 || p.UnionID == "" || len(p.Follows) != 1 || p.Follows[0].State != "xhs" ||
		len(p.Follows[0].Tags) != 1 || p.Follows[0].Tags[0] != "宝妈" {
		t.Fatalf("profile %+v", p)
	}
}

// group_detail reads groupchat/get (the official example's ids) and hands
// the owner, name and members back; a group WeCom doesn't know (40050) is
// nothing to learn, not a failed action.
func TestGroupProfile(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.fake.SetGroupChat(fakewecom.GroupChat{ChatID: "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA", Name: "销售客服群", Owner: "ZhuShengBen",
		Members: []fakewecom.GroupMember{{UserID: "wmOgQhDgAAuXFJGwbve4g4iXknfOAAAA", Type: 2, JoinScene: 3, State: "qr-1"}}})
	res, _, err := e.client.Send(context.Background(), action(t, bot.ActionGroupDetail, bot.GroupDetail{ChatID: "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"}))
	if err != nil {
		t.Fatal(err)
	}
	var members []bot.SyncGroupMember
	if err := json.Unmarshal([]byte(res.Data[bot.DataGroupMembers]), &members); err != nil {
		t.Fatal(err)
	}
	if res.Data["owner"] != "ZhuShengBen" || res.Data["name"] != "销售客服群" || len(members) != 1 || members[0].State != "qr-1" || members[0].JoinScene != 3 {
		t.Fatalf("group %v %+v", res.Data, members)
	}
	res, _, err = e.client.Send(context.Background(), action(t, bot.ActionGroupDetail, bot.GroupDetail{ChatID: "wrUnknownGroup"}))
	if err != nil || len(res.Data) != 1 || res.Data["chat_id"] != "wrUnknownGroup" {
		t.Errorf("unknown group: %+v %v, want only the chat answered (nothing learnt) and no error", res, err)
	}
}
