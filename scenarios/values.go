package scenarios

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a YAML duration: Go syntax ("90s", "10m", "1h30m") plus days
// ("1d", "2d12h"). Written as a plain number it is an error, so "10" can't
// silently mean 10 ns.
type Duration time.Duration

func (d *Duration) decodeScalar(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses a scenario duration: Go syntax plus a leading day
// count ("1d", "2d12h", "90m").
func ParseDuration(s string) (time.Duration, error) { return parseDuration(s) }

// parseDuration accepts Go durations with an optional leading "<n>d" part.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("want a duration such as 30s, 10m, 2h or 1d, got %q", s)
	if s == "" {
		return 0, bad
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 {
			return 0, bad
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, bad
	}
	if v < 0 {
		return 0, fmt.Errorf("want a positive duration, got %q", s)
	}
	return days + v, nil
}

// Yuan is an amount of money in CNY written in yuan (元) with up to two
// decimals ("39.9"), kept in fen (分).
type Yuan int64

func (y *Yuan) decodeScalar(s string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return fmt.Errorf("want an amount in yuan (元) such as 30 or 39.9, got %q", s)
	}
	fen := math.Round(f * 100)
	if math.Abs(fen-f*100) > 1e-6 {
		return fmt.Errorf("amounts have at most two decimals (分), got %q", s)
	}
	*y = Yuan(fen)
	return nil
}

// Fen returns the amount in fen.
func (y Yuan) Fen() int64 { return int64(y) }

// String formats the amount in yuan ("39.90").
func (y Yuan) String() string { return FormatYuan(int64(y)) }

// FormatYuan formats an amount in fen as yuan with two decimals.
func FormatYuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

// Date is a calendar day ("2025-03-01"), interpreted in a campaign's zone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

func (d *Date) decodeScalar(s string) error {
	t, err := time.Parse("2006-01-02", strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("want a date such as 2025-03-01, got %q", s)
	}
	*d = Date{t.Year(), t.Month(), t.Day()}
	return nil
}

// IsZero reports whether the date was not set.
func (d Date) IsZero() bool { return d.Year == 0 }

// In returns midnight of the day in loc.
func (d Date) In(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
}

// String formats the date as 2006-01-02.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// Window is a daily time window "06:00-09:00" (start inclusive, end
// exclusive), as offsets from local midnight.
type Window struct {
	Start, End time.Duration
}

func (w *Window) decodeScalar(s string) error {
	bad := fmt.Errorf("want a daily window such as 06:00-09:00, got %q", s)
	a, b, ok := strings.Cut(strings.ReplaceAll(strings.TrimSpace(s), "–", "-"), "-")
	if !ok {
		return bad
	}
	start, err1 := parseClock(a)
	end, err2 := parseClock(b)
	if err1 != nil || err2 != nil {
		return bad
	}
	if end <= start {
		return fmt.Errorf("window %q must start before it ends (windows can't cross midnight; split them)", s)
	}
	*w = Window{start, end}
	return nil
}

// Contains reports whether the time of day offset (since local midnight) is inside the window.
func (w Window) Contains(offset time.Duration) bool { return offset >= w.Start && offset < w.End }

// Overlaps reports whether two windows share any moment.
func (w Window) Overlaps(o Window) bool { return w.Start < o.End && o.Start < w.End }

// String formats the window as 06:00-09:00.
func (w Window) String() string { return formatClock(w.Start) + "-" + formatClock(w.End) }

func parseClock(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	h, m, ok := strings.Cut(s, ":")
	if !ok {
		return 0, errors.New("bad clock")
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, errors.New("bad clock")
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, nil
}

func formatClock(d time.Duration) string {
	return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
}
