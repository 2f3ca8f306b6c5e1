package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/wecombot/wecombot/bot"
)

// Read methods for the operator console (bot/server's AdminStore). They
// scan the newest `window` records backwards instead of keeping extra
// indexes: the console shows recent history, and a bounded scan keeps a
// request's cost independent of how long the bot has been running.

// RecentMemberEvents returns up to limit events about member (its
// ExternalUserID, or named in a group change's member list), newest first,
// looking at the newest window events of the log.
func (s *Store) RecentMemberEvents(ctx context.Context, member string, limit, window int) ([]bot.Event, error) {
	if err := check(ctx); err != nil {
		return nil, err
	}
	needle, _ := json.Marshal(member)
	var out []bot.Event
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		n := 0
		for k, v := c.Last(); k != nil && n < window && len(out) < limit; k, v = c.Prev() {
			n++
			if !bytes.Contains(v, needle) {
				continue
			}
			var ev bot.Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("decode event: %w", err)
			}
			if ev.ExternalUserID == member || slices.Contains(ev.MemChangeList, member) {
				out = append(out, ev)
			}
		}
		return nil
	})
	return out, err
}

// RecentMemberActions returns up to limit outbox actions for member,
// newest first, looking at the newest window actions.
func (s *Store) RecentMemberActions(ctx context.Context, member string, limit, window int) ([]bot.Action, error) {
	needle, _ := json.Marshal(member)
	return s.recentActions(ctx, limit, window, needle, func(a *bot.Action) bool { return a.MemberID == member })
}

// RecentFailedActions returns up to limit dead-lettered actions, newest
// first, looking at the newest window actions.
func (s *Store) RecentFailedActions(ctx context.Context, limit, window int) ([]bot.Action, error) {
	return s.recentActions(ctx, limit, window, []byte(`"status":"failed"`), func(a *bot.Action) bool { return a.Status == bot.ActionFailed })
}

func (s *Store) recentActions(ctx context.Context, limit, window int, needle []byte, keep func(*bot.Action) bool) ([]bot.Action, error) {
	if err := check(ctx); err != nil {
		return nil, err
	}
	var out []bot.Action
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		n := 0
		for k, v := c.Last(); k != nil && n < window && len(out) < limit; k, v = c.Prev() {
			n++
			if !bytes.Contains(v, needle) {
				continue
			}
			var a bot.Action
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("decode action: %w", err)
			}
			if keep(&a) {
				out = append(out, a)
			}
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
		ob := tx.Bucket(bucketOutbox)
		raw := ob.Get(u64(id))
		if raw == nil {
			return fmt.Errorf("action %d: %w", id, bot.ErrNotFound)
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("decode action %d: %w", id, err)
		}
		if a.Status != bot.ActionFailed {
			return fmt.Errorf("action %d is %s, only failed actions can be retried: %w", id, a.Status, bot.ErrConflict)
		}
		a.Status, a.DueAt = bot.ActionPending, due
		if err := putDue(tx, &a, id); err != nil {
			return err
		}
		if err := addCounter(tx, ctrObFailed, -1); err != nil {
			return err
		}
		if err := addCounter(tx, ctrObPending, 1); err != nil {
			return err
		}
		out, err := json.Marshal(&a)
		if err != nil {
			return err
		}
		return ob.Put(u64(id), out)
	})
	if err != nil {
		return nil, err
	}
	return &a, nil
}
