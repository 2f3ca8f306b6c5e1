package bot

import (
	"errors"
	"fmt"
	"strconv"
)

// Bounds on what enters wecombot. WeCom's identifiers are short (userid ≤ 64
// bytes, external_userid 32, state ≤ 30 characters, welcome codes and chat
// ids well under 100); the caps below leave generous room while keeping every
// store key far below bbolt's 32 KiB key limit, so an oversized field is a
// clear 400 naming it instead of a storage error (500) that invites retries
// of a request that can never succeed.
const (
	// MaxIDBytes caps every identifier (ids, codes, states, keys).
	MaxIDBytes = 256
	// MaxDedupeKeyBytes caps an event's dedupe key (built from several ids).
	MaxDedupeKeyBytes = 2048
	// MaxTextBytes caps free text carried in an event (a message's content).
	MaxTextBytes = 64 << 10
	// MaxDataValueBytes caps one Event.Data value.
	MaxDataValueBytes = 64 << 10
	// MaxListLen caps id lists (a group change's member list).
	MaxListLen = 10000
	// MaxAmountFen caps one order or refund amount: 10^12 fen is 100 億 yuan,
	// far above any real order, and sums of such amounts stay far below
	// int64's range (see AddFen).
	MaxAmountFen int64 = 1_000_000_000_000
)

// ErrInvalidInput is wrapped by every *FieldError.
var ErrInvalidInput = errors.New("invalid input")

// FieldError is an input field outside its bounds; Field names it the way
// the sender wrote it (WeCom's XML element, the webhook's JSON key).
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %s %s", e.Field, e.Msg) }

// Unwrap makes errors.Is(err, ErrInvalidInput) true.
func (e *FieldError) Unwrap() error { return ErrInvalidInput }

// CheckID returns a *FieldError when id is longer than MaxIDBytes.
func CheckID(field, id string) error {
	if len(id) > MaxIDBytes {
		return &FieldError{Field: field, Msg: fmt.Sprintf("is %d bytes; at most %d", len(id), MaxIDBytes)}
	}
	return nil
}

// CheckAmountFen returns a *FieldError when amount is negative or above MaxAmountFen.
func CheckAmountFen(field string, amount int64) error {
	if amount < 0 || amount > MaxAmountFen {
		return &FieldError{Field: field, Msg: fmt.Sprintf("is %d; must be between 0 and %d fen", amount, MaxAmountFen)}
	}
	return nil
}

// AddFen adds two amounts without overflowing: a sum beyond int64 saturates.
func AddFen(a, b int64) int64 {
	if b > 0 && a > (1<<63-1)-b {
		return 1<<63 - 1
	}
	if b < 0 && a < (-1<<63)-b {
		return -1 << 63
	}
	return a + b
}

// CheckEvent returns a *FieldError naming the first field of ev outside its
// bounds. Stores refuse to append such an event (AppendEvent wraps the
// error), so every way in — callbacks, the shop webhook, the admin API, the
// kf puller — answers a clear client error instead of a storage failure.
func CheckEvent(ev *Event) error {
	ids := []struct {
		field, v string
	}{
		{"UserID", ev.StaffID}, {"ExternalUserID", ev.ExternalUserID}, {"State", ev.State},
		{"WelcomeCode", ev.WelcomeCode}, {"ChatId", ev.ChatID}, {"MsgId", ev.MsgID}, {"AgentID", ev.AgentID},
		{"Event", ev.WeComEvent}, {"ChangeType", ev.ChangeType}, {"UpdateDetail", ev.UpdateDetail},
		{"Id", ev.TagID}, {"TagType", ev.TagType}, {"StrategyId", ev.StrategyID}, {"EventKey", ev.EventKey},
		{"Token", ev.KfToken}, {"OpenKfId", ev.OpenKfID}, {"Source", ev.FailReason},
		{"LastMemVer", ev.LastMemVer}, {"CurMemVer", ev.CurMemVer},
		{"type", string(ev.Type)}, {"source", ev.Source},
	}
	for _, f := range ids {
		if err := CheckID(f.field, f.v); err != nil {
			return err
		}
	}
	if len(ev.DedupeKey) > MaxDedupeKeyBytes {
		return &FieldError{Field: "dedupe_key", Msg: fmt.Sprintf("is %d bytes; at most %d (built from the event's ids)", len(ev.DedupeKey), MaxDedupeKeyBytes)}
	}
	if len(ev.Content) > MaxTextBytes {
		return &FieldError{Field: "Content", Msg: fmt.Sprintf("is %d bytes; at most %d", len(ev.Content), MaxTextBytes)}
	}
	if len(ev.MemChangeList) > MaxListLen {
		return &FieldError{Field: "MemChangeList", Msg: fmt.Sprintf("has %d entries; at most %d", len(ev.MemChangeList), MaxListLen)}
	}
	for _, id := range ev.MemChangeList {
		if err := CheckID("MemChangeList.Item", id); err != nil {
			return err
		}
	}
	for k, v := range ev.Data {
		if err := CheckID("data key", k); err != nil {
			return err
		}
		if len(v) > MaxDataValueBytes {
			return &FieldError{Field: k, Msg: fmt.Sprintf("is %d bytes; at most %d", len(v), MaxDataValueBytes)}
		}
	}
	if v, ok := ev.Data[DataAmountFen]; ok {
		// A malformed amount is the engine's to skip (it logs it); an
		// amount out of range is refused here.
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > MaxAmountFen {
			return CheckAmountFen(DataAmountFen, n)
		}
	}
	return nil
}
