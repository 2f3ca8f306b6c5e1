package ai

import (
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/wecombot/wecombot/bot/ai/guard"
	"github.com/wecombot/wecombot/scenarios"
)

// Output problems the reply guard found.
const (
	IssueBanned  = "banned_word"
	IssuePrice   = "unsupported_price"
	IssuePromise = "unsupported_promise"
	IssueLeak    = "prompt_leak"
	IssueLength  = "too_long"
	IssueEmpty   = "empty"
)

// price matches an amount of money: ¥16, ￥ 9.9, 16 元, 19块.
var price = regexp.MustCompile(`[¥￥]\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*(?:元|块|rmb|RMB)`)

// promiseWords are commitments the bot may only repeat from the knowledge.
var promiseWords = []string{"保证", "承诺", "一定能", "包退", "包换", "赔偿", "免单", "100%", "绝对"}

// GuardReply checks a model's reply before a member sees it: it drops
// sentences naming prices or promises that the retrieved knowledge (or
// allowed, e.g. the member's own numbers) does not contain, refuses
// replies with banned words or pieces of the persona, and cuts the reply to
// max_reply_chars. ok=false means: send the fallback instead.
func GuardReply(a *scenarios.AI, reply string, hits []Hit, allowed string) (out string, issues []string, ok bool) {
	reply = strings.TrimSpace(reply)
	if reply == "" {
		return "", []string{IssueEmpty}, false
	}
	if a == nil {
		return reply, nil, true
	}
	if guard.ContainsAny(reply, a.BannedWords) {
		return "", []string{IssueBanned}, false
	}
	if leaksPersona(a.Persona, reply) {
		return "", []string{IssueLeak}, false
	}
	var knowledge strings.Builder
	for _, h := range hits {
		knowledge.WriteString("\n" + h.Doc.Q + "\n" + h.Doc.A)
	}
	known := knowledge.String()
	amounts := priceAmounts(known)
	var kept []string
	for _, s := range sentences(reply) {
		if bad := unsupportedPrice(s, amounts, allowed); bad {
			issues = appendOnce(issues, IssuePrice)
			continue
		}
		if w := firstMissing(s, promiseWords, known); w != "" {
			issues = appendOnce(issues, IssuePromise)
			continue
		}
		kept = append(kept, s)
	}
	out = strings.TrimSpace(strings.Join(kept, ""))
	if out == "" {
		return "", issues, false
	}
	if a.MaxReplyChars > 0 && utf8.RuneCountInString(out) > a.MaxReplyChars {
		out = cut(out, a.MaxReplyChars)
		issues = appendOnce(issues, IssueLength)
	}
	return out, issues, true
}

// priceAmounts are the amounts of money text names ("25" for "满 25 元").
func priceAmounts(text string) map[string]bool {
	out := map[string]bool{}
	for _, m := range price.FindAllStringSubmatch(text, -1) {
		out[m[1]+m[2]] = true
	}
	return out
}

// unsupportedPrice reports whether s names an amount that is neither a
// price in the knowledge nor a number of the asker's own (allowed).
func unsupportedPrice(s string, amounts map[string]bool, allowed string) bool {
	for _, m := range price.FindAllStringSubmatch(s, -1) {
		n := m[1] + m[2]
		if !amounts[n] && !containsNumber(allowed, n) {
			return true
		}
	}
	return false
}

// containsNumber reports whether n occurs in text as a whole number (not
// as part of a longer one: "16" is not in "160").
func containsNumber(text, n string) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], n)
		if j < 0 {
			return false
		}
		j += i
		before := j == 0 || !isDigitOrDot(text[j-1])
		after := j+len(n) == len(text) || !isDigitOrDot(text[j+len(n)])
		if before && after {
			return true
		}
		i = j + 1
	}
}

func isDigitOrDot(b byte) bool { return b >= '0' && b <= '9' || b == '.' }

func firstMissing(s string, words []string, known string) string {
	for _, w := range words {
		if strings.Contains(s, w) && !strings.Contains(known, w) {
			return w
		}
	}
	return ""
}

// leaksPersona reports whether reply repeats a 16-character stretch of the persona.
func leaksPersona(persona, reply string) bool {
	const window = 16
	p := []rune(strings.Join(strings.Fields(persona), ""))
	r := strings.Join(strings.Fields(reply), "")
	for i := 0; i+window <= len(p); i += 4 {
		if strings.Contains(r, string(p[i:i+window])) {
			return true
		}
	}
	return false
}

// sentences splits text after sentence-ending punctuation and newlines,
// keeping the punctuation.
func sentences(text string) []string {
	var out []string
	start := 0
	for i, r := range text {
		switch r {
		case '。', '！', '？', '!', '?', '\n', '；', ';', '～':
			end := i + utf8.RuneLen(r)
			if s := text[start:end]; strings.TrimSpace(s) != "" {
				out = append(out, s)
			}
			start = end
		}
	}
	if s := text[start:]; strings.TrimSpace(s) != "" {
		out = append(out, s)
	}
	return out
}

// cut shortens text to at most n runes, at a sentence end when one is in
// the second half, else mid-sentence with an ellipsis.
func cut(text string, n int) string {
	r := []rune(text)
	if len(r) <= n {
		return text
	}
	head := string(r[:n])
	best := -1
	for i, c := range []rune(head) {
		switch c {
		case '。', '！', '？', '!', '?', '\n':
			best = i
		}
	}
	if best >= n/2 {
		return string([]rune(head)[:best+1])
	}
	return string(r[:n-1]) + "…"
}

func appendOnce(list []string, s string) []string {
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}
