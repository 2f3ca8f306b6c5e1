package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/actionrec"
)

// An outbox action is stored as two records under its id (storage/actionrec):
// its body (JSON, written once at enqueue) in outbox and its status (a
// compact binary record, rewritten by every attempt and outcome) in
// outbox_status.

// putAction stores a's body and status under id.
func putAction(tx *bbolt.Tx, id uint64, a *bot.Action) error {
	body, err := actionrec.Body(a)
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
		whole := tx.Bucket(bucketOutbox).Get(u64(id))
		if whole == nil {
			return false, fmt.Errorf("action %d: %w", id, bot.ErrNotFound)
		}
		// A file from before status records opened read-only (backup,
		// `migrate --from bolt`), never migrated: the body is the whole action.
		if urgent, err = actionrec.Legacy(whole, a); err != nil {
			return false, fmt.Errorf("decode action %d: %w", id, err)
		}
		return urgent, nil
	}
	if urgent, err = actionrec.DecodeStatus(raw, a); err != nil {
		return false, fmt.Errorf("decode action %d: %w", id, err)
	}
	return urgent, nil
}

// putStatus stores a's status record under id.
func putStatus(tx *bbolt.Tx, id uint64, a *bot.Action, urgent bool) error {
	return tx.Bucket(bucketOutboxStatus).Put(u64(id), actionrec.Status(a, urgent))
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
