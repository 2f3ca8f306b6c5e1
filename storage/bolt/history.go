package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/wecombot/wecombot/bot"
)

// A member's history: member_events (member NUL seq BE → nil) and
// member_actions (member NUL action id BE → nil) index the event log and
// the outbox by member, written with the record (AppendEvent, Enqueue) and
// deleted with it (Sweep), so a member's detail reads her own records,
// newest first, however long the log is.

func historyKey(member string, id uint64) []byte {
	k := make([]byte, 0, len(member)+9)
	k = append(k, member...)
	k = append(k, termSep)
	return binary.BigEndian.AppendUint64(k, id)
}

// indexEvent adds ev to its members' histories.
func indexEvent(tx *bbolt.Tx, members []string, seq uint64) error {
	b := tx.Bucket(bucketMemberEvents)
	for _, m := range members {
		if err := b.Put(historyKey(m, seq), nil); err != nil {
			return err
		}
	}
	return nil
}

// unindexEvent removes the event stored as raw from its members' histories.
func unindexEvent(tx *bbolt.Tx, seq uint64, raw []byte) error {
	var ev struct {
		ExternalUserID string   `json:"external_user_id"`
		MemChangeList  []string `json:"mem_change_list"`
	}
	if json.Unmarshal(raw, &ev) != nil {
		return nil
	}
	b := tx.Bucket(bucketMemberEvents)
	e := bot.Event{ExternalUserID: ev.ExternalUserID, MemChangeList: ev.MemChangeList}
	for _, m := range e.Members() {
		if err := b.Delete(historyKey(m, seq)); err != nil {
			return err
		}
	}
	return nil
}

// indexAction adds an action to its member's history.
func indexAction(tx *bbolt.Tx, member string, id uint64) error {
	if member == "" {
		return nil
	}
	return tx.Bucket(bucketMemberActions).Put(historyKey(member, id), nil)
}

// unindexAction removes the action stored as raw from its member's history.
func unindexAction(tx *bbolt.Tx, id uint64, raw []byte) error {
	var a struct {
		MemberID string `json:"member_id"`
	}
	if json.Unmarshal(raw, &a) != nil || a.MemberID == "" {
		return nil
	}
	return tx.Bucket(bucketMemberActions).Delete(historyKey(a.MemberID, id))
}

// memberHistory calls fn with the ids in member's history in index,
// newest first, until fn returns false.
func memberHistory(tx *bbolt.Tx, index []byte, member string, fn func(id []byte) bool) {
	prefix := historyKey(member, 0)[:len(member)+1]
	c := tx.Bucket(index).Cursor()
	k, _ := c.Seek(historyKey(member, ^uint64(0)))
	if k == nil || !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+8 {
		// Seek lands after the last key of the member (or on it when its id is the maximum).
		k, _ = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
		if len(k) != len(prefix)+8 {
			continue
		}
		if !fn(k[len(prefix):]) {
			return
		}
	}
}

// MemberEvents returns up to limit events about member (her own, and
// group changes naming her), newest first, from her history index.
func (s *Store) MemberEvents(ctx context.Context, member string, limit int) ([]bot.Event, error) {
	return memberRecords(ctx, s, bucketMemberEvents, bucketEvents, member, limit, func(_ *bbolt.Tx, id uint64, raw []byte) (bot.Event, error) {
		var ev bot.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return ev, fmt.Errorf("decode event %d: %w", id, err)
		}
		return ev, nil
	})
}

// MemberActions returns up to limit outbox actions for member, newest
// first, from her history index.
func (s *Store) MemberActions(ctx context.Context, member string, limit int) ([]bot.Action, error) {
	return memberRecords(ctx, s, bucketMemberActions, bucketOutbox, member, limit, decodeAction)
}

// memberRecords decodes up to limit records of table that member's
// history index names, newest first.
func memberRecords[T any](ctx context.Context, s *Store, index, table []byte, member string, limit int,
	decode func(tx *bbolt.Tx, id uint64, raw []byte) (T, error)) ([]T, error) {
	if err := check(ctx); err != nil {
		return nil, err
	}
	var out []T
	err := s.db.View(func(tx *bbolt.Tx) error {
		records := tx.Bucket(table)
		var decodeErr error
		memberHistory(tx, index, member, func(id []byte) bool {
			raw := records.Get(id)
			if raw == nil {
				return true
			}
			rec, err := decode(tx, binary.BigEndian.Uint64(id), raw)
			if err != nil {
				decodeErr = err
				return false
			}
			out = append(out, rec)
			return len(out) < limit
		})
		return decodeErr
	})
	return out, err
}

// migrateMemberHistory indexes the events and actions stored before the
// history index existed: events first (positions "e" ‖ seq), then actions
// ("a" ‖ id), migrateChunk records per transaction.
func migrateMemberHistory(tx *bbolt.Tx, from []byte) ([]byte, bool, error) {
	table, tag := bucketEvents, byte('e')
	if len(from) > 0 && from[0] == 'a' {
		table, tag = bucketOutbox, 'a'
	}
	c := tx.Bucket(table).Cursor()
	k, v := c.First()
	if len(from) > 1 {
		k, v = c.Seek(from[1:])
	}
	for n := 0; k != nil; k, v = c.Next() {
		if n == migrateChunk {
			return append([]byte{tag}, k...), false, nil
		}
		n++
		id := binary.BigEndian.Uint64(k)
		if tag == 'e' {
			var ev bot.Event
			if json.Unmarshal(v, &ev) != nil {
				continue
			}
			if err := indexEvent(tx, ev.Members(), id); err != nil {
				return nil, false, err
			}
			continue
		}
		var a struct {
			MemberID string `json:"member_id"`
		}
		if json.Unmarshal(v, &a) != nil {
			continue
		}
		if err := indexAction(tx, a.MemberID, id); err != nil {
			return nil, false, err
		}
	}
	if tag == 'e' {
		return []byte{'a'}, false, nil
	}
	return nil, true, nil
}
