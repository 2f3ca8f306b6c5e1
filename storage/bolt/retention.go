package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/wecombot/wecombot/bot"
)

// sweepChunk bounds how many records one sweep transaction visits: bbolt
// has one writer, so a callback's append waits for the sweep's transaction;
// a chunk this size holds the lock for about 5 ms (BenchmarkSweep,
// docs/storage.md).
const sweepChunk = 500

// Sweep implements bot.Retention: it deletes events processed without
// failure and received before cutoff, and actions sent before cutoff, in
// transactions that visit at most sweepChunk records each. It keeps pending
// and failed events and actions, the dedupe keys (PruneDedupe forgets
// those) and every action's key (outbox_keys), which keeps enqueueing
// idempotent for as long as the file lives.
func (s *Store) Sweep(ctx context.Context, cutoff time.Time) (bot.SweepStats, error) {
	start := time.Now()
	var st bot.SweepStats
	// Seq order is append order: the scan ends at the first event received
	// at or after cutoff.
	events, err := s.sweepTable(ctx, bucketEvents, &st, func(tx *bbolt.Tx, k, v []byte) (del, stop bool) {
		var ev struct {
			ReceivedAt time.Time `json:"received_at"`
		}
		if json.Unmarshal(v, &ev) != nil {
			return false, false // an undecodable event stays for an operator to look at
		}
		if !ev.ReceivedAt.Before(cutoff) {
			return false, true
		}
		if tx.Bucket(bucketPending).Get(k) != nil || tx.Bucket(bucketFailed).Get(k) != nil {
			return false, false
		}
		return true, false
	}, nil, unindexEvent)
	st.Events = events
	if err != nil {
		return st, err
	}
	// Ids are enqueue order, and an action sent before cutoff was created
	// before it: the scan ends at the first action created at or after cutoff.
	actions, err := s.sweepTable(ctx, bucketOutbox, &st, func(tx *bbolt.Tx, k, v []byte) (del, stop bool) {
		var body struct {
			CreatedAt time.Time `json:"created_at"`
		}
		if json.Unmarshal(v, &body) != nil {
			return false, false
		}
		if !body.CreatedAt.Before(cutoff) {
			return false, true
		}
		var a bot.Action
		if _, err := loadStatus(tx, binary.BigEndian.Uint64(k), &a); err != nil {
			return false, false
		}
		return a.Status == bot.ActionSent && a.SentAt.Before(cutoff), false
	}, func(tx *bbolt.Tx, n int) error { return addCounter(tx, ctrObSent, -int64(n)) }, func(tx *bbolt.Tx, id uint64, raw []byte) error {
		if err := deleteStatus(tx, id); err != nil {
			return err
		}
		return unindexAction(tx, id, raw)
	})
	st.Actions = actions
	st.Took = time.Since(start)
	return st, err
}

// sweepTable walks table in key order in transactions of at most sweepChunk
// records, deleting those decide picks until it says stop; unindex takes
// each deleted record out of the member history, and deleted (with the
// number deleted in this transaction) updates counters, in the same
// transaction.
func (s *Store) sweepTable(ctx context.Context, table []byte, st *bot.SweepStats,
	decide func(tx *bbolt.Tx, k, v []byte) (del, stop bool), deleted func(tx *bbolt.Tx, n int) error,
	unindex func(tx *bbolt.Tx, id uint64, raw []byte) error) (int, error) {
	total := 0
	var from []byte
	for {
		if err := check(ctx); err != nil {
			return total, err
		}
		n, done := 0, false
		t0 := time.Now()
		err := s.db.Update(func(tx *bbolt.Tx) error {
			n, done = 0, true
			var next []byte
			c := tx.Bucket(table).Cursor()
			k, v := c.First()
			if from != nil {
				k, v = c.Seek(from)
			}
			for visited := 0; k != nil; k, v = c.Next() {
				if visited == sweepChunk {
					next, done = bytes.Clone(k), false
					break
				}
				visited++
				del, stop := decide(tx, k, v)
				if stop {
					break
				}
				if del {
					if err := unindex(tx, binary.BigEndian.Uint64(k), v); err != nil {
						return err
					}
					if err := c.Delete(); err != nil {
						return err
					}
					n++
				}
			}
			if n > 0 && deleted != nil {
				if err := deleted(tx, n); err != nil {
					return err
				}
			}
			from = next
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		st.Transactions++
		st.LongestTx = max(st.LongestTx, time.Since(t0))
		if done {
			return total, nil
		}
	}
}
