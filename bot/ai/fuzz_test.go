package ai

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wecombot/wecombot/bot/ai/guard"
	"github.com/wecombot/wecombot/scenarios"
)

func FuzzSearch(f *testing.F) {
	ix := demoIndex(f)
	for _, s := range []string{"营业时间", "山茶Latte大杯？", "", "！！", "a b c 1 2 3", "\xff\xfe", "券"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		hits := ix.Search(q, 3)
		for i, h := range hits {
			if h.Coverage < 0 || h.Coverage > 1 || h.Score <= 0 {
				t.Fatalf("hit %d of %q: score %v coverage %v", i, q, h.Score, h.Coverage)
			}
			if i > 0 && hits[i-1].Score < h.Score {
				t.Fatalf("hits of %q out of order", q)
			}
		}
		for _, tok := range Tokens(q) {
			if tok == "" {
				t.Fatalf("empty token from %q", q)
			}
		}
	})
}

func FuzzGuardReply(f *testing.F) {
	a := scenarios.LoadDefault().AI
	hits := []Hit{{Doc: &Doc{Q: "外卖", A: "满 25 元起送"}}}
	for _, s := range []string{"满 25 元起送。", "大杯 9.9 元！我们保证", "刷单", "", "￥￥￥1元1元", strings.Repeat("茶。", 400)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reply string) {
		out, _, ok := GuardReply(a, reply, hits, "积分: 120")
		if !ok {
			if out != "" {
				t.Fatalf("refused but returned %q", out)
			}
			return
		}
		if utf8.ValidString(reply) && utf8.RuneCountInString(out) > a.MaxReplyChars {
			t.Fatalf("reply over max_reply_chars: %d", utf8.RuneCountInString(out))
		}
		if guard.ContainsAny(out, a.BannedWords) {
			t.Fatalf("banned word passed: %q", out)
		}
		if unsupportedPrice(out, priceAmounts("满 25 元起送"), "积分: 120") {
			t.Fatalf("unsupported price passed: %q", out)
		}
	})
}
