package bot

import (
	"testing"
	"time"
)

func TestBirthdayOn(t *testing.T) {
	t.Parallel()
	day := func(s string) time.Time {
		d, err := time.Parse(BirthdayLayout, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tc := range []struct {
		birthday, day string
		want          bool
	}{
		{"1990-05-17", "2026-05-17", true},
		{"1990-05-17", "2026-05-18", false},
		{"1990-05-17", "2026-06-17", false},
		{"2000-02-29", "2027-02-28", true}, // not a leap year: the 28th
		{"2000-02-29", "2028-02-28", false},
		{"2000-02-29", "2028-02-29", true},
		{"", "2026-05-17", false},
		{"05-17", "2026-05-17", false}, // not the stored layout
	} {
		m := &Member{Birthday: tc.birthday}
		if got := m.BirthdayOn(day(tc.day)); got != tc.want {
			t.Errorf("birthday %q on %s = %v, want %v", tc.birthday, tc.day, got, tc.want)
		}
	}
}
