package engine

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// Loss alerts (流失提醒): when a customer deletes her staff member
// (del_follow_user), a staff member deletes a customer
// (del_external_contact), or a customer leaves her last customer group,
// the people loss_alerts names get an app message (message/send) with her
// stage, spend and last activity, at once and/or in a daily digest. Each
// loss is recorded for the digest (bucket losses, by day in the brand
// zone); the weekly counters count lost members per channel.
//
//	losses  <YYYY-MM-DD brand zone>|<event ref>|<member> → LossRecord JSON

// Loss reasons.
const (
	LossDeletedStaff   = "deleted_staff"    // the customer deleted the staff member
	LossDeletedByStaff = "deleted_by_staff" // the staff member deleted the customer
	LossLeftGroups     = "left_groups"      // she left her last customer group
)

var lossWords = map[string]string{
	LossDeletedStaff:   "删除了员工",
	LossDeletedByStaff: "被员工删除",
	LossLeftGroups:     "退出了最后一个客户群",
}

// LossRecord is one recorded loss.
type LossRecord struct {
	Member     string    `json:"member"`
	Name       string    `json:"name,omitempty"`
	Staff      string    `json:"staff,omitempty"`
	Reason     string    `json:"reason"`
	Channel    string    `json:"channel,omitempty"`
	Stage      bot.Stage `json:"stage,omitempty"`
	Orders     int       `json:"orders,omitempty"`
	SpendFen   int64     `json:"spend_fen,omitempty"`
	LastActive time.Time `json:"last_active,omitzero"`
	// Lost is set when she has no staff member left.
	Lost bool      `json:"lost,omitempty"`
	At   time.Time `json:"at"`
}

// loss records a loss of ms (reason, with staff the staff member concerned)
// and sends the immediate alert when loss_alerts asks for it.
func (r *run) loss(ms *memberState, reason, staff string) error {
	m := ms.m
	rec := LossRecord{Member: m.ExternalUserID, Name: m.Name, Staff: staff, Reason: reason, Channel: m.Channel, Stage: m.Stage,
		Orders: m.Orders, SpendFen: m.SpendFen, LastActive: m.LastActivity(), Lost: m.Lost, At: r.at}
	la := r.sc.LossAlerts
	if la == nil {
		return nil
	}
	if reason == LossLeftGroups && !la.Groups {
		return nil
	}
	day := r.at.In(r.sc.Brand.Zone).Format(time.DateOnly)
	if err := r.putJSON(bot.BucketLosses, day+"|"+r.ref+"|"+m.ExternalUserID, rec); err != nil {
		return err
	}
	if !la.Immediate {
		return nil
	}
	to := lossRecipients(la, rec)
	if len(to) == 0 {
		return nil
	}
	text := r.lossAlertText(rec)
	return r.enqueue(bot.ActionStaffMessage, "loss|"+r.ref+"|"+m.ExternalUserID, m.ExternalUserID,
		bot.StaffMessage{ToUsers: to, Text: text}, time.Time{}, time.Time{})
}

// lossRecipients are who hears of rec: her staff member (unless the staff
// member deleted her: they know) and the managers.
func lossRecipients(la *scenarios.LossAlerts, rec LossRecord) []string {
	var to []string
	if la.Staff && rec.Staff != "" && rec.Reason != LossDeletedByStaff {
		to = append(to, rec.Staff)
	}
	for _, id := range la.Managers {
		if !slices.Contains(to, id) {
			to = append(to, id)
		}
	}
	return to
}

// lossAlertText is the immediate alert.
func (r *run) lossAlertText(rec LossRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "⚠️ 流失提醒：%s%s", r.lossName(rec), lossWords[rec.Reason])
	if rec.Staff != "" && rec.Reason != LossLeftGroups {
		fmt.Fprintf(&b, "（%s）", rec.Staff)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "阶段：%s · 消费：%s 元（%d 单）\n", r.stageWord(rec.Stage), scenarios.FormatYuan(rec.SpendFen), rec.Orders)
	fmt.Fprintf(&b, "最近活跃：%s", r.lossTime(rec.LastActive))
	if rec.Channel != "" {
		fmt.Fprintf(&b, " · 渠道：%s", rec.Channel)
	}
	if rec.Lost {
		b.WriteString("\n她已没有任何跟进员工。")
	}
	if r.e.baseURL != "" {
		fmt.Fprintf(&b, "\n客户档案：%s/#member/%s", r.e.baseURL, rec.Member)
	}
	return b.String()
}

func (r *run) lossName(rec LossRecord) string {
	if rec.Name != "" {
		return rec.Name + "（" + rec.Member + "）"
	}
	return rec.Member
}

func (r *run) stageWord(st bot.Stage) string {
	if n := r.sc.Funnel.StageName(st); n != "" {
		return n
	}
	return "未入漏斗"
}

func (r *run) lossTime(t time.Time) string {
	if t.IsZero() {
		return "未知"
	}
	return t.In(r.sc.Brand.Zone).Format("2006-01-02 15:04")
}

// lossDigest sends the day's digest: each staff member the losses of her
// own customers, each manager all of them, counted by reason and channel.
func (r *run) lossDigest() error {
	la := r.sc.LossAlerts
	day := r.ev.Data[bot.DataDay]
	if la == nil || !la.HasDigest || day == "" {
		return nil
	}
	var recs []LossRecord
	var bad error
	err := r.tx.Scan(bot.BucketLosses, day+"|", func(_ string, v []byte) bool {
		var rec LossRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			bad = err
			return false
		}
		recs = append(recs, rec)
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return fmt.Errorf("read losses of %s: %w", day, err)
	}
	if len(recs) == 0 {
		return nil
	}
	byRecipient := map[string][]LossRecord{}
	var order []string
	for _, rec := range recs {
		for _, id := range lossRecipients(la, rec) {
			if byRecipient[id] == nil {
				order = append(order, id)
			}
			byRecipient[id] = append(byRecipient[id], rec)
		}
	}
	for _, id := range order {
		text := r.lossDigestText(day, byRecipient[id])
		if err := r.enqueue(bot.ActionStaffMessage, "lossdigest|"+day+"|"+id, "", bot.StaffMessage{ToUsers: []string{id}, Text: text}, time.Time{}, time.Time{}); err != nil {
			return err
		}
	}
	return nil
}

// lossDigestText summarizes recs; lines past WeCom's 2048 bytes are cut at
// the surface limit (bot.FitSurface), so the counts come first.
func (r *run) lossDigestText(day string, recs []LossRecord) string {
	reasons := map[string]int{}
	channels := map[string]int{}
	for _, rec := range recs {
		reasons[rec.Reason]++
		ch := rec.Channel
		if ch == "" {
			ch = "无渠道"
		}
		channels[ch]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "📉 流失日报 %s：%d 位客户", day, len(recs))
	var parts []string
	for _, k := range []string{LossDeletedStaff, LossDeletedByStaff, LossLeftGroups} {
		if reasons[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", lossWords[k], reasons[k]))
		}
	}
	fmt.Fprintf(&b, "（%s）\n", strings.Join(parts, "，"))
	names := make([]string, 0, len(channels))
	for ch := range channels {
		names = append(names, ch)
	}
	sort.Slice(names, func(i, j int) bool {
		if channels[names[i]] != channels[names[j]] {
			return channels[names[i]] > channels[names[j]]
		}
		return names[i] < names[j]
	})
	for i, ch := range names {
		names[i] = fmt.Sprintf("%s %d", ch, channels[ch])
	}
	fmt.Fprintf(&b, "按渠道：%s\n", strings.Join(names, "，"))
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].SpendFen > recs[j].SpendFen })
	for _, rec := range recs {
		fmt.Fprintf(&b, "· %s %s · %s · %s 元 · 最近活跃 %s\n", r.lossName(rec), lossWords[rec.Reason], r.stageWord(rec.Stage),
			scenarios.FormatYuan(rec.SpendFen), r.lossTime(rec.LastActive))
	}
	return strings.TrimRight(b.String(), "\n")
}
