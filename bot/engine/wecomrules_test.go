package engine

import (
	"testing"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// change_external_tag (a tag edited or deleted in the admin console) owes a
// reload of the tag library, once per callback.
func TestTagChangeRefreshesTheLibrary(t *testing.T) {
	h := newHarness(t, scenarios.LoadDefault())
	ev := h.send(&bot.Event{Type: bot.EventTagChange, ChangeType: "delete", TagID: "etXXXXXXXXX", TagType: "tag"})
	h.handle(ev) // a replay
	got := h.actions(bot.ActionTagRefresh)
	if len(got) != 1 {
		t.Fatalf("tag_refresh actions = %d, want 1", len(got))
	}
	var p bot.TagRefresh
	if err := got[0].Decode(&p); err != nil || p.ChangeType != "delete" || p.ID != "etXXXXXXXXX" {
		t.Errorf("payload %+v, %v", p, err)
	}
}
