package signlink

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s, err := New([]byte("0123456789abcdef-secret"), clock)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New([]byte("another-secret-0123456789"), clock)
	tok := s.Sign("checkin", "wm_1|早安打卡", time.Hour)

	sub, exp, err := s.Verify("checkin", tok)
	if err != nil || sub != "wm_1|早安打卡" || !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("Verify = %q %v %v", sub, exp, err)
	}
	// Tamper with the subject but keep the signature.
	body, sig, _ := strings.Cut(tok, ".")
	forged := enc.EncodeToString([]byte("checkin\x00wm_2|早安打卡\x00"+"9999999999")) + "." + sig
	_ = body
	cases := []struct {
		name, purpose, token string
		want                 error
	}{
		{"forged subject", "checkin", forged, ErrSignature},
		{"other secret", "checkin", other.Sign("checkin", "wm_1", time.Hour), ErrSignature},
		{"wrong purpose", "coupon", tok, ErrPurpose},
		{"no dot", "checkin", "abc", ErrMalformed},
		{"bad base64", "checkin", "!!.!!", ErrMalformed},
		{"empty", "checkin", "", ErrMalformed},
		{"oversized", "checkin", strings.Repeat("a", 3000) + ".b", ErrMalformed},
	}
	for _, c := range cases {
		if _, _, err := s.Verify(c.purpose, c.token); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	now = now.Add(time.Hour)
	if _, _, err := s.Verify("checkin", tok); !errors.Is(err, ErrExpired) {
		t.Errorf("at expiry: err = %v, want ErrExpired", err)
	}
	if _, err := New([]byte("short"), nil); err == nil {
		t.Error("short secret accepted")
	}
}

func FuzzVerify(f *testing.F) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	s, err := New([]byte("0123456789abcdef-secret"), func() time.Time { return now })
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s.Sign("checkin", "wm_1", time.Hour))
	f.Add(s.Sign("checkin", "wm_2|第3天", 30*24*time.Hour))
	f.Add(s.Sign("coupon", "wm_1", time.Hour))
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, tok string) {
		sub, exp, err := s.Verify("checkin", tok)
		if err != nil {
			return // must never panic; refusing is always safe
		}
		// Whatever verifies is exactly what the signer issues for that
		// subject and expiry, byte for byte: no second spelling of a token
		// (padding bits, a "+" before the expiry, …) is accepted.
		if again := s.Sign("checkin", sub, exp.Sub(now)); again != tok {
			t.Fatalf("verified %q, but the signer writes %q for subject %q expiring %v", tok, again, sub, exp)
		}
		// It is bound to its purpose…
		if _, _, err := s.Verify("coupon", tok); err == nil {
			t.Fatalf("check-in token %q verified as a coupon link", tok)
		}
		// …and no single changed byte verifies.
		for i := range len(tok) {
			b := []byte(tok)
			b[i] ^= 1
			if _, _, err := s.Verify("checkin", string(b)); err == nil {
				t.Fatalf("token %q with byte %d changed (%q) still verifies", tok, i, b)
			}
		}
	})
}
