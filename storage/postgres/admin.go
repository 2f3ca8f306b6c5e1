package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wecombot/wecombot/bot"
)

// Read methods for the operator console (bot/server's AdminStore), bounded
// like bbolt's: they look at the newest window records only.

// RecentMemberEvents returns up to limit events about member (its
// ExternalUserID, or named in a group change's member list), newest first,
// among the newest window events.
func (s *Store) RecentMemberEvents(ctx context.Context, member string, limit, window int) ([]bot.Event, error) {
	needle, _ := json.Marshal(member)
	rows, err := s.pool.Query(ctx, `SELECT seq, body FROM (SELECT seq, body FROM events ORDER BY seq DESC LIMIT $1) w
		WHERE position($2::bytea in body) > 0 ORDER BY seq DESC`, window, needle)
	if err != nil {
		return nil, err
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, err
	}
	out := evs[:0]
	for _, ev := range evs {
		if len(out) < limit && (ev.ExternalUserID == member || slices.Contains(ev.MemChangeList, member)) {
			out = append(out, ev)
		}
	}
	return out, nil
}

// RecentMemberActions returns up to limit outbox actions for member,
// newest first, among the newest window actions.
func (s *Store) RecentMemberActions(ctx context.Context, member string, limit, window int) ([]bot.Action, error) {
	needle, _ := json.Marshal(member)
	rows, err := s.pool.Query(ctx, `SELECT id, body FROM (SELECT id, body FROM outbox ORDER BY id DESC LIMIT $1) w
		WHERE position($2::bytea in body) > 0 ORDER BY id DESC`, window, needle)
	if err != nil {
		return nil, err
	}
	acts, err := scanActions(rows)
	if err != nil {
		return nil, err
	}
	out := acts[:0]
	for _, a := range acts {
		if len(out) < limit && a.MemberID == member {
			out = append(out, a)
		}
	}
	return out, nil
}

// RecentFailedActions returns up to limit dead-lettered actions, newest
// first, among the newest window actions.
func (s *Store) RecentFailedActions(ctx context.Context, limit, window int) ([]bot.Action, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, body FROM outbox WHERE status = 'failed'
		AND id > (SELECT coalesce(max(id), 0) FROM outbox) - $2 ORDER BY id DESC LIMIT $1`, limit, window)
	if err != nil {
		return nil, err
	}
	return scanActions(rows)
}

// RetryAction puts a failed action back in the outbox, due at due.
func (s *Store) RetryAction(ctx context.Context, id uint64, due time.Time) (*bot.Action, error) {
	var a bot.Action
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var raw []byte
		err := tx.QueryRow(ctx, `SELECT body FROM outbox WHERE id = $1 FOR UPDATE`, int64(id)).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("action %d: %w", id, bot.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("decode action %d: %w", id, err)
		}
		a.ID = id
		if a.Status != bot.ActionFailed {
			return fmt.Errorf("action %d is %s, only failed actions can be retried: %w", id, a.Status, bot.ErrConflict)
		}
		a.Status, a.DueAt = bot.ActionPending, due
		out, err := json.Marshal(&a)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox SET status = 'pending', due_at = $2, body = $3, lease_owner = NULL, lease_until = NULL WHERE id = $1`,
			int64(id), due, out); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO counters (name, slot, n) VALUES ('outbox_failed', $1, -1)
			ON CONFLICT (name, slot) DO UPDATE SET n = counters.n - 1`, int64(id)%counterSlots); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify('wecombot_outbox', '')`)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &a, nil
}
