// Package checkin is the check-in (打卡) campaigns' ledger: one record per
// member per campaign day, streaks with make-up (补卡) days, points as an
// append-only ledger with balance, and a per-campaign leaderboard that stays
// fast at a million members. It also holds the campaign rules that need no
// member state (days, windows, make-up eligibility), the scheduler that turns
// reminders into events, and the read functions the dashboard calls.
//
// Everything here works on a bot.Tx, so a check-in, its points, its
// leaderboard move and the outbox actions the engine owes for it commit in
// one transaction: idempotency comes from the transaction plus the keys
// (campaign|member|day), never from a check before the write.
//
// KV buckets (bot.Tx Get/Put/Scan):
//
//	checkin_days      <campaign>|<member>|<2006-01-02> → dayRecord (one per member per campaign day)
//	checkin_mdays     <member>|<2006-01-02>|<campaign> → present (the member's days, for their page)
//	checkin_progress  <campaign>|<member> → Progress (days, streak inputs, campaign points, rewards given)
//	checkin_board     <campaign>|<inverted score>|<member> → present (leaderboard order)
//	checkin_scores    <campaign>|<inverted score> → member count at that score (ranks)
//	checkin_stats     <campaign>|participants, <campaign>|day|<2006-01-02> → counters
//	checkin_state     closed|<campaign> → when an operator's close reminder ended it
//	checkin_ticks     <tick dedupe key> → present once a scheduled reminder was acted on
//	checkin_results   <event ref> → the reply text of a check-in (read by the H5 page)
//	kf_contacts       <member> → the member's 微信客服 account and last message time
//	points_ledger     <member>|<12-digit n> → Entry (append-only)
//	points_head       <member> → the number of ledger entries
package checkin

import (
	"strings"

	"github.com/wecombot/wecombot/bot"
)

// Event types this package's callers append.
const (
	// EventCheckIn is a tap on a member's signed H5 check-in link:
	// ExternalUserID is the member, Data[DataCampaign] the campaign.
	EventCheckIn bot.EventType = "campaign.checkin"
	// EventTick is a scheduled campaign reminder firing: Data holds
	// DataCampaign, DataReminder (index), DataSpec and DataSlot (unix seconds).
	EventTick bot.EventType = "campaign.tick"
)

// Event data keys.
const (
	DataCampaign = "campaign"
	DataReminder = "reminder"
	DataSpec     = "spec"
	DataSlot     = "slot"
)

// Link purposes for bot/signlink: a check-in page link (personal, acts) and a
// certificate link (shareable, only shows).
const (
	LinkPurpose = "checkin"
	CertPurpose = "checkin-cert"
)

// KV bucket names.
const (
	BucketDays       = bot.BucketCheckinDays
	BucketMemberDays = bot.BucketCheckinMemberDays
	BucketProgress   = bot.BucketCheckinProgress
	BucketBoard      = bot.BucketCheckinBoard
	BucketScores     = bot.BucketCheckinScores
	BucketStats      = bot.BucketCheckinStats
	BucketState      = bot.BucketCheckinState
	BucketTicks      = bot.BucketCheckinTicks
	BucketResults    = bot.BucketCheckinResults
	BucketKf         = bot.BucketKfContacts
	BucketKfRecent   = bot.BucketKfRecent
	BucketPoints     = bot.BucketPointsLedger
	BucketHead       = bot.BucketPointsHead
)

// present is the value of facts whose presence is the fact.
var present = []byte{1}

// Subject is a signed link's subject for a member in a campaign.
func Subject(member, campaign string) string { return member + "|" + campaign }

// ParseSubject splits a Subject.
func ParseSubject(s string) (member, campaign string, ok bool) {
	member, campaign, ok = strings.Cut(s, "|")
	return member, campaign, ok && member != "" && campaign != ""
}

// TapDedupeKey is the event-log dedupe key of an H5 check-in: one per
// member, campaign and day, so double taps and retried POSTs append once.
func TapDedupeKey(member, campaign string, day Day) string {
	return "checkin|" + member + "|" + campaign + "|" + day.String()
}
