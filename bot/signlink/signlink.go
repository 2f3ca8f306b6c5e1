// Package signlink signs and verifies members' personal H5 links (check-in,
// coupon claim, invite): a token carries a purpose, a subject (a member id,
// or "member|campaign"), an expiry and an HMAC-SHA256 over all three, so a
// member can't forge another's link, reuse a check-in link as a coupon
// link, or use it after it expires.
//
// Token format (URL-safe, no padding): base64(purpose "\x00" subject "\x00"
// expiry-unix) "." base64(HMAC[:16]).
package signlink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Errors Verify returns; callers show members a friendly page for each.
var (
	ErrMalformed = errors.New("signlink: malformed link")
	ErrSignature = errors.New("signlink: bad signature")
	ErrExpired   = errors.New("signlink: link expired")
	ErrPurpose   = errors.New("signlink: link is for something else")
)

// MinSecretLen is the shortest secret Signer accepts.
const MinSecretLen = 16

// Signer signs and verifies links with one secret.
type Signer struct {
	key []byte
	now func() time.Time
}

// New returns a Signer; now is the clock (nil: time.Now).
func New(secret []byte, now func() time.Time) (*Signer, error) {
	if len(secret) < MinSecretLen {
		return nil, errors.New("signlink: secret shorter than 16 bytes")
	}
	if now == nil {
		now = time.Now
	}
	return &Signer{key: append([]byte(nil), secret...), now: now}, nil
}

var enc = base64.RawURLEncoding.Strict()

// Sign returns a token for purpose and subject, valid for ttl. Purpose and
// subject must not contain NUL (the field separator): such a token never
// verifies.
func (s *Signer) Sign(purpose, subject string, ttl time.Duration) string {
	exp := s.now().Add(ttl).Unix()
	body := purpose + "\x00" + subject + "\x00" + strconv.FormatInt(exp, 10)
	return enc.EncodeToString([]byte(body)) + "." + enc.EncodeToString(s.mac(body))
}

// Verify checks token for purpose and returns its subject and expiry.
// The signature is compared in constant time before anything else is trusted.
func (s *Signer) Verify(purpose, token string) (subject string, expires time.Time, err error) {
	b64, sig64, ok := strings.Cut(token, ".")
	if !ok || len(token) > 2048 || !tokenAlphabet(token) {
		return "", time.Time{}, ErrMalformed
	}
	body, err1 := enc.DecodeString(b64)
	sig, err2 := enc.DecodeString(sig64)
	if err1 != nil || err2 != nil {
		return "", time.Time{}, ErrMalformed
	}
	if !hmac.Equal(sig, s.mac(string(body))) {
		return "", time.Time{}, ErrSignature
	}
	parts := strings.Split(string(body), "\x00")
	if len(parts) != 3 {
		return "", time.Time{}, ErrMalformed
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return "", time.Time{}, ErrMalformed
	}
	expires = time.Unix(exp, 0)
	if parts[0] != purpose {
		return "", time.Time{}, ErrPurpose
	}
	if !s.now().Before(expires) {
		return parts[1], expires, ErrExpired
	}
	return parts[1], expires, nil
}

// tokenAlphabet reports whether t holds only what Sign writes: base64url
// and the one dot. The decoder skips CR and LF, so without this check
// "Y2hl\rY2tp…" would verify as a second spelling of a token (found by
// FuzzVerify).
func tokenAlphabet(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (s *Signer) mac(body string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(body))
	return m.Sum(nil)[:16]
}
