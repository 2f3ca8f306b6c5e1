package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/actionrec"
)

// Read methods for the operator console (bot/server's AdminStore). A
// member's history reads her index (history.go); the failed actions scan
// the newest `window` actions backwards, so a request's cost does not
// grow with how long the bot has been running.

// RecentFailedActions returns up to limit dead-lettered actions, newest
// first, looking at the newest window actions.
func (s *Store) RecentFailedActions(ctx context.Context, limit, window int) ([]bot.Action, error) {
	return s.recentActions(ctx, limit, window, func(a *bot.Action) bool { return a.Status == bot.ActionFailed })
}

// recentActions walks the newest window status records backwards and
// returns up to limit actions whose status keep accepts (only their
// bodies are decoded).
func (s *Store) recentActions(ctx context.Context, limit, window int, keep func(*bot.Action) bool) ([]bot.Action, error) {
	if err := check(ctx); err != nil {
		return nil, err
	}
	var out []bot.Action
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketOutboxStatus).Cursor()
		n := 0
		for k, v := c.Last(); k != nil && n < window && len(out) < limit; k, v = c.Prev() {
			n++
			var st bot.Action
			if _, err := actionrec.DecodeStatus(v, &st); err != nil {
				return fmt.Errorf("decode action %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if !keep(&st) {
				continue
			}
			a, err := loadAction(tx, binary.BigEndian.Uint64(k))
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// RetryAction puts a failed (dead-lettered) action back into the outbox,
// due at due, so the relay tries it again. Its attempts and last error are
// kept. Retrying an action that is not failed is an error naming its status
// and changes nothing.
func (s *Store) RetryAction(ctx context.Context, id uint64, due time.Time) (*bot.Action, error) {
	if err := check(ctx); err != nil {
		return nil, err
	}
	var a bot.Action
	err := s.db.Update(func(tx *bbolt.Tx) error {
		var err error
		if a, err = loadAction(tx, id); err != nil {
			return err
		}
		if a.Status != bot.ActionFailed && a.Status != bot.ActionUnknown {
			return fmt.Errorf("action %d is %s, only failed or possibly delivered actions can be retried: %w", id, a.Status, bot.ErrConflict)
		}
		if err := addCounter(tx, statusCounter(a.Status), -1); err != nil {
			return err
		}
		// An operator's retry is a decision to send it again.
		a.Status, a.DueAt, a.AttemptAt = bot.ActionPending, due, time.Time{}
		if err := putDue(tx, a.DueAt, !a.NotAfter.IsZero(), id); err != nil {
			return err
		}
		if err := addCounter(tx, ctrObPending, 1); err != nil {
			return err
		}
		return putStatus(tx, id, &a, !a.NotAfter.IsZero())
	})
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// FailedEvents returns up to limit events recorded as failed with Seq >
// after, in Seq order, each with its error.
func (s *Store) FailedEvents(ctx context.Context, after uint64, limit int) ([]bot.FailedEvent, error) {
	if err := check(ctx); err != nil {
		return nil, err
	}
	var out []bot.FailedEvent
	err := s.db.View(func(tx *bbolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		c := tx.Bucket(bucketFailed).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			var ev bot.Event
			if err := json.Unmarshal(events.Get(k), &ev); err != nil {
				return fmt.Errorf("decode event: %w", err)
			}
			out = append(out, bot.FailedEvent{Event: ev, Error: string(v)})
		}
		return nil
	})
	return out, err
}

// RetryFailedEvents puts failed events back into the log's pending set, so
// the pipeline applies them again through the engine's usual idempotency:
// the one with seq, or every failed event when seq is 0. It returns how
// many it put back; a seq that is not a failed event is an error (not
// found, or conflict when it was processed fine or is still pending).
// A replayed event counts as received now (its age is the replay's).
func (s *Store) RetryFailedEvents(ctx context.Context, seq uint64, now time.Time) (int, error) {
	if err := check(ctx); err != nil {
		return 0, err
	}
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		n = 0
		failed, pending := tx.Bucket(bucketFailed), tx.Bucket(bucketPending)
		var keys [][]byte
		if seq != 0 {
			k := u64(seq)
			if failed.Get(k) == nil {
				if tx.Bucket(bucketEvents).Get(k) == nil {
					return fmt.Errorf("event %d: %w", seq, bot.ErrNotFound)
				}
				return fmt.Errorf("event %d did not fail, only failed events can be retried: %w", seq, bot.ErrConflict)
			}
			keys = append(keys, k)
		} else {
			c := failed.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				keys = append(keys, bytes.Clone(k))
			}
		}
		for _, k := range keys {
			if err := failed.Delete(k); err != nil {
				return err
			}
			if err := pending.Put(k, i64(now.UnixNano())); err != nil {
				return err
			}
			n++
		}
		if err := addCounter(tx, ctrFailed, -int64(n)); err != nil {
			return err
		}
		return addCounter(tx, ctrPending, int64(n))
	})
	return n, err
}
