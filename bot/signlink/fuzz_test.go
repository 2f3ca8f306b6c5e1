package signlink

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func sameDecoded(a, b string) bool {
	a1, a2, _ := strings.Cut(a, ".")
	b1, b2, _ := strings.Cut(b, ".")
	x1, e1 := enc.DecodeString(a1)
	y1, e2 := enc.DecodeString(b1)
	x2, e3 := enc.DecodeString(a2)
	y2, e4 := enc.DecodeString(b2)
	return e1 == nil && e2 == nil && e3 == nil && e4 == nil && bytes.Equal(x1, y1) && bytes.Equal(x2, y2)
}

// FuzzSignRoundTrip: whatever purpose and subject a link carries, Verify
// returns exactly that subject for that purpose, refuses it for any other
// purpose, refuses it once expired, and refuses it with any byte changed.
func FuzzSignRoundTrip(f *testing.F) {
	f.Add("checkin", "wm_1", 3600, 0)
	f.Add("coupon", "wm.with.dots", 60, 5)
	f.Add("", "", 1, 0)
	f.Add("invite", "用户|\x00\xff", 86400, 3)
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	clock := now
	s, _ := New([]byte("fuzz-secret-0123456789abcdef"), func() time.Time { return clock })
	f.Fuzz(func(t *testing.T, purpose, subject string, ttlSeconds, flip int) {
		// NUL separates the fields and Verify refuses tokens over 2 KiB, so
		// Sign cannot carry either (member ids are short and NUL-free).
		if ttlSeconds <= 0 || ttlSeconds > 365*86400 || strings.ContainsRune(purpose+subject, 0) || len(purpose)+len(subject) > 1000 {
			return
		}
		clock = now
		tok := s.Sign(purpose, subject, time.Duration(ttlSeconds)*time.Second)
		got, _, err := s.Verify(purpose, tok)
		if err != nil || got != subject {
			t.Fatalf("round trip of (%q, %q): %q, %v", purpose, subject, got, err)
		}
		if _, _, err := s.Verify(purpose+"x", tok); err == nil {
			t.Fatalf("token for %q verified for %q", purpose, purpose+"x")
		}
		if len(tok) > 0 {
			b := []byte(tok)
			i := (flip%len(b) + len(b)) % len(b)
			b[i] ^= 0x01
			// A changed character may only verify if it decodes to the same
			// bytes (base64's unused trailing bits): malleable text, same link.
			if _, _, err := s.Verify(purpose, string(b)); err == nil && !sameDecoded(tok, string(b)) {
				t.Fatalf("tampered token %q verified", b)
			}
		}
		clock = now.Add(time.Duration(ttlSeconds)*time.Second + time.Second)
		if _, _, err := s.Verify(purpose, tok); err == nil {
			t.Fatalf("token verified after its %ds expiry", ttlSeconds)
		}
	})
}
