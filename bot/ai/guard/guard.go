// Package guard holds the AI's pure input rules: what a member's message is
// (hand-off, upset, banned, prompt injection), how long it may be, and the
// fixed answers given without the model (fallback, refusal). The engine
// applies them inside an event's transaction, so this package imports
// neither the model client nor HTTP nor metrics.
package guard

import (
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/wecombot/wecombot/scenarios"
)

// MaxInputChars caps a member's message before it reaches the prompt: a
// longer one is cut (the member still gets an answer to its beginning).
const MaxInputChars = 500

// Verdict is what the input guard decided about a member's message.
type Verdict int

// Input verdicts, in the order they are checked.
const (
	// VerdictOK: ask the model.
	VerdictOK Verdict = iota
	// VerdictHandoff: the member asked for a human (handoff_words).
	VerdictHandoff
	// VerdictNegative: the member is upset (negative_words): a human takes over.
	VerdictNegative
	// VerdictBanned: the message contains a banned word; answer with the fallback.
	VerdictBanned
	// VerdictInjection: the message tries to get the system prompt or other
	// members' data; answer with the refusal.
	VerdictInjection
)

func (v Verdict) String() string {
	return [...]string{"ok", "handoff", "negative", "banned", "injection"}[v]
}

// Refusal answers prompt-injection attempts. It names nothing of the
// prompt and nothing of anyone.
const Refusal = "抱歉，这个我不能提供。我只能回答你自己的会员信息和门店相关的问题哦～"

// injection matches requests for the system prompt, for ignoring the
// instructions, or for other people's data. Matching is on lower-cased text.
var injection = regexp.MustCompile(strings.Join([]string{
	`system\s*prompt`, `(ignore|disregard|forget)\s+(all\s+|the\s+|your\s+)?(previous|above|prior|earlier)`,
	`(reveal|show|print|repeat)\s+(me\s+)?(your|the)\s+(prompt|instructions|rules)`, `developer\s+mode`, `jailbreak`,
	`系统提示`, `提示词`, `系统设定`, `你的设定`, `(你的|原始|初始)(指令|规则|人设)`, `忽略(之前|以上|上面|前面|所有)`,
	`(其他|别的|其它|所有)(客户|会员|用户|顾客|人)的`, `别人的(积分|订单|手机|电话|信息|资料|券|地址)`,
	`(所有|全部)(客户|会员|用户)(的)?(名单|列表|信息|资料|手机)`,
}, "|"))

// CheckInput decides how to treat a member's message under the scenario's
// ai section. The engine calls it inside the event's transaction, so it is
// pure and fast.
func CheckInput(a *scenarios.AI, text string) Verdict {
	if a == nil {
		return VerdictOK
	}
	if ContainsAny(text, a.HandoffWords) {
		return VerdictHandoff
	}
	if ContainsAny(text, a.NegativeWords) {
		return VerdictNegative
	}
	if ContainsAny(text, a.BannedWords) {
		return VerdictBanned
	}
	if injection.MatchString(strings.ToLower(text)) {
		return VerdictInjection
	}
	return VerdictOK
}

// CapInput trims text and cuts it to MaxInputChars runes.
func CapInput(text string) string {
	text = strings.TrimSpace(text)
	if utf8.RuneCountInString(text) <= MaxInputChars {
		return text
	}
	return string([]rune(text)[:MaxInputChars])
}

// ContainsAny reports whether text contains one of words, ignoring case
// (the input guard's word lists, and the reply guard's banned words).
func ContainsAny(text string, words []string) bool {
	low := strings.ToLower(text)
	for _, w := range words {
		if w != "" && strings.Contains(low, strings.ToLower(w)) {
			return true
		}
	}
	return false
}

// BuiltinFallback answers when the scenario has no fallback text.
const BuiltinFallback = "这个问题我还不太确定，已经记下来请同事确认，稍后回复你。"

// FallbackText renders the scenario's ai.fallback for the asker.
func FallbackText(sc *scenarios.Scenario, data scenarios.TemplateData) string {
	if sc == nil || sc.AI == nil || sc.AI.Fallback == nil || sc.AI.Fallback.Source() == "" {
		return BuiltinFallback
	}
	s, _ := sc.AI.Fallback.Render(data)
	if strings.TrimSpace(s) == "" {
		return BuiltinFallback
	}
	return s
}

// RefusalText renders the scenario's ai.refusal (or the built-in one).
func RefusalText(sc *scenarios.Scenario, data scenarios.TemplateData) string {
	if sc == nil || sc.AI == nil || sc.AI.Refusal == nil {
		return Refusal
	}
	s, _ := sc.AI.Refusal.Render(data)
	if strings.TrimSpace(s) == "" {
		return Refusal
	}
	return s
}
