package bot

// The store's key-value space (Tx.Get/Put/Delete/Scan) is divided into
// buckets. Every bucket any package uses is listed here, with its key layout,
// what it holds and which package writes it: this table is the schema of the
// key-value space. Names are stored in data files: never rename one; add a
// new bucket (and a migration in storage/bolt/schema.go) instead.
//
// Concept packages refer to these names (engine's bucketOrders =
// bot.BucketOrders) so each concept keeps its short local names. The event
// log, members and the outbox are the store's own tables, not buckets here.

// Bucket describes one key-value bucket.
type Bucket struct {
	// Name is the stored name.
	Name string
	// Key is the key layout: fields joined with "|", in scan order.
	Key string
	// Value is what each key holds.
	Value string
	// Owner is the package (and file) that writes the bucket.
	Owner string
}

// Bucket names: the engine's.
const (
	BucketOrders           = "orders"
	BucketOrdersPending    = "orders_pending"
	BucketRefunds          = "refunds"
	BucketRefundsHeld      = "refunds_held"
	BucketGroups           = "groups"
	BucketGroupMembers     = "group_members"
	BucketRateLimit        = "ratelimit"
	BucketAIRateLimit      = "ai_ratelimit"
	BucketCouponFree       = "coupon_free"
	BucketCouponCodes      = "coupon_codes"
	BucketCouponIssues     = "coupon_issues"
	BucketCouponPools      = "coupon_pools"
	BucketCouponRequests   = "coupon_requests"
	BucketKfSeen           = "kf_seen"
	BucketUnionIDs         = "unionids"
	BucketReferralStates   = "referral_states"
	BucketReferralMembers  = "referral_members"
	BucketReferralInvitees = "referral_invitees"
	BucketReferralDue      = "referral_due"
	BucketReferralSeq      = "referral_seq"
	BucketGroupWelcomeTpl  = "group_welcome_tpl"
	BucketContactWays      = "contact_ways"
	BucketGroupJoins       = "group_joins"
	BucketSync             = "sync"
	BucketSyncSeen         = "sync_seen"
	BucketCorpTags         = "corp_tags"
	BucketTransfers        = "transfers"
	BucketWeekly           = "weekly"
	BucketLosses           = "losses"
	BucketContactCap       = "contact_cap"
)

// Bucket names: check-in campaigns and the points ledger (bot/checkin).
const (
	BucketCheckinDays       = "checkin_days"
	BucketCheckinMemberDays = "checkin_mdays"
	BucketCheckinProgress   = "checkin_progress"
	BucketCheckinBoard      = "checkin_board"
	BucketCheckinScores     = "checkin_scores"
	BucketCheckinStats      = "checkin_stats"
	BucketCheckinState      = "checkin_state"
	BucketCheckinTicks      = "checkin_ticks"
	BucketCheckinResults    = "checkin_results"
	BucketKfContacts        = "kf_contacts"
	BucketKfRecent          = "kf_recent"
	BucketPointsLedger      = "points_ledger"
	BucketPointsHead        = "points_head"
)

// Bucket names: the member economy (bot/engine economy.go, redeem.go, rights.go).
const (
	BucketPointsStats   = "points_stats"
	BucketPointsLots    = "points_lots"
	BucketPointsExpiry  = "points_expiry"
	BucketRedeemItems   = "redeem_items"
	BucketRedemptions   = "redemptions"
	BucketRedeemMembers = "redeem_members"
	BucketRedeemRefs    = "redeem_refs"
	BucketRedeemSeq     = "redeem_seq"
	BucketEconomyJobs   = "economy_jobs"
	BucketLevelRights   = "level_rights"
	BucketBirthdays     = "birthdays"
)

// Bucket names: AI replies (bot/ai) and the 微信客服 puller (bot/kf).
const (
	BucketAIMemory     = "ai_memory"
	BucketAIDone       = "ai_done"
	BucketAIFailures   = "ai_failures"
	BucketAIBotStreams = "aibot_streams"
	// BucketAIGlobalRate counts model calls per minute when several nodes
	// share the store, so ai.global_per_minute holds for all of them.
	BucketAIGlobalRate = "ai_global_rate"
	BucketKfCursor     = "kf_cursor"
)

// BucketKfSessions holds each 微信客服 customer's session as the engine
// knows it (window start, messages sent, service state).
const BucketKfSessions = "kf_sessions"

// BucketMassQuota counts mass-send tasks per customer per natural month
// (WeCom allows 4 by default).
const BucketMassQuota = "mass_quota"

// BucketKfMsgIDs maps a 微信客服 message's msgid to the outbox action sending it.
const BucketKfMsgIDs = "kf_msgids"

// BucketMassBatches holds the mass-send batches (bot/engine massbatch.go):
// one add_msg_template task each.
const BucketMassBatches = "mass_batches"

// BucketMassMembers holds each batch's customers or groups and their actions.
const BucketMassMembers = "mass_members"

// BucketFollowUps holds the welcome scripts' follow-ups planned for a later
// slot (bot/engine followups.go): each becomes its outbox action when its
// slot begins.
const BucketFollowUps = "followups"

// Outreach buckets.
const (
	// BucketBroadcasts: "run|<id>" → engine.BroadcastRun; "def|<id>" → an
	// API broadcast's request.
	BucketBroadcasts = "broadcasts"
	// BucketBroadcastMembers: "<run>|<member>" → engine.BroadcastTarget.
	BucketBroadcastMembers = "broadcast_members"
	// BucketBroadcastRecv: "<member>|<run>" → RFC 3339 time she was sent it.
	BucketBroadcastRecv = "broadcast_recv"
	// BucketBroadcastOrders: "<run>|<order_id>" → engine.BroadcastOrder.
	BucketBroadcastOrders = "broadcast_orders"
	// BucketSOP: "<member>|<sop>" → engine.SOPEnrollment.
	BucketSOP = "sop"
	// BucketSOPMembers: "<sop>|<member>" → present (the SOP's enrollments,
	// for its console page).
	BucketSOPMembers = "sop_members"
	// BucketSOPStats: "<sop>" → engine.SOPStats (the operator's pause switch).
	BucketSOPStats = "sop_stats"
	// BucketOutreachCounts: "<bc|run or sop|name>|<shard>" → JSON counts.
	BucketOutreachCounts = "outreach_counts"
)

// BucketMedia holds the media library's records (bot/media): what WeCom
// holds for each file or URL a scenario attaches.
const BucketMedia = "media"

// BucketSettings holds settings every node shares (cmd/wecombot: the
// generated link secret when the store is PostgreSQL).
const BucketSettings = "settings"

// BucketHealth holds the pipeline's probe write (bot/pipeline health.go):
// can the store take a write right now?
const BucketHealth = "health"

// BucketScratch is for storage conformance and pipeline tests; production
// code never writes it.
const BucketScratch = "test"

// Buckets is the registry: every bucket of the key-value space.
var Buckets = []Bucket{
	{BucketOrders, "order_id", "order record JSON (member, amount, status)", "bot/engine funnel.go"},
	{BucketOrdersPending, "member|order_id", "present: a paid order not yet matched to a refund window", "bot/engine funnel.go"},
	{BucketRefunds, "order_id|refund_id", "present: refund applied (idempotency)", "bot/engine funnel.go"},
	{BucketRefundsHeld, "order_id|refund_id", "heldRefund JSON: a refund that arrived before its paid order, applied when the order arrives", "bot/engine funnel.go"},
	{BucketGroups, "chat_id", "customer group JSON (name, owner, created/dismissed)", "bot/engine groups.go"},
	{BucketGroupMembers, "chat_id\x1fexternal_userid", "present: the customer is in the group", "bot/engine groups.go"},
	{BucketRateLimit, "scope", "recent keyword replies (rate limit log)", "bot/engine keywords.go"},
	{BucketAIRateLimit, "scope", "recent model replies (ai.rate_limit log)", "bot/engine ai.go"},
	{BucketCouponFree, "pool|code", "present: an unissued code", "bot/engine coupons.go"},
	{BucketCouponCodes, "code", "coupon JSON (pool, member, issued/redeemed)", "bot/engine coupons.go"},
	{BucketCouponIssues, "member|pool|hook|event ref", "code issued (idempotency of a grant)", "bot/engine coupons.go"},
	{BucketCouponPools, "pool", "pool state JSON (counts)", "bot/engine coupons.go"},
	{BucketCouponRequests, "request id (event dedupe key)", "outcome JSON of an operator's import or generate (counts, codes, refusal)", "bot/engine coupons_codes.go"},
	{BucketKfSeen, "external_userid", "last 微信客服 contact JSON (open_kfid, at)", "bot/engine coupons.go"},
	{BucketUnionIDs, "unionid", "external_userid", "bot/engine coupons.go"},
	{BucketReferralStates, "contact way state", "referrer's external_userid", "bot/engine referral.go"},
	{BucketReferralMembers, "external_userid", "referrer record JSON (invite code, counts)", "bot/engine referral.go"},
	{BucketReferralInvitees, "external_userid", "InviteRecord JSON (referrer, status)", "bot/engine referral.go"},
	{BucketReferralDue, "RFC 3339 due|invitee", "present: an invite whose hold period ends then", "bot/engine referral.go"},
	{BucketReferralSeq, "n", "decimal counter for invite states", "bot/engine referral.go"},
	{BucketGroupWelcomeTpl, "template name", "template_id (from the add's result)", "bot/engine results.go"},
	{BucketContactWays, "state", "ContactWayRecord JSON (config_id, qr_code; chat_ids for a group QR code)", "bot/engine results.go"},
	{BucketGroupJoins, "state\x1fexternal_userid", "present: a member joined a group through that group QR code (counted and tagged once)", "bot/engine groupjoin.go"},
	{BucketSync, "run|id, current", "SyncRun JSON (cursor, counts); current → the newest run's id", "bot/engine sync.go"},
	{BucketSyncSeen, "run|m|external_userid, run|g|chat_id", "what a running sync saw (deleted when it finishes)", "bot/engine sync.go"},
	{BucketCorpTags, "tag id", "corp tag JSON (name, group) as of the last sync", "bot/engine sync.go"},
	{BucketTransfers, "transfer id", "TransferRecord JSON (customers' statuses, failures, groups)", "bot/engine transfer.go"},
	{BucketLosses, "YYYY-MM-DD (brand zone)|event ref|external_userid", "LossRecord JSON: a customer lost (deleted / deleted by staff / left her last group) with stage, spend, last activity, for the daily digest", "bot/engine loss.go"},
	{BucketContactCap, "external_userid", "JSON {YYYY-MM-DD (brand zone): proactive messages due that day} for the last two weeks, for limits.contact_per_day/week", "bot/engine cap.go"},
	{BucketWeekly, "Monday YYYY-MM-DD (brand zone)|channel name", "WeekStats JSON: added, stage entries, buyers, orders, GMV, refunds, lost, silent, came back, invites", "bot/engine weekly.go"},
	{BucketCheckinDays, "campaign|member|day", "check-in JSON", "bot/checkin ledger.go"},
	{BucketCheckinMemberDays, "member|day|campaign", "present (a member's days, for the console)", "bot/checkin ledger.go"},
	{BucketCheckinProgress, "campaign|member", "Progress JSON (streak, total)", "bot/checkin ledger.go"},
	{BucketCheckinBoard, "campaign|inverted score|member", "present: leaderboard index", "bot/checkin ledger.go"},
	{BucketCheckinScores, "campaign|inverted score", "int64 count of members with that score", "bot/checkin ledger.go"},
	{BucketCheckinStats, "campaign|participants, campaign|day|day", "int64 counters", "bot/checkin ledger.go"},
	{BucketCheckinState, "closed|campaign", "RFC 3339 time the campaign closed", "bot/checkin ledger.go"},
	{BucketCheckinTicks, "sched|campaign|reminder|slot unix", "present: a reminder firing handled (idempotency)", "bot/checkin scheduler.go"},
	{BucketCheckinResults, "event ref", "reply text of a check-in (shown again on a repeat tap)", "bot/checkin ledger.go"},
	{BucketKfContacts, "external_userid", "微信客服 contact JSON (open_kfid, last message)", "bot/checkin ledger.go"},
	{BucketKfRecent, "UTC day (2006-01-02)|external_userid; indexed", "present: the member's last 微信客服 message was that day (reminders read only the days within the kf window); indexed: the contacts before it were backfilled", "bot/checkin ledger.go"},
	{BucketPointsLedger, "member|zero-padded n", "points entry JSON", "bot/checkin ledger.go"},
	{BucketPointsHead, "member", "int64 entries in the member's ledger", "bot/checkin ledger.go"},
	{BucketPointsStats, "w|ISO week|kind|shard, total|balance|shard, total|debt|shard", "int64 (16 shards by member, summed by readers): points issued, spent, redeemed, clawed back, expired per week; outstanding points and debt", "bot/engine economy.go"},
	{BucketPointsLots, "member|expiry YYYY-MM-DD|ledger n", "int64 points left of a credit that expires that day (points.expire)", "bot/engine economy.go"},
	{BucketPointsExpiry, "expiry YYYY-MM-DD|member", "present: the member has points expiring after that day", "bot/engine economy.go"},
	{BucketRedeemItems, "item", "itemState JSON (redeemed count, stock alert latch)", "bot/engine redeem.go"},
	{BucketRedemptions, "redemption id (R000001)", "Redemption JSON (member, item, cost, reward, shipping)", "bot/engine redeem.go"},
	{BucketRedeemMembers, "member|item|redemption id", "present: per-member limits and her redemptions", "bot/engine redeem.go"},
	{BucketRedeemRefs, "event ref|item, op|dedupe key", "the event's redemption id (replays); a mark-shipped request's outcome JSON", "bot/engine redeem.go"},
	{BucketRedeemSeq, "n", "uint64: the last redemption number", "bot/engine redeem.go"},
	{BucketEconomyJobs, "pending|job, done|job, paced", "cursor of the economy's scheduled work (expiry, monthly and birthday coupons); when an event last continued it", "bot/engine rights.go"},
	{BucketLevelRights, "member|reach|level, member|monthly|YYYY-MM, member|birthday|YYYY", "present: a level right already given", "bot/engine rights.go"},
	{BucketBirthdays, "MM-DD|member", "present: the member's birthday (from bot.Member.Birthday)", "bot/engine rights.go"},
	{BucketAIMemory, "scope", "Memory JSON (last turns with a member or staff member)", "bot/ai memory.go"},
	{BucketAIDone, "message ref", "answer source: the message's reply was produced", "bot/ai sender.go"},
	{BucketAIFailures, "scope", "failed replies in a row (decimal)", "bot/ai sender.go"},
	{BucketAIBotStreams, "stream id", "StreamState JSON once an AI bot answer finished", "bot/ai stream.go"},
	{BucketAIGlobalRate, "unix minute", "model calls started in that minute by every node (shared stores only)", "bot/ai sender.go"},
	{BucketKfCursor, "open_kfid", "kf/sync_msg cursor", "bot/kf puller.go"},
	{BucketKfSessions, "open_kfid ‖ external_userid (and fail ‖ msgid)", "engine.KfSession JSON (msg_send_fail: fail type)", "bot/engine kfsession.go"},
	{BucketMassQuota, "external_userid ‖ YYYY-MM (brand zone)", "mass-send tasks queued for the customer that month (decimal)", "bot/engine kfsession.go"},
	{BucketKfMsgIDs, "msgid (kf/send_msg, send_msg_on_event)", "the outbox action id (decimal) and, after a space, its key: for msg_send_fail", "bot/engine kfsession.go"},
	{BucketMassBatches, "chat_type ‖ sender ‖ content hash ‖ window end (unix ms) [‖ #generation]", "engine massBatch JSON: content, window, task msgid, confirmation, polls", "bot/engine massbatch.go"},
	{BucketMassMembers, "batch id ‖ external_userid or chat_id", "engine massMember JSON: the member's action id and result so far", "bot/engine massbatch.go"},
	{BucketFollowUps, "slot start (unix seconds, 12 digits) ‖ the follow-up's action key (followup ‖ event ref ‖ step); drained", "engine plannedFollowUp JSON: member, script, step, staff, due time; drained: the latest slot key whose timer has run", "bot/engine followups.go"},
	{BucketMedia, "img|media ‖ kind ‖ source (file path or URL)", "media.Record JSON: content hash, media_id or pic_url, uploaded at", "bot/media media.go"},
	{BucketSettings, "setting name (link_secret)", "the setting's value", "cmd/wecombot serve.go"},
	{BucketHealth, "probe", "RFC 3339 time of the latest probe write", "bot/pipeline health.go"},
	{BucketBroadcasts, "run|<id> or def|<id>", "engine.BroadcastRun JSON (progress, counts) or an API broadcast's request JSON", "bot/engine broadcast.go"},
	{BucketBroadcastMembers, "run ‖ external_userid", "engine.BroadcastTarget JSON (staff, action id or skip reason)", "bot/engine broadcast.go"},
	{BucketBroadcastRecv, "external_userid ‖ run", "RFC 3339 time the broadcast was queued for her (orders within 7 days)", "bot/engine broadcast.go"},
	{BucketBroadcastOrders, "run ‖ order_id", "engine.BroadcastOrder JSON (member, amount): orders within 7 days of the broadcast", "bot/engine broadcast.go"},
	{BucketSOP, "external_userid ‖ sop", "engine.SOPEnrollment JSON (started, stopped and why, each step's status)", "bot/engine sop.go"},
	{BucketSOPMembers, "sop ‖ external_userid", "present: she was enrolled (the SOP's member list)", "bot/engine sop.go"},
	{BucketSOPStats, "sop", "engine.SOPStats JSON: paused (the counts are in outreach_counts)", "bot/engine sop.go"},
	{BucketOutreachCounts, "bc|<run> or sop|<name> ‖ shard (16, by member)", "JSON {count name: n}: a broadcast run's report counts (r:<status>, tasks, confirmed, delivered, orders, gmv), an SOP's (enrolled, stopped:<reason>, step:<i>:<status>); readers sum the shards", "bot/engine outcome.go"},
	{BucketScratch, "any", "test data (conformance and pipeline tests only)", "storage/storagetest"},
}

var bucketIndex = func() map[string]*Bucket {
	m := make(map[string]*Bucket, len(Buckets))
	for i := range Buckets {
		m[Buckets[i].Name] = &Buckets[i]
	}
	return m
}()

// LookupBucket returns the registered bucket named name.
func LookupBucket(name string) (Bucket, bool) {
	b, ok := bucketIndex[name]
	if !ok {
		return Bucket{}, false
	}
	return *b, true
}
