package fakewecom

import (
	"fmt"
	"time"
)

// Community describes an existing customer base to seed the fake with, for
// sync tests and benchmarks. Everything is derived from the indexes, so two
// fakes seeded alike hold the same data.
type Community struct {
	// Staff is how many staff members have customers (wmStaff01 …).
	Staff int
	// Customers is how many customers have added staff; SharedEvery puts
	// every n-th customer also in the next staff member's list (0: none).
	Customers   int
	SharedEvery int
	// Groups and GroupMembers: customer memberships spread over the groups;
	// every GroupOnlyEvery-th membership is a customer who is in a group
	// but no staff member's contact (0: none).
	Groups         int
	GroupMembers   int
	GroupOnlyEvery int
	// States are contact way states given to every fourth customer's
	// first relation; GroupStates to every third membership joined by QR code.
	States      []string
	GroupStates []string
	// TagGroup and Tags seed the tag library; every third customer's first
	// relation carries one of them.
	TagGroup string
	Tags     []string
}

// CustomerID is the external_userid of customer i.
func CustomerID(i int) string { return fmt.Sprintf("wmSync%07d", i) }

// GroupOnlyID is the external_userid of the i-th group-only customer.
func GroupOnlyID(i int) string { return fmt.Sprintf("wmGrpOnly%06d", i) }

// StaffID is the userid of staff member i.
func StaffID(i int) string { return fmt.Sprintf("wmStaff%02d", i+1) }

// SeedCommunity fills the fake with c.
func (s *Server) SeedCommunity(c Community) {
	var tagIDs []string
	if len(c.Tags) > 0 {
		g := s.AddTagGroup(c.TagGroup, c.Tags...)
		for _, t := range g.Tags {
			tagIDs = append(tagIDs, t.ID)
		}
	}
	staff := make([]string, max(c.Staff, 1))
	for i := range staff {
		staff[i] = StaffID(i)
	}
	s.AddStaff(staff...)
	base := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	for i := 0; i < c.Customers; i++ {
		cu := Customer{ExternalUserID: CustomerID(i), Name: fmt.Sprintf("客户%d", i), UnionID: fmt.Sprintf("oUnion%07d", i)}
		first := FollowInfo{StaffID: staff[i%len(staff)], Remark: fmt.Sprintf("备注%d", i), AddedAt: base.Add(time.Duration(i) * time.Minute)}
		if len(c.States) > 0 && i%4 == 0 {
			first.State = c.States[(i/4)%len(c.States)]
		}
		if len(tagIDs) > 0 && i%3 == 0 {
			first.TagIDs = []string{tagIDs[(i/3)%len(tagIDs)]}
		}
		cu.Follows = append(cu.Follows, first)
		if c.SharedEvery > 0 && i%c.SharedEvery == 0 && len(staff) > 1 {
			cu.Follows = append(cu.Follows, FollowInfo{StaffID: staff[(i+1)%len(staff)], AddedAt: first.AddedAt.Add(time.Hour)})
		}
		s.AddCustomer(cu)
	}
	if c.Groups <= 0 {
		return
	}
	groups := make([]GroupChat, c.Groups)
	for g := range groups {
		owner := staff[g%len(staff)]
		groups[g] = GroupChat{ChatID: fmt.Sprintf("wrSyncGroup%04d", g), Name: fmt.Sprintf("山茶集福利群%d", g+1), Owner: owner,
			Created: base.Add(time.Duration(g) * time.Hour),
			Members: []GroupMember{{UserID: owner, Type: 1, JoinTime: base, JoinScene: 1}}}
	}
	groupOnly := 0
	for k := 0; k < c.GroupMembers; k++ {
		g := k % c.Groups
		m := GroupMember{Type: 2, JoinTime: base.Add(time.Duration(k) * time.Minute), JoinScene: 1, Invitor: groups[g].Owner}
		if c.GroupOnlyEvery > 0 && k%c.GroupOnlyEvery == 0 {
			m.UserID = GroupOnlyID(groupOnly)
			m.Name = fmt.Sprintf("群成员%d", groupOnly)
			groupOnly++
		} else if c.Customers > 0 {
			// 7919 is prime, so k → k·7919 mod Customers spreads the
			// memberships over distinct customers.
			m.UserID = CustomerID(k * 7919 % c.Customers)
		} else {
			continue
		}
		if len(c.GroupStates) > 0 && k%3 == 0 {
			m.JoinScene, m.Invitor, m.State = 3, "", c.GroupStates[(k/3)%len(c.GroupStates)]
		}
		groups[g].Members = append(groups[g].Members, m)
	}
	for _, g := range groups {
		s.SetGroupChat(g)
	}
}
