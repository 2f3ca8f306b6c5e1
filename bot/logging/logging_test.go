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
