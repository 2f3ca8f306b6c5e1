package engine

// Coupons (issue 6): pools of codes, issued by hooks inside the event's
// transaction. bbolt serialises write transactions, so taking a free code,
// recording the issue and counting the member's limit are one atomic step:
// a code goes to one member, never twice, never past the limit, however many
// hooks fire at once. A replay of the same event (same r.ref) finds its issue
// record and hands back the same code.
//
// KV buckets:
//
//	coupon_free    <pool>|<code> → present: codes not issued yet (imported or generated)
//	coupon_codes   <code> → CouponCode (every code wecombot knows, any status)
//	coupon_issues  <member>|<pool>|<hook>|<ref> → code: one row per issue, for replays and limits
//	coupon_pools   <pool> → poolState (stock counters, stock-alert latch)
//	kf_seen        <member> → kfSeen: the 微信客服 account the member last wrote to, and when
//	unionids       <unionid> → member, learnt from shop orders that carry both

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

const (
	bucketCouponFree     = bot.BucketCouponFree
	bucketCouponCodes    = bot.BucketCouponCodes
	bucketCouponIssues   = bot.BucketCouponIssues
	bucketCouponPools    = bot.BucketCouponPools
	bucketCouponRequests = bot.BucketCouponRequests
	bucketKfSeen         = bot.BucketKfSeen
	bucketUnionIDs       = bot.BucketUnionIDs
)

// EventCouponGrant is an operator's grant of one coupon to a member (admin
// API). Data: pool, and optionally operator and note.
const EventCouponGrant bot.EventType = "operator.coupon_grant"

// Event.Data keys of coupon grants.
const (
	DataPool     = "pool"
	DataOperator = "operator"
	DataNote     = "note"
)

// Coupon code statuses.
const (
	CouponFree   = "free"
	CouponIssued = "issued"
	CouponUsed   = "used"
)

// Hook names as recorded on issued codes (the reports group by them).
const (
	HookWelcome  = "welcome"
	HookOperator = "operator"
	// HookStagePrefix + stage, HookKeywordPrefix + rule name, "referral:<n>",
	// "milestone:<campaign>:<day>".
	HookStagePrefix   = "stage:"
	HookKeywordPrefix = "keyword:"
)

// KfReplyWindow is how long after a member's last 微信客服 message wecombot
// may still write to them there (kf/send_msg's 48-hour window).
const KfReplyWindow = 48 * time.Hour

// ClaimLinkTTL is how long a member's "my coupons" link stays valid.
const ClaimLinkTTL = 30 * 24 * time.Hour

// Link purpose and path of the member's coupon page.
const (
	LinkPurposeCoupons = "coupons"
	CouponsPath        = "/coupons"
)

// CouponCode is one code and what happened to it.
type CouponCode struct {
	Code   string `json:"code"`
	Pool   string `json:"pool"`
	Status string `json:"status"`
	// Source is "import" or "generate".
	Source  string    `json:"source"`
	AddedAt time.Time `json:"added_at"`

	Member    string    `json:"member,omitempty"`
	Hook      string    `json:"hook,omitempty"`
	Ref       string    `json:"ref,omitempty"`
	IssuedAt  time.Time `json:"issued_at,omitzero"`
	ValidFrom time.Time `json:"valid_from,omitzero"`
	// ExpiresAt is the first moment the code is no longer valid (zero: never).
	ExpiresAt time.Time `json:"expires_at,omitzero"`

	UsedAt   time.Time `json:"used_at,omitzero"`
	OrderID  string    `json:"order_id,omitempty"`
	OrderFen int64     `json:"order_fen,omitempty"`
	// UsedBy is the member of the order, when it is not the holder.
	UsedBy string `json:"used_by,omitempty"`
}

// Expired reports whether an issued, unused code is past its validity at now.
func (c *CouponCode) Expired(now time.Time) bool {
	return c.Status == CouponIssued && !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt)
}

// poolState is the pool's stock and alert latch.
type poolState struct {
	Free      int `json:"free"`
	Generated int `json:"generated,omitempty"`
	Issued    int `json:"issued,omitempty"`
	// Alerted is set when stock fell to stock_alert and cleared when it rises
	// above again, so the alert fires once per crossing.
	Alerted bool `json:"alerted,omitempty"`
	// EmptyAt is the last time a hook found the pool empty.
	EmptyAt time.Time `json:"empty_at,omitzero"`
	// EmptyWarnedAt is when the empty pool was last logged as a warning
	// (zero once a code is issued again) and EmptyUnlogged how many members
	// got the fallback since: an empty pool is logged once per
	// emptyWarnEvery, not on every member who meets it.
	EmptyWarnedAt time.Time `json:"empty_warned_at,omitzero"`
	EmptyUnlogged int       `json:"empty_unlogged,omitempty"`
}

// emptyWarnEvery is how often an empty coupon pool is logged as a warning
// while it stays empty (the metric wecombot_coupon_pool_empty_total counts
// every member; the stock alert tells staff once per crossing).
const emptyWarnEvery = time.Hour

type kfSeen struct {
	OpenKfID string    `json:"open_kfid"`
	At       time.Time `json:"at"`
}

// Outcomes of an issue attempt.
const (
	issueNew      = "issued"
	issueReplay   = "replay"   // this event already issued it
	issueLimit    = "limit"    // per_member reached: the member's last code
	issueEmpty    = "empty"    // no code left
	issueEnded    = "ended"    // the pool's fixed validity is over
	issueAudience = "audience" // the member isn't in the pool's audience
)

type issueResult struct {
	outcome string
	code    *CouponCode
	text    string
}

// issue gives member ms one code of pool for hook, or says why not. The
// returned text is what to tell the member either way.
func (r *run) issue(ms *memberState, pool *scenarios.CouponPool, hook string) (issueResult, error) {
	if pool == nil || ms == nil {
		return issueResult{}, nil
	}
	member := ms.m.ExternalUserID
	issueKey := member + "|" + pool.Name + "|" + hook + "|" + r.ref
	if raw, err := r.tx.Get(bucketCouponIssues, issueKey); err == nil {
		var c CouponCode
		if found, err := r.getJSON(bucketCouponCodes, string(raw), &c); err != nil || !found {
			return issueResult{}, errors.Join(err, fmt.Errorf("issue record %s names unknown code", issueKey))
		}
		return issueResult{outcome: issueReplay, code: &c, text: r.couponText(ms, pool, &c, false)}, nil
	} else if !errors.Is(err, bot.ErrNotFound) {
		return issueResult{}, fmt.Errorf("read coupon issue: %w", err)
	}
	lc := r.log.With().Str("pool", pool.Name).Str("hook", hook)
	if member != r.ev.ExternalUserID { // r.log names the event's member already
		lc = lc.Str("member", member)
	}
	log := lc.Logger()
	if !pool.Audience.IncludesAt(ms.m, r.at) {
		log.Info().Msg("member is not in the coupon pool's audience; no coupon")
		return issueResult{outcome: issueAudience, text: fmt.Sprintf("抱歉，%s仅限指定会员领取～", pool.Name)}, nil
	}
	zone := r.sc.Brand.Zone
	if !pool.ValidUntil.IsZero() && !r.at.Before(pool.ValidUntil.In(zone).AddDate(0, 0, 1)) {
		log.Info().Msg("coupon pool's validity has ended; no coupon")
		return issueResult{outcome: issueEnded, text: r.render(pool.Fallback, r.sc.DataFor(ms.m))}, nil
	}
	// Per-member limit: count this member's issues of the pool.
	var held []string
	if err := r.tx.Scan(bucketCouponIssues, member+"|"+pool.Name+"|", func(_ string, v []byte) bool {
		held = append(held, string(v))
		return true
	}); err != nil {
		return issueResult{}, fmt.Errorf("count coupon issues: %w", err)
	}
	if len(held) >= pool.PerMember {
		// Remind the member of the code they got last.
		var latest CouponCode
		for _, code := range held {
			var c CouponCode
			if found, err := r.getJSON(bucketCouponCodes, code, &c); err != nil || !found {
				return issueResult{}, errors.Join(err, fmt.Errorf("issue record names unknown code %s", code))
			}
			if latest.Code == "" || c.IssuedAt.After(latest.IssuedAt) {
				latest = c
			}
		}
		log.Debug().Int("per_member", pool.PerMember).Msg("member reached the coupon limit; reminded of their code")
		return issueResult{outcome: issueLimit, code: &latest, text: r.couponText(ms, pool, &latest, true)}, nil
	}
	st, err := loadHot[poolState](r, bucketCouponPools, pool.Name) // a hot record: changed by every issue
	if err != nil {
		return issueResult{}, err
	}
	if st == nil {
		st = &poolState{}
	}
	code, source, err := r.takeCode(pool, st)
	if err != nil {
		return issueResult{}, err
	}
	if code == "" {
		st.EmptyAt = r.now
		st.EmptyUnlogged++
		warn := st.EmptyWarnedAt.IsZero() || r.now.Sub(st.EmptyWarnedAt) >= emptyWarnEvery
		fallbacks := st.EmptyUnlogged
		if warn {
			st.EmptyWarnedAt, st.EmptyUnlogged = r.now, 0
		}
		if err := saveHot(r, bucketCouponPools, pool.Name, st); err != nil {
			return issueResult{}, err
		}
		if warn {
			log.Warn().Int("fallbacks", fallbacks).Msg("coupon pool is empty: members get the fallback text; import or generate codes (wecombot coupons import) — logged once an hour while it stays empty")
		} else {
			log.Debug().Msg("coupon pool is empty: the member got the fallback text")
		}
		r.e.metrics.CouponEmpty(pool.Name)
		if err := r.stockAlert(pool, st, 0); err != nil {
			return issueResult{}, err
		}
		return issueResult{outcome: issueEmpty, text: r.render(pool.Fallback, r.sc.DataFor(ms.m))}, nil
	}
	c := &CouponCode{Code: code, Pool: pool.Name, Status: CouponIssued, Source: source, AddedAt: r.now,
		Member: member, Hook: hook, Ref: r.ref, IssuedAt: r.at}
	if source == "import" {
		var prev CouponCode
		if found, err := r.getJSON(bucketCouponCodes, code, &prev); err != nil {
			return issueResult{}, err
		} else if found {
			c.AddedAt = prev.AddedAt
		}
	}
	c.ValidFrom, c.ExpiresAt = validity(pool, r.at, zone)
	if err := r.putJSON(bucketCouponCodes, code, c); err != nil {
		return issueResult{}, err
	}
	if err := r.tx.Put(bucketCouponIssues, issueKey, []byte(code)); err != nil {
		return issueResult{}, fmt.Errorf("record coupon issue: %w", err)
	}
	st.Issued++
	st.EmptyWarnedAt, st.EmptyUnlogged = time.Time{}, 0 // empty again later: warn at once
	if err := saveHot(r, bucketCouponPools, pool.Name, st); err != nil {
		return issueResult{}, err
	}
	log.Info().Str("code", code).Msg("coupon issued")
	r.e.metrics.CouponIssued(pool.Name, hookLabel(hook))
	if stock, limited := stockLeft(pool, st); limited {
		r.e.metrics.CouponStock(pool.Name, stock)
		if err := r.stockAlert(pool, st, stock); err != nil {
			return issueResult{}, err
		}
	}
	return issueResult{outcome: issueNew, code: c, text: r.couponText(ms, pool, c, false)}, nil
}

// takeCode removes a free code from the pool, else generates one when the
// pool generates codes and its count allows; "" when the pool is empty.
func (r *run) takeCode(pool *scenarios.CouponPool, st *poolState) (code, source string, err error) {
	prefix := pool.Name + "|"
	var key string
	if err := r.tx.Scan(bucketCouponFree, prefix, func(k string, _ []byte) bool {
		key = k
		return false
	}); err != nil {
		return "", "", fmt.Errorf("find a free coupon code: %w", err)
	}
	if key != "" {
		if err := r.tx.Delete(bucketCouponFree, key); err != nil {
			return "", "", fmt.Errorf("take coupon code: %w", err)
		}
		st.Free = max(st.Free-1, 0)
		return key[len(prefix):], "import", nil
	}
	g := pool.Generate
	if g == nil || (g.Count > 0 && st.Generated >= g.Count) {
		return "", "", nil
	}
	code, err = newCode(r.tx, r.e.codeRandom(), g.Prefix, g.Length)
	if err != nil {
		return "", "", err
	}
	st.Generated++
	return code, "generate", nil
}

// stockLeft is how many codes the pool can still issue; limited is false
// for pools that generate codes without a count.
func stockLeft(pool *scenarios.CouponPool, st *poolState) (int, bool) {
	if g := pool.Generate; g != nil {
		if g.Count == 0 {
			return 0, false
		}
		return st.Free + max(g.Count-st.Generated, 0), true
	}
	return st.Free, true
}

// stockAlert fires once when stock falls to the pool's stock_alert: a log
// line, a metric and, with alert_staff, a message to staff.
func (r *run) stockAlert(pool *scenarios.CouponPool, st *poolState, stock int) error {
	if pool.StockAlert <= 0 && stock > 0 {
		return nil
	}
	if stock > pool.StockAlert {
		if st.Alerted {
			st.Alerted = false
			return saveHot(r, bucketCouponPools, pool.Name, st)
		}
		return nil
	}
	if st.Alerted {
		return nil
	}
	st.Alerted = true
	if err := saveHot(r, bucketCouponPools, pool.Name, st); err != nil {
		return err
	}
	r.log.Warn().Str("pool", pool.Name).Int("stock", stock).Int("stock_alert", pool.StockAlert).
		Msg("coupon stock is low: import or generate more codes (wecombot coupons import)")
	r.e.metrics.CouponStockAlert(pool.Name)
	if len(pool.AlertStaff) == 0 {
		return nil
	}
	text := fmt.Sprintf("【库存提醒】优惠券「%s」只剩 %d 张，请尽快补充券码（wecombot coupons import）。", pool.Name, stock)
	if stock == 0 {
		text = fmt.Sprintf("【库存提醒】优惠券「%s」已发完，会员现在收到的是兜底文案，请尽快补充券码（wecombot coupons import）。", pool.Name)
	}
	return r.enqueue(bot.ActionStaffMessage, "coupon_alert|"+pool.Name+"|"+r.ref, "", bot.StaffMessage{ToUsers: pool.AlertStaff, Text: text}, time.Time{}, time.Time{})
}

// validity returns when a code issued at `at` becomes valid and when it
// stops being valid: fixed dates, or valid_days counted in the brand's zone
// with the day of issue as day 1 (7 days issued on the 3rd: through the 9th).
func validity(pool *scenarios.CouponPool, at time.Time, zone *time.Location) (from, until time.Time) {
	if !pool.ValidFrom.IsZero() {
		from = pool.ValidFrom.In(zone)
	}
	if !pool.ValidUntil.IsZero() {
		until = pool.ValidUntil.In(zone).AddDate(0, 0, 1)
	}
	if pool.ValidDays > 0 {
		local := at.In(zone)
		day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, zone)
		until = day.AddDate(0, 0, pool.ValidDays)
	}
	return from, until
}

// couponText tells the member their code (again, with again set).
func (r *run) couponText(ms *memberState, pool *scenarios.CouponPool, c *CouponCode, again bool) string {
	var b strings.Builder
	if again {
		fmt.Fprintf(&b, "你已经领过「%s」啦～", pool.Name)
	} else {
		fmt.Fprintf(&b, "🎁「%s」已发放", pool.Name)
	}
	if pool.Description != "" {
		fmt.Fprintf(&b, "\n%s", pool.Description)
	}
	fmt.Fprintf(&b, "\n券码：%s", c.Code)
	b.WriteString(ValidityText(c, r.sc.Brand.Zone))
	if c.Status == CouponUsed {
		b.WriteString("（已使用）")
	} else if c.Expired(r.at) {
		b.WriteString("（已过期）")
	}
	if link := r.link(CouponsPath, LinkPurposeCoupons, ms.m.ExternalUserID, ClaimLinkTTL); link != "" {
		fmt.Fprintf(&b, "\n我的券包：%s", link)
	}
	return b.String()
}

// ValidityText says how long c is valid, as members read it ("，有效期至 2025-03-09").
func ValidityText(c *CouponCode, zone *time.Location) string {
	const day = "2006-01-02"
	last := c.ExpiresAt.Add(-time.Second).In(zone).Format(day)
	switch {
	case !c.ValidFrom.IsZero() && !c.ExpiresAt.IsZero():
		return fmt.Sprintf("，%s 至 %s 可用", c.ValidFrom.In(zone).Format(day), last)
	case !c.ExpiresAt.IsZero():
		return fmt.Sprintf("，有效期至 %s", last)
	case !c.ValidFrom.IsZero():
		return fmt.Sprintf("，%s 起可用", c.ValidFrom.In(zone).Format(day))
	}
	return ""
}

// hookLabel is the hook without per-instance detail, for metric labels
// ("milestone:早安打卡:7" → "milestone").
func hookLabel(hook string) string {
	if i := strings.IndexByte(hook, ':'); i > 0 {
		return hook[:i]
	}
	return hook
}

// deliverCoupon sends text to a member who isn't talking to wecombot right
// now: in 微信客服 inside its reply window, else as a 1:1 mass-send task from
// their staff member (staff confirm it in the client). A member reachable
// neither way still has the code (claim page, 领券).
func (r *run) deliverCoupon(ms *memberState, key, text string) error {
	if text == "" {
		return nil
	}
	m := ms.m
	var seen kfSeen
	found, err := r.getJSON(bucketKfSeen, m.ExternalUserID, &seen)
	if err != nil {
		return err
	}
	if found && r.at.Sub(seen.At) < KfReplyWindow {
		msg := bot.KfMessage{OpenKfID: seen.OpenKfID, ExternalUserID: m.ExternalUserID, Text: text, MsgID: kfMsgID(key)}
		return r.enqueueProactive("", bot.ActionKfMessage, key, m.ExternalUserID, msg, time.Time{}, time.Time{})
	}
	if staff := m.PrimaryStaff(); staff != "" {
		msg := bot.MassSend{ChatType: "single", Sender: staff, ExternalUserIDs: []string{m.ExternalUserID}, Text: text}
		return r.enqueueProactive("", bot.ActionMassSend, key, m.ExternalUserID, msg, time.Time{}, time.Time{})
	}
	r.log.Info().Str("member", m.ExternalUserID).Msg("member can't be reached (no kf window, no staff relation); the coupon waits on their coupon page")
	return nil
}

// couponsAfter runs after every event: it remembers kf contact, issues
// stage coupons for moves made by this event, and redeems coupon codes of
// paid orders.
func (r *run) couponsAfter() error {
	ev := r.ev
	if ev.Type == bot.EventKfText && ev.ExternalUserID != "" && ev.OpenKfID != "" {
		if err := r.putJSON(bucketKfSeen, ev.ExternalUserID, kfSeen{OpenKfID: ev.OpenKfID, At: r.at}); err != nil {
			return err
		}
	}
	for _, ms := range r.order {
		for _, ch := range ms.m.StageHistory {
			// Imported members aren't new to the brand: no stage coupon.
			if ch.EventSeq != ev.Seq || !ch.At.Equal(r.at) || ch.Cause == CauseImported {
				continue
			}
			pool := r.sc.Funnel.Stages[ch.To].Coupon
			if pool == nil {
				continue
			}
			hook := HookStagePrefix + string(ch.To)
			res, err := r.issue(ms, pool, hook)
			if err != nil {
				return err
			}
			if res.outcome == issueNew || res.outcome == issueReplay {
				if err := r.deliverCoupon(ms, "coupon|"+r.ref+"|"+ms.m.ExternalUserID+"|"+hook, res.text); err != nil {
					return err
				}
			}
		}
	}
	if (ev.Type == bot.EventOrderPaid || ev.Type == bot.EventOrderRefunded) && ev.ExternalUserID != "" && ev.Data[bot.DataUnionID] != "" {
		// Learn the unionid so the shop may name this member by unionid alone later.
		if err := r.tx.Put(bucketUnionIDs, ev.Data[bot.DataUnionID], []byte(ev.ExternalUserID)); err != nil {
			return fmt.Errorf("record unionid: %w", err)
		}
	}
	if ev.Type == bot.EventOrderPaid {
		return r.redeem()
	}
	return nil
}

// MemberByUnionID returns the member a shop order named together with
// unionid before ("" if none), so later orders may carry the unionid alone.
func MemberByUnionID(tx bot.Tx, unionid string) (string, error) {
	raw, err := tx.Get(bucketUnionIDs, unionid)
	if errors.Is(err, bot.ErrNotFound) {
		return "", nil
	}
	return string(raw), err
}

// redeem marks the coupon code a paid order used.
func (r *run) redeem() error {
	code := strings.TrimSpace(r.ev.Data[bot.DataCouponCode])
	orderID := r.ev.Data[bot.DataOrderID]
	if code == "" || orderID == "" {
		return nil
	}
	var c CouponCode
	found, err := r.getJSON(bucketCouponCodes, code, &c)
	if err != nil {
		return err
	}
	log := r.log.With().Str("code", code).Str("order", orderID).Logger()
	switch {
	case !found:
		log.Warn().Msg("order used a coupon code wecombot never issued; not counted")
		return nil
	case c.Status == CouponUsed && c.OrderID == orderID:
		return nil // a replay
	case c.Status == CouponUsed:
		log.Warn().Str("first_order", c.OrderID).Msg("coupon code used a second time; the shop should have refused it")
		return nil
	case c.Status == CouponFree:
		log.Warn().Msg("order used a coupon code that was never issued; marked used")
		if err := r.tx.Delete(bucketCouponFree, c.Pool+"|"+code); err != nil {
			return err
		}
	}
	if c.Expired(r.at) {
		log.Warn().Time("expired", c.ExpiresAt).Msg("order used an expired coupon code; counted, but check the shop's validation")
	}
	c.Status, c.UsedAt, c.OrderID = CouponUsed, r.at, orderID
	if _, amount, _, ok := r.orderData(); ok {
		c.OrderFen = amount
	}
	if r.ev.ExternalUserID != c.Member {
		c.UsedBy = r.ev.ExternalUserID
	}
	log.Info().Str("pool", c.Pool).Msg("coupon redeemed")
	r.e.metrics.CouponRedeemed(c.Pool, hookLabel(c.Hook))
	return r.putJSON(bucketCouponCodes, code, c)
}

// couponGrant handles an operator's grant (admin API).
func (r *run) couponGrant() error {
	ev := r.ev
	pool := r.sc.Coupon(ev.Data[DataPool])
	if pool == nil {
		r.log.Warn().Str("pool", ev.Data[DataPool]).Msg("coupon grant names an unknown pool; skipped")
		return nil
	}
	ms, err := r.member(ev.ExternalUserID, false)
	if err != nil {
		return err
	}
	if ms == nil {
		r.log.Warn().Msg("coupon grant for an unknown member; skipped")
		return nil
	}
	res, err := r.issue(ms, pool, HookOperator)
	if err != nil {
		return err
	}
	r.log.Info().Str("pool", pool.Name).Str("operator", ev.Data[DataOperator]).Str("outcome", res.outcome).Msg("operator coupon grant")
	if res.outcome != issueNew && res.outcome != issueReplay {
		return nil
	}
	return r.deliverCoupon(ms, "coupon|"+r.ref, res.text)
}

// welcomeCoupon issues the welcome script's coupon; the text goes into the
// welcome message.
func (r *run) welcomeCoupon(ms *memberState, script *scenarios.Script) (string, error) {
	if script == nil || script.Coupon == nil {
		return "", nil
	}
	res, err := r.issue(ms, script.Coupon, HookWelcome)
	if res.outcome == issueLimit || res.outcome == issueAudience {
		// A member adding a second staff member isn't told again.
		return "", err
	}
	return res.text, err
}

// codeRandom is where generated codes' randomness comes from.
// WithCodeRandom feeds generated coupon codes from rnd instead of
// crypto/rand (simulate makes them deterministic; never in production).
func (e *Engine) WithCodeRandom(rnd io.Reader) *Engine {
	e.codeRand = rnd
	return e
}

func (e *Engine) codeRandom() io.Reader {
	if e.codeRand != nil {
		return e.codeRand
	}
	return rand.Reader
}

// joinText joins non-empty message parts with a blank line.
func joinText(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimRight(p, "\n"); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "\n\n")
}
