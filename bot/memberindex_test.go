package bot

import (
	"fmt"
	"testing"
	"time"
)

func TestMemberIndexDiff(t *testing.T) {
	at := time.Date(2026, 11, 23, 8, 30, 0, 0, time.FixedZone("CST", 8*3600))
	base := func() *Member {
		return &Member{ExternalUserID: "wm1", Channel: "门店", State: "shop", Stage: StageAware, Tags: []string{"vip"},
			Follows:      []Follow{{StaffID: "zhang", AddedAt: at}},
			StageHistory: []StageChange{{To: StageAware, At: at}}}
	}
	tests := []struct {
		name          string
		old           *Member
		change        func(m *Member)
		tallies       string
		removed, adds string
	}{
		{name: "new member", old: nil, change: func(*Member) {},
			tallies: "map[ch\x1f门店:1 chcur\x1f门店\x1faware:1 chreach\x1f门店\x1faware:1 chstate\x1f门店\x1fshop:1 cur\x1faware:1 entered\x1f2026112300\x1faware:1 members:1 reach\x1faware:1 staff\x1fzhang:1 tag\x1fvip:1]",
			removed: "[]", adds: "[channel\x1fshop channel\x1f门店 staff\x1fzhang stage\x1faware tag\x1fvip]"},
		{name: "unchanged", old: base(), change: func(*Member) {}, tallies: "map[]", removed: "[]", adds: "[]"},
		{name: "refund moves her back: reached stays", old: base(), change: func(m *Member) {
			m.Stage = StagePurchase
			m.StageHistory = append(m.StageHistory, StageChange{From: StageAware, To: StagePurchase, At: at.Add(time.Hour)},
				StageChange{From: StagePurchase, To: StageInterest, At: at.Add(2 * time.Hour)})
			m.Stage = StageInterest
		},
			tallies: "map[chcur\x1f门店\x1faware:-1 chcur\x1f门店\x1finterest:1 chreach\x1f门店\x1finterest:1 chreach\x1f门店\x1fpurchase:1 cur\x1faware:-1 cur\x1finterest:1 entered\x1f2026112301\x1fpurchase:1 entered\x1f2026112302\x1finterest:1 reach\x1finterest:1 reach\x1fpurchase:1]",
			removed: "[stage\x1faware]", adds: "[stage\x1finterest]"},
		{name: "deleted the staff, lost, untagged, checked in", old: base(), change: func(m *Member) {
			m.Follows[0].DeletedAt = at
			m.Lost = true
			m.RemoveTag("vip")
			m.CheckIns, m.Points = 2, 20
		},
			tallies: "map[lost:1 staff\x1fzhang:-1 tag\x1fvip:-1]",
			removed: "[staff\x1fzhang tag\x1fvip]", adds: fmt.Sprintf("[%s lost]", LeaderTerm(2, 20))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			tc.change(m)
			tallies, removed, added := IndexMember(m).Diff(IndexMember(tc.old))
			if got := fmt.Sprint(tallies); got != tc.tallies {
				t.Errorf("tallies\n got %q\nwant %q", got, tc.tallies)
			}
			if got := fmt.Sprint(removed); got != tc.removed && !(removed == nil && tc.removed == "[]") {
				t.Errorf("removed %q, want %q", got, tc.removed)
			}
			if got := fmt.Sprint(added); got != tc.adds {
				t.Errorf("added %q, want %q", got, tc.adds)
			}
		})
	}
}

func TestLeaderTermOrder(t *testing.T) {
	// Most check-ins first, then most points.
	a, b, c := LeaderTerm(10, 5), LeaderTerm(10, 3), LeaderTerm(9, 1000)
	if !(a < b && b < c) {
		t.Errorf("order: %q %q %q", a, b, c)
	}
}
