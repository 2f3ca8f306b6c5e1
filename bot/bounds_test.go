package bot

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestCheckEventNamesTheField(t *testing.T) {
	long := strings.Repeat("x", MaxIDBytes+1)
	for _, tc := range []struct {
		ev    Event
		field string
	}{
		{Event{ExternalUserID: long}, "ExternalUserID"},
		{Event{StaffID: long}, "UserID"},
		{Event{State: long}, "State"},
		{Event{ChatID: "c", MemChangeList: []string{"a", long}}, "MemChangeList.Item"},
		{Event{Data: map[string]string{DataAmountFen: "1000000000001"}}, DataAmountFen},
		{Event{Content: strings.Repeat("字", MaxTextBytes)}, "Content"},
	} {
		err := CheckEvent(&tc.ev)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%+v: %v, want a field error naming %s", tc.ev, err, tc.field)
		}
	}
	ok := Event{ExternalUserID: "wmA", StaffID: "zhangsan", State: "xhs", Data: map[string]string{DataAmountFen: "abc"}}
	if err := CheckEvent(&ok); err != nil {
		t.Errorf("in bounds: %v", err)
	}
}

func TestAddFenSaturates(t *testing.T) {
	for _, tc := range []struct{ a, b, want int64 }{
		{1, 2, 3},
		{math.MaxInt64, 1, math.MaxInt64},
		{math.MaxInt64 - 5, 10, math.MaxInt64},
		{math.MinInt64, -1, math.MinInt64},
		{-5, 3, -2},
	} {
		if got := AddFen(tc.a, tc.b); got != tc.want {
			t.Errorf("AddFen(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
