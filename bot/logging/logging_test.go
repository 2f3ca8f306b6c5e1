package logging

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSecretsAreRedacted(t *testing.T) {
	var buf bytes.Buffer
	secrets := []string{"corp-secret-123456", "aesKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", "abc"}
	log := New(&buf, "debug", "json", secrets)
	log.Info().Str("secret", "corp-secret-123456").Msg("starting with corp-secret-123456")
	log.Error().Err(errors.New("get https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=ww&corpsecret=LEAKED1 failed")).Msg("x")
	log.Warn().Str("url", "https://api/x?access_token=TOKEN42&debug=1").Msg("call")
	log.Info().Str("webhook", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=ROBOTKEY").Msg("robot")
	log.Info().Msg("aesKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA in text")
	out := buf.String()
	for _, leak := range []string{"corp-secret-123456", "LEAKED1", "TOKEN42", "ROBOTKEY", "aesKeyAAAA"} {
		if strings.Contains(out, leak) {
			t.Errorf("log leaks %q:\n%s", leak, out)
		}
	}
	if strings.Count(out, Redacted) < 6 {
		t.Errorf("expected redaction markers:\n%s", out)
	}
	// Short values are not redacted (they would eat ordinary words), and
	// query parameters after a redacted one survive.
	if !strings.Contains(out, "debug=1") || !strings.Contains(out, "in text") {
		t.Errorf("redaction ate unrelated text:\n%s", out)
	}
}

func TestLevelAndFormat(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "warn", "console", nil)
	log.Info().Msg("hidden")
	log.Warn().Msg("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") || strings.HasPrefix(buf.String(), "{") {
		t.Fatalf("level/format: %q", buf.String())
	}
}

// TestRedactorFastPathKeepsTheRule: lines the fast path lets through come
// out exactly as the regexp alone would leave them, and credentials in any
// case are still caught.
func TestRedactorFastPathKeepsTheRule(t *testing.T) {
	r := NewRedactor(nil)
	for _, line := range []string{
		`{"level":"info","message":"coupon issued"}`,
		`a=b c=d`, `=`, `x=`, `=token`, `=x&token=t`, `key`, `token=`, `token= x`,
		`GET /cgi-bin/gettoken?corpid=ww&CORPSECRET=abc`,
		`?Access_Token=T1&x=1`, `send?KEY=robot`, `?Secret=s&token=t`,
		"K\u212aey=v kelvin=1 \u017fecret=v", // (?i) folds K and ſ: both names end in y/t anyway
		`{"url":"https://x/y?key=V\"rest"}`,
	} {
		want := tokenInURL.ReplaceAllString(line, "${1}"+Redacted)
		if got := r.String(line); got != want {
			t.Errorf("%q: got %q, want %q", line, got, want)
		}
		if want != line && !mayHoldCredential([]byte(line)) {
			t.Errorf("%q: the fast path skips a line the regexp changes", line)
		}
	}
}

// FuzzRedactorFastPath: whatever the line, the fast path never skips one
// the regexp would change.
func FuzzRedactorFastPath(f *testing.F) {
	for _, s := range []string{"access_token=x", "a=b", "Key=1", "\u212aey=2", "se\u017fret=3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if tokenInURL.MatchString(line) && !mayHoldCredential([]byte(line)) {
			t.Fatalf("%q matches the regexp but the fast path skips it", line)
		}
	})
}

func BenchmarkRedactLine(b *testing.B) {
	r := NewRedactor([]string{"corp-secret-123456", "aesKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
	line := []byte(`{"level":"warn","component":"engine","pool":"新人券","member":"wm_bench_3b9a_1234","time":"2026-12-01T15:47:58.478Z","message":"coupon pool is empty: the member got the fallback text; import or generate codes (wecombot coupons import)"}` + "\n")
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Bytes(line)
	}
}
