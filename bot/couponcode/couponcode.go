// Package couponcode holds the pure parts of coupon codes: what a valid
// code looks like, reading an operator's CSV of codes, and making random
// codes. It knows nothing of pools, members or storage; the engine's coupon
// feature (bot/engine/coupons*.go) decides which code goes to whom.
package couponcode

import (
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Alphabet is what generated codes are made of; it avoids look-alikes
// (0/O, 1/I/L) so members can type codes.
const Alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

// MaxLen is the longest coupon code wecombot accepts.
const MaxLen = 64

var validCode = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Valid reports whether code is 1 to MaxLen letters, digits, - and _.
func Valid(code string) bool {
	return len(code) <= MaxLen && validCode.MatchString(code)
}

// Generate makes prefix + length random characters of Alphabet from rnd,
// trying again (up to 16 times) while taken reports the code as known.
func Generate(rnd io.Reader, prefix string, length int, taken func(code string) (bool, error)) (string, error) {
	buf := make([]byte, length)
	for try := 0; try < 16; try++ {
		if _, err := io.ReadFull(rnd, buf); err != nil {
			return "", fmt.Errorf("random coupon code: %w", err)
		}
		b := []byte(prefix)
		for _, x := range buf {
			// 248 = 8 × 31: rejecting bytes above keeps every character equally likely.
			for x >= 248 {
				var one [1]byte
				if _, err := io.ReadFull(rnd, one[:]); err != nil {
					return "", fmt.Errorf("random coupon code: %w", err)
				}
				x = one[0]
			}
			b = append(b, Alphabet[int(x)%len(Alphabet)])
		}
		code := string(b)
		known, err := taken(code)
		if err != nil {
			return "", fmt.Errorf("check coupon code: %w", err)
		}
		if !known {
			return code, nil
		}
	}
	return "", errors.New("no new coupon code after 16 tries: make generate.length longer")
}

// CSVError names the line of a malformed coupon CSV.
type CSVError struct {
	Line int
	Msg  string
}

func (e *CSVError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// ParseCSV reads coupon codes from CSV: one code per row in the first
// column (other columns are ignored), an optional header row whose first
// cell is "code" (or 券码), blank lines skipped. The whole file is checked
// first: the first bad row comes back as a *CSVError naming its line, and
// no codes are returned.
func ParseCSV(r io.Reader) ([]string, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	seen := map[string]int{}
	var codes []string
	for row := 0; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, &CSVError{Line: pe.StartLine, Msg: pe.Err.Error()}
			}
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		code := strings.TrimSpace(strings.TrimPrefix(rec[0], "\ufeff"))
		if row == 0 && (strings.EqualFold(code, "code") || code == "券码") {
			continue
		}
		switch {
		case code == "" && len(rec) == 1:
			continue
		case code == "":
			return nil, &CSVError{line, "empty code in the first column"}
		case len(code) > MaxLen:
			return nil, &CSVError{line, fmt.Sprintf("code is %d characters; at most %d", len(code), MaxLen)}
		case !validCode.MatchString(code):
			return nil, &CSVError{line, fmt.Sprintf("code %q: use letters, digits, - and _ only", code)}
		}
		if first, dup := seen[code]; dup {
			return nil, &CSVError{line, fmt.Sprintf("code %s repeats line %d", code, first)}
		}
		seen[code] = line
		codes = append(codes, code)
	}
	if len(codes) == 0 {
		return nil, errors.New("no codes in the file")
	}
	return codes, nil
}

// SeededReader is a deterministic byte stream (SHA-256 of seed and a
// counter) so simulate prints the same coupon codes on every run. Never for
// production codes.
type SeededReader struct {
	seed string
	n    uint64
	buf  []byte
}

// NewSeededReader returns a SeededReader for seed.
func NewSeededReader(seed string) *SeededReader { return &SeededReader{seed: seed} }

func (s *SeededReader) Read(p []byte) (int, error) {
	for i := range p {
		if len(s.buf) == 0 {
			sum := sha256.Sum256(fmt.Appendf(nil, "%s|%d", s.seed, s.n))
			s.n++
			s.buf = sum[:]
		}
		p[i], s.buf = s.buf[0], s.buf[1:]
	}
	return len(p), nil
}
