// Package actionrec is how the stores keep an outbox action: its body —
// the fields fixed at enqueue (key, kind, purpose, member, event, deadline,
// creation time and the rendered payload) — as JSON written once, and its
// status — the fields delivery changes (status, due time, attempts,
// errors, sent/attempt/result times, detail, result) — as a compact binary
// record beside it. An attempt and an outcome (two writes per send) read
// and write only the status record: no JSON decoding or encoding of the
// action, and the body is not rewritten. storage/bolt keeps the two in
// the outbox and outbox_status buckets, storage/postgres in the outbox
// table's body and state columns.
package actionrec

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// Body is the JSON of a's body: byte for byte json.Marshal of body, written
// by hand (this runs in the engine's write transaction for every action).
// The payload is already JSON (bot.NewAction marshalled it, or it was
// decoded from the store) and is written as it is instead of being
// re-validated and compacted; a string that needs escaping, and a time
// json.Marshal refuses, go through encoding/json.
func Body(a *bot.Action) ([]byte, error) {
	out := make([]byte, 0, 96+len(a.Key)+len(a.Kind)+len(a.Purpose)+len(a.MemberID)+2*len(time.RFC3339Nano)+len(a.Payload))
	out = append(out, `{"key":`...)
	out = appendJSONString(out, a.Key)
	out = append(out, `,"kind":`...)
	out = appendJSONString(out, string(a.Kind))
	if a.Purpose != "" {
		out = append(out, `,"purpose":`...)
		out = appendJSONString(out, string(a.Purpose))
	}
	if a.MemberID != "" {
		out = append(out, `,"member_id":`...)
		out = appendJSONString(out, a.MemberID)
	}
	if a.EventSeq != 0 {
		out = append(out, `,"event_seq":`...)
		out = strconv.AppendUint(out, a.EventSeq, 10)
	}
	var err error
	if !a.NotAfter.IsZero() {
		out = append(out, `,"not_after":`...)
		if out, err = appendJSONTime(out, a.NotAfter); err != nil {
			return nil, err
		}
	}
	out = append(out, `,"created_at":`...)
	if out, err = appendJSONTime(out, a.CreatedAt); err != nil {
		return nil, err
	}
	out = append(out, `,"payload":`...)
	if len(a.Payload) == 0 {
		out = append(out, "null"...)
	} else {
		out = append(out, a.Payload...)
	}
	return append(out, '}'), nil
}

// appendJSONString appends s as encoding/json writes it: as it is when
// every byte is printable ASCII that JSON and its HTML-safe escaping leave
// alone, else through json.Marshal.
func appendJSONString(out []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(out, q...)
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}

// appendJSONTime appends t as time.Time.MarshalJSON does (and fails where it does).
func appendJSONTime(out []byte, t time.Time) ([]byte, error) {
	q, err := t.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode action time: %w", err)
	}
	return append(out, q...), nil
}

// Version is the first byte of a status record.
const Version = 1

// Status record flags.
const (
	flagUrgent            = 1 << iota // the action has a deadline (NotAfter): it is in outbox_urgent while pending
	flagPossiblyDelivered             // bot.Action.PossiblyDelivered
)

// Status is a's status record: version, flags (urgent: a has a
// deadline), status, attempts, due/sent/attempt/result times, last error,
// detail, result.
func Status(a *bot.Action, urgent bool) []byte {
	n := 2 + 4*binary.MaxVarintLen64 + len(a.Status) + len(a.LastError) + len(a.Detail) + len(a.Result) + 4*(2*binary.MaxVarintLen64+1)
	out := make([]byte, 2, n)
	out[0] = Version
	if urgent {
		out[1] |= flagUrgent
	}
	if a.PossiblyDelivered {
		out[1] |= flagPossiblyDelivered
	}
	out = appendString(out, a.Status)
	out = binary.AppendUvarint(out, uint64(a.Attempts))
	for _, t := range []time.Time{a.DueAt, a.SentAt, a.AttemptAt, a.ResultAt} {
		out = appendTime(out, t)
	}
	out = appendString(out, a.LastError)
	out = appendString(out, a.Detail)
	return appendString(out, a.Result)
}

// ErrBadStatus: a status record that is not one Status wrote.
var ErrBadStatus = errors.New("malformed status record")

// DecodeStatus sets a's status fields from raw and reports whether the
// action has a deadline (its NotAfter is in the body).
func DecodeStatus(raw []byte, a *bot.Action) (urgent bool, err error) {
	if len(raw) < 2 || raw[0] != Version {
		return false, ErrBadStatus
	}
	r := statusReader{b: raw[2:]}
	a.Status = r.str()
	a.Attempts = int(r.uvarint())
	a.DueAt, a.SentAt, a.AttemptAt, a.ResultAt = r.time(), r.time(), r.time(), r.time()
	a.LastError, a.Detail, a.Result = r.str(), r.str(), r.str()
	a.PossiblyDelivered = raw[1]&flagPossiblyDelivered != 0
	if r.bad {
		return false, ErrBadStatus
	}
	return raw[1]&flagUrgent != 0, nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendTime appends t as a presence byte, then Unix seconds, nanoseconds
// and the zone offset in seconds: it reads back as the instant and offset
// JSON would keep (see statusReader.time).
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	_, off := t.Zone()
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	return binary.AppendVarint(b, int64(off))
}

type statusReader struct {
	b   []byte
	bad bool
}

func (r *statusReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	r.skip(n)
	return v
}

func (r *statusReader) varint() int64 {
	v, n := binary.Varint(r.b)
	r.skip(n)
	return v
}

// skip moves past a varint of n bytes (n <= 0: none could be read).
func (r *statusReader) skip(n int) {
	if n <= 0 {
		r.bad, r.b = true, nil
		return
	}
	r.b = r.b[n:]
}

func (r *statusReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// time is a time as appendTime wrote it, in the location time.Parse gives
// an RFC 3339 time with that offset (UTC for 0, Local when it has that
// offset then, else a fixed zone) — what the JSON record held before.
func (r *statusReader) time() time.Time {
	if len(r.b) == 0 {
		r.bad = true
		return time.Time{}
	}
	set := r.b[0]
	r.b = r.b[1:]
	if set == 0 {
		return time.Time{}
	}
	sec, nsec, off := r.varint(), r.uvarint(), int(r.varint())
	t := time.Unix(sec, int64(nsec))
	if off == 0 {
		return t.UTC()
	}
	if _, lo := t.Zone(); lo == off {
		return t
	}
	return t.In(time.FixedZone("", off))
}

// Decode is the action stored as body and status record state (without
// its ID). A nil state is a record from before status records: the body
// is then the whole action as JSON, status included.
func Decode(body, state []byte) (bot.Action, error) {
	var a bot.Action
	if err := json.Unmarshal(body, &a); err != nil {
		return a, err
	}
	if state == nil {
		return a, nil
	}
	_, err := DecodeStatus(state, &a)
	return a, err
}

// Legacy is the status of a record from before status records (the whole
// action as JSON): a's status fields set from it, and whether it has a
// deadline.
func Legacy(whole []byte, a *bot.Action) (urgent bool, err error) {
	var full bot.Action
	if err := json.Unmarshal(whole, &full); err != nil {
		return false, fmt.Errorf("decode action: %w", err)
	}
	Copy(a, &full)
	return !full.NotAfter.IsZero(), nil
}

// Copy sets dst's status fields to src's.
func Copy(dst, src *bot.Action) {
	dst.Status, dst.Attempts, dst.LastError, dst.Detail, dst.Result = src.Status, src.Attempts, src.LastError, src.Detail, src.Result
	dst.DueAt, dst.SentAt, dst.AttemptAt, dst.ResultAt = src.DueAt, src.SentAt, src.AttemptAt, src.ResultAt
	dst.PossiblyDelivered = src.PossiblyDelivered
}
