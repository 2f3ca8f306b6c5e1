package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot/wecomapi/fakewecom"
)

// TestTransferGroupsRefusalsAndTransferFail: a whole-staff transfer moves
// the groups the staff member owns; a customer who refuses stays with the
// handover staff member and the refusal is on the transfer and the member;
// a transfer_fail callback is surfaced the same way.
func TestTransferGroupsRefusalsAndTransferFail(t *testing.T) {
	fake := fakewecom.New(t)
	fake.SeedCommunity(fakewecom.Community{Staff: 3, Customers: 30, Groups: 6, GroupMembers: 12})
	env, crypter := liveEnv(t, fake, t.TempDir())
	delete(env, "WECOMBOT_SYNC_AT")
	in := startServe(t, env)
	waitSyncDone(t, in.base, time.Minute)
	from, to := fakewecom.StaffID(0), fakewecom.StaffID(1)
	refuser := fakewecom.CustomerID(3) // staff 0's
	fake.RefuseTransfer(refuser)

	out, err := runCLIOut(t, env, "transfer", from, to, "--wait", "40s", "--server", in.base)
	if err != nil || !strings.Contains(out, "9 done, 0 waiting, 1 failed; groups: 2 moved, 0 failed") || !strings.Contains(out, refuser+": the customer refused") {
		t.Fatalf("transfer: %v\n%s", err, out)
	}
	for _, g := range fake.GroupChats() {
		if g.Owner == from {
			t.Errorf("group %s still owned by %s in WeCom", g.ChatID, from)
		}
	}
	_, body, _ := in.adminCall(t, http.MethodGet, "/api/v1/members/"+refuser, "", nil)
	m := body["member"].(map[string]any)
	trs, _ := m["transfers"].([]any)
	if len(trs) != 1 || trs[0].(map[string]any)["status"] != "failed" {
		t.Errorf("refuser's transfers: %v", trs)
	}

	// transfer_fail for a customer whose transfer is waiting.
	fake.SetTransferDelay(time.Hour)
	waiting := fakewecom.CustomerID(4) // staff 1's
	out, err = runCLIOut(t, env, "transfer", to, fakewecom.StaffID(2), "--customers", waiting, "--server", in.base)
	if err != nil {
		t.Fatalf("transfer: %v\n%s", err, out)
	}
	eventuallyT(t, "the transfer to be accepted", 20*time.Second, func() bool {
		_, body, _ := in.adminCall(t, http.MethodGet, "/api/v1/members/"+waiting, "", nil)
		trs, _ := body["member"].(map[string]any)["transfers"].([]any)
		return len(trs) == 1 && trs[0].(map[string]any)["status"] == "waiting"
	})
	in.sendEvent(t, crypter, callbackEvent{Type: "contact.transfer_fail", Staff: fakewecom.StaffID(2), ExternalUser: waiting, Text: "customer_refused"}, 1)
	eventuallyT(t, "transfer_fail to be recorded", 20*time.Second, func() bool {
		_, list, _ := in.adminCall(t, http.MethodGet, "/api/v1/transfers", "", nil)
		for _, tr := range list["transfers"].([]any) {
			tr := tr.(map[string]any)
			if f, _ := tr["failures"].(map[string]any); f != nil && strings.Contains(fmt.Sprint(f[waiting]), "refused") {
				return true
			}
		}
		return false
	})
	_, body, _ = in.adminCall(t, http.MethodGet, "/api/v1/members/"+waiting, "", nil)
	found := false
	for _, it := range body["timeline"].([]any) {
		it := it.(map[string]any)
		found = found || (it["kind"] == "transfer" && strings.Contains(it["text"].(string), "refused"))
	}
	if !found {
		t.Errorf("timeline lacks the failed transfer: %v", body["timeline"])
	}
}

// TestTransferInTheSandbox: the sandbox's recorder answers transfers like
// WeCom would (accepted, done at the first poll), so the console's 员工交接
// works without credentials.
func TestTransferInTheSandbox(t *testing.T) {
	in := startServe(t, map[string]string{"WECOMBOT_DATA_DIR": t.TempDir()})
	in.simulateMember(t, "", "wm_moving", "小动", "xhs", "add")
	body := []byte(`{"from":"sandbox_staff","to":"sandbox_staff_2","customers":["wm_moving"]}`)
	if code, _, raw := in.adminCall(t, http.MethodPost, "/api/v1/transfers", "", body); code != http.StatusAccepted {
		t.Fatalf("POST /api/v1/transfers: %d %s", code, raw)
	}
	eventuallyT(t, "the sandbox transfer to finish", 30*time.Second, func() bool {
		_, m, _ := in.adminCall(t, http.MethodGet, "/api/v1/members/wm_moving", "", nil)
		mem, _ := m["member"].(map[string]any)
		trs, _ := mem["transfers"].([]any)
		return len(trs) == 1 && trs[0].(map[string]any)["status"] == "done"
	})
	if code, _, raw := in.adminCall(t, http.MethodPost, "/api/v1/transfers", "", []byte(`{"from":"a","to":"a"}`)); code != http.StatusBadRequest || !strings.Contains(raw, "to") {
		t.Errorf("same staff: %d %s, want 400 naming to", code, raw)
	}
}
