package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/wecombot/wecombot/bot"
)

// An outbox action is stored as two records under its id:
//
//   - its body in outbox: the fields fixed at enqueue (key, kind, purpose,
//     member, event, deadline, creation time and the rendered payload) as
//     JSON, written once;
//   - its status in outbox_status: the fields delivery changes (status,
//     due time, attempts, errors, sent/attempt/result times, detail,
//     result) in a compact binary record.
//
// BeginAttempt, MarkSent, MarkRetry… — two writes per send — read and
// write only the status record: no JSON decoding or encoding of the
// action, and the body's pages are not rewritten on every attempt.

// actionBody is the JSON of an action's body: bot.Action's fixed fields,
// under the same names, so a body decodes straight into a bot.Action.
type actionBody struct {
	Key       string            `json:"key"`
	Kind      bot.ActionKind    `json:"kind"`
	Purpose   bot.ActionPurpose `json:"purpose,omitempty"`
	MemberID  string            `json:"member_id,omitempty"`
	EventSeq  uint64            `json:"event_seq,omitempty"`
	NotAfter  time.Time         `json:"not_after,omitzero"`
	CreatedAt time.Time         `json:"created_at"`
	Payload   json.RawMessage   `json:"payload"`
}

// encodeBody is the JSON of a's body. The payload is already JSON
// (bot.NewAction marshalled it, or it was decoded from the store) and is
// spliced in as it is instead of being re-validated and compacted by
// json.Marshal: it is the last field, so the record is the other fields'
// encoding with the payload in place of null.
func encodeBody(a *bot.Action) ([]byte, error) {
	b := actionBody{Key: a.Key, Kind: a.Kind, Purpose: a.Purpose, MemberID: a.MemberID, EventSeq: a.EventSeq,
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

// statusVersion is the first byte of a status record.
const statusVersion = 1

// Status record flags.
const (
	flagUrgent            = 1 << iota // the action has a deadline (NotAfter): it is in outbox_urgent while pending
	flagPossiblyDelivered             // bot.Action.PossiblyDelivered
)

// encodeStatus is a's status record: version, flags (urgent: a has a
// deadline), status, attempts, due/sent/attempt/result times, last error,
// detail, result.
func encodeStatus(a *bot.Action, urgent bool) []byte {
	n := 2 + 4*binary.MaxVarintLen64 + len(a.Status) + len(a.LastError) + len(a.Detail) + len(a.Result) + 4*(2*binary.MaxVarintLen64+1)
	out := make([]byte, 2, n)
	out[0] = statusVersion
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

var errBadStatus = errors.New("malformed status record")

// decodeStatus sets a's status fields from raw and reports whether the
// action has a deadline (its NotAfter is in the body).
func decodeStatus(raw []byte, a *bot.Action) (urgent bool, err error) {
	if len(raw) < 2 || raw[0] != statusVersion {
		return false, errBadStatus
	}
	r := statusReader{b: raw[2:]}
	a.Status = r.str()
	a.Attempts = int(r.uvarint())
	a.DueAt, a.SentAt, a.AttemptAt, a.ResultAt = r.time(), r.time(), r.time(), r.time()
	a.LastError, a.Detail, a.Result = r.str(), r.str(), r.str()
	a.PossiblyDelivered = raw[1]&flagPossiblyDelivered != 0
	if r.bad {
		return false, errBadStatus
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

// putAction stores a's body and status under id.
func putAction(tx *bbolt.Tx, id uint64, a *bot.Action) error {
	body, err := encodeBody(a)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketOutbox).Put(u64(id), body); err != nil {
		return err
	}
	return putStatus(tx, id, a, !a.NotAfter.IsZero())
}

// loadStatus reads action id's status record into a (only the status
// fields are set) and reports whether it has a deadline.
func loadStatus(tx *bbolt.Tx, id uint64, a *bot.Action) (urgent bool, err error) {
	raw := tx.Bucket(bucketOutboxStatus).Get(u64(id))
	if raw == nil {
		return false, fmt.Errorf("action %d: %w", id, bot.ErrNotFound)
	}
	if urgent, err = decodeStatus(raw, a); err != nil {
		return false, fmt.Errorf("decode action %d: %w", id, err)
	}
	return urgent, nil
}

// putStatus stores a's status record under id.
func putStatus(tx *bbolt.Tx, id uint64, a *bot.Action, urgent bool) error {
	return tx.Bucket(bucketOutboxStatus).Put(u64(id), encodeStatus(a, urgent))
}

// decodeAction is the action stored under id with body raw (a value of
// the outbox bucket).
func decodeAction(tx *bbolt.Tx, id uint64, raw []byte) (bot.Action, error) {
	var a bot.Action
	if err := json.Unmarshal(raw, &a); err != nil {
		return a, fmt.Errorf("decode action %d: %w", id, err)
	}
	if _, err := loadStatus(tx, id, &a); err != nil {
		return a, err
	}
	a.ID = id
	return a, nil
}

// loadAction is the action stored under id.
func loadAction(tx *bbolt.Tx, id uint64) (bot.Action, error) {
	raw := tx.Bucket(bucketOutbox).Get(u64(id))
	if raw == nil {
		return bot.Action{}, fmt.Errorf("action %d: %w", id, bot.ErrNotFound)
	}
	return decodeAction(tx, id, raw)
}

// deleteStatus removes action id's status record (the retention sweep
// deletes its body).
func deleteStatus(tx *bbolt.Tx, id uint64) error {
	return tx.Bucket(bucketOutboxStatus).Delete(u64(id))
}

// migrateActionStatus splits every action stored as one JSON record (files
// before schema version 4) into its body and status records, migrateChunk
// actions per transaction. An action that has a status record already was
// split by an earlier run of this step and is left alone.
func migrateActionStatus(tx *bbolt.Tx, from []byte) ([]byte, bool, error) {
	ob, sb := tx.Bucket(bucketOutbox), tx.Bucket(bucketOutboxStatus)
	c := ob.Cursor()
	k, v := c.First()
	if from != nil {
		k, v = c.Seek(from)
	}
	type split struct {
		id uint64
		a  bot.Action
	}
	var todo []split
	for ; k != nil; k, v = c.Next() {
		if len(todo) == migrateChunk {
			break
		}
		id := binary.BigEndian.Uint64(k)
		if sb.Get(k) != nil {
			continue
		}
		var a bot.Action
		if err := json.Unmarshal(v, &a); err != nil {
			return nil, false, fmt.Errorf("decode action %d: %w", id, err)
		}
		todo = append(todo, split{id, a})
	}
	var next []byte
	if k != nil {
		next = bytes.Clone(k)
	}
	// Written after the walk: a Put during a cursor walk moves the cursor.
	for i := range todo {
		if err := putAction(tx, todo[i].id, &todo[i].a); err != nil {
			return nil, false, err
		}
	}
	return next, next == nil, nil
}
