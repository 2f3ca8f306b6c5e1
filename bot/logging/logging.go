// Package logging builds wecombot's zerolog loggers: JSON by default, console
// on a terminal, and every configured secret redacted from every line.
package logging

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// Redacted replaces secret values in log output.
const Redacted = "[REDACTED]"

// tokenInURL catches credentials that travel in URLs or query strings
// (access_token=…, corpsecret=…, key=… for robot webhooks).
var tokenInURL = regexp.MustCompile(`(?i)((?:access_token|corpsecret|secret|key|token)=)[^&\s"\\]+`)

// TimeFormat is the "time" field of JSON lines: RFC 3339 with milliseconds
// (second precision can't order a burst of lines or time a slow call).
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

func init() {
	// zerolog keeps these process-wide; set once before any logger runs.
	// Durations (.Dur) are written in milliseconds, so every duration field
	// is named with its unit: took_ms, startup_ms.
	zerolog.TimeFieldFormat = TimeFormat
	zerolog.DurationFieldUnit = time.Millisecond
}

// New returns a logger writing to w at level ("debug", "info", …) in format
// ("json", "console", or "" for console on a TTY and JSON otherwise), with
// every value in secrets replaced by [REDACTED].
func New(w io.Writer, level, format string, secrets []string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	out := &redactor{w: w, r: NewRedactor(secrets)}
	var sink io.Writer = out
	if format == "console" || (format == "" && isTerminal(w)) {
		sink = zerolog.ConsoleWriter{Out: out, TimeFormat: "15:04:05.000"}
	}
	return zerolog.New(sink).Level(lvl).With().Timestamp().Logger()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

func nonEmpty(in []string) [][]byte {
	var out [][]byte
	for _, s := range in {
		if len(s) >= 4 { // shorter values would redact ordinary words
			out = append(out, []byte(s))
		}
	}
	return out
}

// Redactor scrubs configured secrets and credentials in URLs from text:
// the rule every log line gets, for text that is stored or served instead
// (an outbox action's last_error, a failed event's error, doctor's report).
// A nil *Redactor changes nothing.
type Redactor struct {
	secrets [][]byte
}

// NewRedactor redacts each value in secrets (values shorter than 4 bytes
// are ignored: they would eat ordinary words) and credential query values.
func NewRedactor(secrets []string) *Redactor {
	return &Redactor{secrets: nonEmpty(secrets)}
}

// Bytes returns b with secrets replaced by Redacted; b itself is not changed.
func (r *Redactor) Bytes(b []byte) []byte {
	if r == nil {
		return b
	}
	for _, s := range r.secrets {
		if bytes.Contains(b, s) {
			b = bytes.ReplaceAll(b, s, []byte(Redacted))
		}
	}
	if mayHoldCredential(b) && tokenInURL.Match(b) {
		b = tokenInURL.ReplaceAll(b, []byte("${1}"+Redacted))
	}
	return b
}

// mayHoldCredential is tokenInURL's fast path: every name it matches ends
// in "key", "token" or "secret" right before an '=', and y, n and t fold
// only to themselves in either case (unlike k and s, which (?i) also
// matches as U+212A and U+017F), so a line with no '=' after one of
// yYnNtT — nearly every log line — needs no regexp at all.
func mayHoldCredential(b []byte) bool {
	for i := bytes.IndexByte(b, '='); i >= 0; {
		if i > 0 {
			switch b[i-1] | 0x20 {
			case 'y', 'n', 't':
				return true
			}
		}
		j := bytes.IndexByte(b[i+1:], '=')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// String is Bytes for a string.
func (r *Redactor) String(s string) string {
	if r == nil || s == "" {
		return s
	}
	return string(r.Bytes([]byte(s)))
}

// redactor scrubs secrets from each write; zerolog writes one line per call.
type redactor struct {
	mu sync.Mutex
	w  io.Writer
	r  *Redactor
}

func (r *redactor) Write(p []byte) (int, error) {
	line := r.r.Bytes(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.w.Write(line); err != nil {
		return 0, err
	}
	return len(p), nil
}
