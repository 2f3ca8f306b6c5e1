package bot

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("山茶拿铁今天第二杯半价。", 100) // 36 bytes a sentence
	for _, tc := range []struct {
		name string
		text string
		max  int
		want func(string) bool
	}{
		{"fits", "你好", 2048, func(s string) bool { return s == "你好" }},
		{"sentence end", long, 2048, func(s string) bool {
			return strings.HasSuffix(s, "。"+Ellipsis) && len(s) <= 2048 && len(s) > 1900
		}},
		{"no sentence end", strings.Repeat("茶", 1000), 2048, func(s string) bool {
			return strings.HasSuffix(s, Ellipsis) && len(s) <= 2048 && utf8.ValidString(s)
		}},
		{"tiny", "abcdef", 2, func(s string) bool { return s == "" }},
	} {
		got := Clip(tc.text, tc.max)
		if !tc.want(got) || !utf8.ValidString(got) {
			t.Errorf("%s: Clip = %d bytes %q…", tc.name, len(got), got[max(0, len(got)-30):])
		}
	}
	p := FitSurface(KfMessage{Text: long}).(KfMessage)
	if len(p.Text) > MaxKfText {
		t.Errorf("kf text %d bytes", len(p.Text))
	}
	g := FitSurface(GroupWelcome{Text: long}).(GroupWelcome)
	if len(g.Text) > MaxGroupWelcomeText || len(g.Text) <= MaxKfText {
		t.Errorf("group welcome text %d bytes (want cut at 3000)", len(g.Text))
	}
}
