package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/sweep"
)

func staffMessages(h *harness) []bot.StaffMessage {
	var out []bot.StaffMessage
	for _, a := range h.actions(bot.ActionStaffMessage) {
		var p bot.StaffMessage
		if err := a.Decode(&p); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func TestLossAlerts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		config string
		events func(h *harness)
		// want: recipients and text fragments of each alert, in order.
		want []struct {
			to   string
			text []string
		}
	}{
		{"the customer deletes her staff member", "loss_alerts: {managers: [boss]}", func(h *harness) {
			h.send(&bot.Event{Type: bot.EventContactDelFollow, ExternalUserID: "wmA", StaffID: "zhangsan"})
		}, []struct {
			to   string
			text []string
		}{{"zhangsan|boss", []string{"流失提醒：小艾（wmA）删除了员工（zhangsan）", "阶段：购买 · 消费：88.00 元（1 单）", "最近活跃：", "渠道：小红书", "她已没有任何跟进员工"}}}},
		{"the staff member deletes her: managers only", "loss_alerts: {managers: [boss]}", func(h *harness) {
			h.send(&bot.Event{Type: bot.EventContactDel, ExternalUserID: "wmA", StaffID: "zhangsan"})
		}, []struct {
			to   string
			text []string
		}{{"boss", []string{"小艾（wmA）被员工删除（zhangsan）"}}}},
		{"she leaves her last group", "loss_alerts: {}", func(h *harness) {
			h.send(&bot.Event{Type: bot.EventGroupUpdate, ChatID: "wrG", UpdateDetail: bot.GroupDelMember, MemChangeList: []string{"wmA"}})
		}, []struct {
			to   string
			text []string
		}{{"zhangsan", []string{"退出了最后一个客户群", "阶段：购买"}}}},
		{"group leaves not alerted when groups: false", "loss_alerts: {groups: false}", func(h *harness) {
			h.send(&bot.Event{Type: bot.EventGroupUpdate, ChatID: "wrG", UpdateDetail: bot.GroupDelMember, MemChangeList: []string{"wmA"}})
		}, nil},
		{"no loss_alerts section: no alert", "", func(h *harness) {
			h.send(&bot.Event{Type: bot.EventContactDelFollow, ExternalUserID: "wmA", StaffID: "zhangsan"})
		}, nil},
		{"digest only", "loss_alerts: {managers: [boss], immediate: false, digest_at: \"09:00\"}", func(h *harness) {
			h.send(&bot.Event{Type: bot.EventContactDelFollow, ExternalUserID: "wmA", StaffID: "zhangsan"})
			h.send(&bot.Event{Type: bot.EventContactDelFollow, ExternalUserID: "wmB", StaffID: "lisi"})
			from := h.clock
			h.advance(26 * time.Hour) // past 09:00 the next day
			for _, ev := range sweep.Digests(h.sc, from, h.clock) {
				h.send(ev)
				h.send(ev) // a second delivery (a replay) sends nothing more
			}
		}, []struct {
			to   string
			text []string
		}{
			{"zhangsan", []string{"流失日报 2025-03-03：1 位客户（删除了员工 1）", "按渠道：小红书 1", "· 小艾（wmA） 删除了员工 · 购买 · 88.00 元"}},
			{"boss", []string{"2 位客户（删除了员工 2）", "按渠道：小红书 1，无渠道 1", "小艾（wmA）", "wmB 删除了员工 · 认知 · 0.00 元"}},
			{"lisi", []string{"1 位客户", "wmB"}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, funnelScenario(t, tc.config))
			h.send(&bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wmA", StaffID: "zhangsan", State: "xhs", Data: map[string]string{bot.DataName: "小艾"}})
			h.send(&bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wmB", StaffID: "lisi"})
			h.send(join("wmA", "wrG"))
			h.send(paid("wmA", "o1", 8800))
			before := len(staffMessages(h))
			tc.events(h)
			got := staffMessages(h)[before:]
			if len(got) != len(tc.want) {
				t.Fatalf("%d alerts, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				if to := strings.Join(got[i].ToUsers, "|"); to != w.to {
					t.Errorf("alert %d to %q, want %q", i, to, w.to)
				}
				for _, frag := range w.text {
					if !strings.Contains(got[i].Text, frag) {
						t.Errorf("alert %d lacks %q:\n%s", i, frag, got[i].Text)
					}
				}
			}
		})
	}
}
