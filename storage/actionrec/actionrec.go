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
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// body is the JSON of an action's body: bot.Action's fixed fields,
// under the same names, so a body decodes straight into a bot.Action.
type body struct {
	Key       string            `json:"key"`
	Kind      bot.ActionKind    `json:"kind"`
	Purpose   bot.ActionPurpose `json:"purpose,omitempty"`
	MemberID  string            `json:"member_id,omitempty"`
	EventSeq  uint64            `json:"event_seq,omitempty"`
	NotAfter  time.Time         `json:"not_after,omitzero"`
	CreatedAt time.Time         `json:"created_at"`
	Payload   json.RawMessage   `json:"payload"`
}

// Body is the JSON of a's body. The payload is already JSON
// (bot.NewAction marshalled it, or it was decoded from the store) and is
// spliced in as it is instead of being re-validated and compacted by
// json.Marshal: it is the last field, so the record is the other fields'
// encoding with the payload in place of null.
func Body(a *bot.Action) ([]byte, error) {
	b := body{Key: a.Key, Kind: a.Kind, Purpose: a.Purpose, MemberID: a.MemberID, EventSeq: a.EventSeq,
		NotAfter: a.NotAfter, CreatedAt: a.CreatedAt}
	if len(a.Payload) == 0 {
		return json.Marshal(&b)
	}
	head, err := json.Marshal(&b)
	const tail = `"payload":null}`
	if err != nil || !bytes.HasSuffix(head, []byte(tail)) {
		b.Payload = a.Payload
		return json.Marshal(&b) // not the layout expected: the slow, checked way
	}
	out := make([]byte, 0, len(head)-len("null}")+len(a.Payload)+1)
	out = append(out, head[:len(head)-len("null}")]...)
	out = append(out, a.Payload...)
	return append(out, '}'), nil
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
