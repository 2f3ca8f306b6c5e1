package couponcode

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCSV(t *testing.T) {
	cases := []struct {
		name, in string
		want     int
		errLine  int
	}{
		{"plain", "A1\nA2\nA3\n", 3, 0},
		{"header and extra columns", "code,note\nA1,first\n\nA2,second\n", 2, 0},
		{"chinese header, BOM, CRLF", "\ufeff券码\r\nA1\r\nA2\r\n", 2, 0},
		{"bad character", "A1\nA2\nA 3\nA4\n", 0, 3},
		{"duplicate", "A1\nA2\nA1\n", 0, 3},
		{"empty code with other columns", "A1\n,x\n", 0, 2},
		{"bad quoting", "A1\n\"A2\n", 0, 2},
		{"too long", "A1\n" + strings.Repeat("X", 65) + "\n", 0, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			codes, err := ParseCSV(strings.NewReader(c.in))
			if c.errLine == 0 {
				if err != nil || len(codes) != c.want {
					t.Fatalf("codes %v err %v, want %d codes", codes, err, c.want)
				}
				return
			}
			var ce *CSVError
			if !errors.As(err, &ce) || ce.Line != c.errLine || codes != nil {
				t.Fatalf("err = %v (codes %v), want a CSVError on line %d and no codes", err, codes, c.errLine)
			}
		})
	}
	if _, err := ParseCSV(strings.NewReader("code\n")); err == nil {
		t.Error("a file with no codes is an error")
	}
}
