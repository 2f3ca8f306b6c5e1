package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// ExportFrom is where an export resumes: records at or before these keys
// were copied already (zero values: from the start).
type ExportFrom struct {
	EventSeq uint64
	ActionID uint64
	MemberID string
	// KV resumes after bucket KVBucket, key KVKey (buckets in name order).
	KVBucket, KVKey string
}

// ExportSink receives every record of the database, each kind in key
// order (to copy it into another store: `wecombot migrate`).
type ExportSink struct {
	// Event gets the stored JSON, whether it is still pending and the
	// failure recorded for it ("" if none).
	Event  func(seq uint64, raw []byte, pending bool, errMsg string) error
	Dedupe func(key string, at time.Time) error
	Member func(id string, raw []byte) error
	Action func(id uint64, raw []byte) error // the whole action (body and status) as JSON
	KV     func(bucket, key string, value []byte) error
}

// Export streams the database to sink from one read transaction, resuming
// after from. It returns the event log's and outbox's sequence counters,
// which the copy must continue from.
func (s *Store) Export(ctx context.Context, from ExportFrom, sink ExportSink) (eventSeq, actionSeq uint64, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		eventSeq = tx.Bucket(bucketEvents).Sequence()
		actionSeq = tx.Bucket(bucketOutbox).Sequence()
		pending, failed := tx.Bucket(bucketPending), tx.Bucket(bucketFailed)
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(u64(from.EventSeq + 1)); k != nil; k, v = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := sink.Event(binary.BigEndian.Uint64(k), v, pending.Get(k) != nil, string(failed.Get(k))); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketDedupe).ForEach(func(k, v []byte) error {
			if len(v) < 8 {
				return nil
			}
			return sink.Dedupe(string(k), time.Unix(0, int64(binary.BigEndian.Uint64(v))))
		}); err != nil {
			return err
		}
		mc := tx.Bucket(bucketMembers).Cursor()
		k, v := mc.First()
		if from.MemberID != "" {
			k, v = mc.Seek([]byte(from.MemberID))
			if k != nil && string(k) == from.MemberID {
				k, v = mc.Next()
			}
		}
		for ; k != nil; k, v = mc.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := sink.Member(string(k), v); err != nil {
				return err
			}
		}
		oc := tx.Bucket(bucketOutbox).Cursor()
		for k, v := oc.Seek(u64(from.ActionID + 1)); k != nil; k, v = oc.Next() {
			// The copy gets the whole action as JSON (body and status).
			a, err := decodeAction(tx, binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			raw, err := json.Marshal(&a)
			if err != nil {
				return err
			}
			if err := sink.Action(a.ID, raw); err != nil {
				return err
			}
		}
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			bucket, ok := strings.CutPrefix(string(name), kvPrefix)
			if !ok || bucket < from.KVBucket {
				return nil
			}
			kc := b.Cursor()
			k, v := kc.First()
			if bucket == from.KVBucket && from.KVKey != "" {
				k, v = kc.Seek([]byte(from.KVKey))
				if k != nil && bytes.Equal(k, []byte(from.KVKey)) {
					k, v = kc.Next()
				}
			}
			for ; k != nil; k, v = kc.Next() {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := sink.KV(bucket, string(k), v); err != nil {
					return fmt.Errorf("bucket %s: %w", bucket, err)
				}
			}
			return nil
		})
	})
	return eventSeq, actionSeq, err
}

// Counts counts the records of each kind — "events", "dedupe", "members",
// "outbox" and "kv:BUCKET" per feature bucket — to verify a copy.
func (s *Store) Counts(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		for name, b := range map[string][]byte{"events": bucketEvents, "dedupe": bucketDedupe, "members": bucketMembers, "outbox": bucketOutbox} {
			out[name] = tx.Bucket(b).Stats().KeyN
		}
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if bucket, ok := strings.CutPrefix(string(name), kvPrefix); ok {
				out["kv:"+bucket] = b.Stats().KeyN
			}
			return ctx.Err()
		})
	})
	return out, err
}
