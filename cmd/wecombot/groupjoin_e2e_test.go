package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
	"github.com/wecombot/wecombot/scenarios"
)

// groupChannelYAML adds a group QR code channel to the demo scenario.
const groupChannelYAML = `
tags:
  群渠道: [来源-福利群]
channels:
  - state: grp_tea
    name: 茶友福利群
    tags: [来源-福利群]
    group:
      chat_ids: [wrSyncGroup0000, wrSyncGroup0001]
      auto_create: true
      room_base_name: 山茶集福利群
      room_base_id: 10
`

func scenarioDirWith(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range scenarios.DefaultFiles() {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The files the demo attaches live beside it (images/cover.png).
	for name, b := range scenarios.DefaultMedia() {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, s := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runCLIOut(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, args, func(k string) string { return env[k] }, nil, &out, &out)
	return out.String(), err
}

// TestGroupQRCodeChannelAndTransfer: `wecombot channel create --group`
// makes a 加入群聊 code through the outbox and prints its QR URL; a customer
// who joins through it lands on its channel with its tag and counts in the
// channel report; `wecombot transfer` moves follow records (visible in the
// member's timeline) and keeps stage and history.
func TestGroupQRCodeChannelAndTransfer(t *testing.T) {
	fake := fakewecom.New(t)
	fake.SeedCommunity(fakewecom.Community{Staff: 2, Customers: 20, Groups: 2, GroupMembers: 4})
	dir := t.TempDir()
	env, crypter := liveEnv(t, fake, dir)
	delete(env, "WECOMBOT_SYNC_AT") // the first start imports the community
	env["WECOMBOT_SCENARIOS"] = scenarioDirWith(t, map[string]string{"15-group-channels.yaml": groupChannelYAML})
	env["WECOMBOT_LOG_LEVEL"] = "info"
	in := startServe(t, env)
	waitSyncDone(t, in.base, time.Minute)

	out, err := runCLIOut(t, env, "channel", "create", "--group", "grp_tea", "--server", in.base)
	if err != nil {
		t.Fatalf("channel create --group: %v\n%s", err, out)
	}
	ways := fake.JoinWays()
	if len(ways) != 1 || ways[0].State != "grp_tea" || !slices.Equal(ways[0].ChatIDs, []string{"wrSyncGroup0000", "wrSyncGroup0001"}) ||
		!ways[0].AutoCreate || ways[0].RoomBaseName != "山茶集福利群" || ways[0].RoomBaseID != 10 {
		t.Fatalf("join ways: %+v", ways)
	}
	if !strings.Contains(out, ways[0].QRCode) {
		t.Errorf("channel create printed no QR URL %s:\n%s", ways[0].QRCode, out)
	}
	if out, _ := runCLIOut(t, env, "channel", "list", "--server", in.base); !strings.Contains(out, ways[0].QRCode) {
		t.Errorf("channel list lacks the group QR code:\n%s", out)
	}

	// A new customer joins group 0 through the code.
	joiner := "wmJoinerViaQR"
	fake.AddGroupMember("wrSyncGroup0000", fakewecom.GroupMember{UserID: joiner, Type: 2, JoinTime: time.Now(), JoinScene: 3, State: "grp_tea", Name: "扫码新人"})
	in.sendEvent(t, crypter, callbackEvent{Type: "group.join", ChatID: "wrSyncGroup0000", ExternalUser: joiner}, 2)
	var m map[string]any
	eventuallyT(t, "the joiner to land on the group channel", 30*time.Second, func() bool {
		code, body, _ := in.adminCall(t, http.MethodGet, "/api/v1/members/"+joiner, "", nil)
		if code != http.StatusOK {
			return false
		}
		m, _ = body["member"].(map[string]any)
		return m["channel"] == "茶友福利群"
	})
	if tags, _ := m["tags"].([]any); !slices.Contains(tags, any("来源-福利群")) {
		t.Errorf("joiner tags %v lack 来源-福利群", tags)
	}
	_, funnel, _ := in.adminCall(t, http.MethodGet, "/api/v1/funnel?fresh=true", "", nil)
	found := false
	for _, c := range funnel["channels"].([]any) {
		c := c.(map[string]any)
		if c["channel"] == "茶友福利群" {
			found = c["members"].(float64) == 1 && c["kind"] == "group"
		}
	}
	if !found {
		t.Errorf("channel report lacks the group channel with 1 member: %v", funnel["channels"])
	}
	if n := fake.SendCount(); n != 0 {
		t.Errorf("%d send calls", n)
	}

	// Transfer two of staff 1's customers to staff 2.
	c0, c2 := fakewecom.CustomerID(0), fakewecom.CustomerID(2)
	_, before, _ := in.adminCall(t, http.MethodGet, "/api/v1/members/"+c0, "", nil)
	out, err = runCLIOut(t, env, "transfer", fakewecom.StaffID(0), fakewecom.StaffID(1), "--customers", c0+","+c2, "--wait", "40s", "--server", in.base)
	if err != nil || !strings.Contains(out, "2 done, 0 waiting, 0 failed") {
		t.Fatalf("transfer: %v\n%s", err, out)
	}
	code, after, raw := in.adminCall(t, http.MethodGet, "/api/v1/members/"+c0, "", nil)
	if code != http.StatusOK {
		t.Fatalf("member: %d %s", code, raw)
	}
	mem := after["member"].(map[string]any)
	active := map[string]bool{}
	for _, f := range mem["follows"].([]any) {
		f := f.(map[string]any)
		active[f["staff_id"].(string)] = f["deleted_at"] == nil
	}
	if active[fakewecom.StaffID(0)] || !active[fakewecom.StaffID(1)] {
		t.Errorf("follows after transfer: %v", mem["follows"])
	}
	bm := before["member"].(map[string]any)
	if mem["stage"] != bm["stage"] || len(mem["stage_history"].([]any)) != len(bm["stage_history"].([]any)) {
		t.Errorf("transfer changed stage or history: %v → %v", bm["stage"], mem["stage"])
	}
	transferred := false
	for _, it := range after["timeline"].([]any) {
		it := it.(map[string]any)
		if it["kind"] == "transfer" && strings.Contains(it["text"].(string), fakewecom.StaffID(1)) {
			transferred = true
		}
	}
	if !transferred {
		t.Errorf("timeline shows no transfer: %v", after["timeline"])
	}
	// WeCom moved them too: the next sync changes nothing.
	var syncOut bytes.Buffer
	if err := runSync(t, func(k string) string { return env[k] }, in.base, &syncOut); err != nil {
		t.Fatalf("sync after transfer: %v\n%s", err, syncOut.String())
	}
	if r, _ := syncStatus(in.base); r.Updated != 0 || r.Gone != 0 || r.New != 0 || r.Unfollowed != 0 {
		t.Errorf("sync after the transfer found changes: %+v", r)
	}
}
