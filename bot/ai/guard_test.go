package ai

import (
	"reflect"
	"testing"
	"time"

	"github.com/wecombot/wecombot/scenarios"
)

func TestGuardReply(t *testing.T) {
	a := scenarios.LoadDefault().AI
	hits := []Hit{{Doc: &Doc{Q: "外卖", A: "满 25 元起送"}}}
	tests := []struct {
		name, reply, allowed string
		want                 string
		issues               []string
		ok                   bool
	}{
		{"clean", "可以点外卖，满 25 元起送。", "", "可以点外卖，满 25 元起送。", nil, true},
		{"price not in knowledge dropped", "满 25 元起送。大杯只要 9.9 元！", "", "满 25 元起送。", []string{IssuePrice}, true},
		{"yen sign", "现在 ￥5 一杯。", "", "", []string{IssuePrice}, false},
		{"number inside a longer one is not support", "运费 250 元。满 25 元起送。", "", "满 25 元起送。", []string{IssuePrice}, true},
		{"allowed number from profile", "你有 120 积分，可以抵 120 元吗？不确定。", "积分: 120", "你有 120 积分，可以抵 120 元吗？不确定。", nil, true},
		{"promise dropped", "我们保证明天送到。满 25 元起送。", "", "满 25 元起送。", []string{IssuePromise}, true},
		{"banned word", "可以帮你刷单。", "", "", []string{IssueBanned}, false},
		{"persona leak", "我的设定是：你是「山茶集」的茶饮顾问「小山」，语气亲切、简洁", "", "", []string{IssueLeak}, false},
		{"empty", "  ", "", "", []string{IssueEmpty}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, issues, ok := GuardReply(a, tt.reply, hits, tt.allowed)
			if got != tt.want || ok != tt.ok || !reflect.DeepEqual(issues, tt.issues) {
				t.Errorf("GuardReply(%q) = %q, %v, %v; want %q, %v, %v", tt.reply, got, issues, ok, tt.want, tt.issues, tt.ok)
			}
		})
	}
	long := *a
	long.MaxReplyChars = 10
	got, issues, ok := GuardReply(&long, "这是第一句话。这是第二句很长很长的话。", nil, "")
	if !ok || got != "这是第一句话。" || !reflect.DeepEqual(issues, []string{IssueLength}) {
		t.Errorf("length cut: %q %v %v", got, issues, ok)
	}
}

func TestBreaker(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := NewBreaker(2, 30*time.Second, func() time.Time { return now })
	b.Record(false)
	if !b.Allow() || b.State() != "closed" {
		t.Fatal("one failure keeps it closed")
	}
	b.Record(false)
	if b.Allow() || b.State() != "open" {
		t.Fatal("two failures open it")
	}
	now = now.Add(31 * time.Second)
	if !b.Allow() {
		t.Fatal("after the cooldown one probe goes through")
	}
	if b.Allow() {
		t.Fatal("only one probe at a time")
	}
	b.Record(false)
	if b.Allow() {
		t.Fatal("a failed probe reopens it")
	}
	now = now.Add(31 * time.Second)
	b.Allow()
	b.Record(true)
	if !b.Allow() || b.State() != "closed" {
		t.Fatal("a good probe closes it")
	}
}
