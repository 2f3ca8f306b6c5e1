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
	rows, err := s.pool.Query(ctx, `SELECT id, body FROM (SELECT id, status, body FROM outbox ORDER BY id DESC LIMIT $1) w
		WHERE status <> 'swept' AND position($2::bytea in body) > 0 ORDER BY id DESC`, window, needle)
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
		err := tx.QueryRow(ctx, `SELECT body FROM outbox WHERE id = $1 AND status <> 'swept' FOR UPDATE`, int64(id)).Scan(&raw)
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
		if a.Status != bot.ActionFailed && a.Status != bot.ActionUnknown {
			return fmt.Errorf("action %d is %s, only failed or possibly delivered actions can be retried: %w", id, a.Status, bot.ErrConflict)
		}
		counter := "outbox_" + a.Status // outbox_failed or outbox_possibly_delivered
		// An operator's retry is a decision to send it again.
		a.Status, a.DueAt, a.AttemptAt = bot.ActionPending, due, time.Time{}
		out, err := json.Marshal(&a)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox SET status = 'pending', due_at = $2, body = $3, lease_owner = NULL, lease_until = NULL WHERE id = $1`,
			int64(id), due, out); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO counters (name, slot, n) VALUES ($2, $1, -1)
			ON CONFLICT (name, slot) DO UPDATE SET n = counters.n - 1`, int64(id)%counterSlots, counter); err != nil {
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

// FailedEvents lists events recorded as failed with Seq > after, in Seq
// order, each with its error (server.EventReplayer).
func (s *Store) FailedEvents(ctx context.Context, after uint64, limit int) ([]bot.FailedEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, error, body FROM events WHERE error IS NOT NULL AND seq > $1 ORDER BY seq LIMIT $2`, int64(after), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []bot.FailedEvent
	for rows.Next() {
		var seq int64
		var msg string
		var raw []byte
		if err := rows.Scan(&seq, &msg, &raw); err != nil {
			return nil, err
		}
		var ev bot.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("decode event %d: %w", seq, err)
		}
		ev.Seq = uint64(seq)
		out = append(out, bot.FailedEvent{Event: ev, Error: msg})
	}
	return out, rows.Err()
}

// RetryFailedEvents puts the failed event seq (every failed event when seq
// is 0) back to pending, received now, and returns how many
// (server.EventReplayer).
func (s *Store) RetryFailedEvents(ctx context.Context, seq uint64, now time.Time) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if seq != 0 {
			var failed bool
			err := tx.QueryRow(ctx, `SELECT error IS NOT NULL FROM events WHERE seq = $1 FOR UPDATE`, int64(seq)).Scan(&failed)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("event %d: %w", seq, bot.ErrNotFound)
			}
			if err != nil {
				return err
			}
			if !failed {
				return fmt.Errorf("event %d did not fail, only failed events can be retried: %w", seq, bot.ErrConflict)
			}
		}
		tag, err := tx.Exec(ctx, `UPDATE events SET processed = false, error = NULL, received_at = $2
			WHERE error IS NOT NULL AND ($1 = 0 OR seq = $1)`, int64(seq), now)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		_, err = tx.Exec(ctx, `SELECT pg_notify('wecombot_events', '')`)
		return err
	})
	return n, err
}
