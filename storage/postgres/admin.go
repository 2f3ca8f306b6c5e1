package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/actionrec"
)

// Read methods for the operator console (bot/server's AdminStore): a
// member's history from her index rows (member_events, outbox.member);
// the failed actions among the newest window actions, like bbolt's.

// MemberEvents returns up to limit events about member (her own, and
// group changes naming her), newest first.
func (s *Store) MemberEvents(ctx context.Context, member string, limit int) ([]bot.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT e.seq, e.body FROM member_events m JOIN events e ON e.seq = m.seq
		WHERE m.member = $1 ORDER BY m.seq DESC LIMIT $2`, member, limit)
	if err != nil {
		return nil, err
	}
	return scanEvents(rows)
}

// MemberActions returns up to limit outbox actions for member, newest first.
func (s *Store) MemberActions(ctx context.Context, member string, limit int) ([]bot.Action, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, body, state FROM outbox WHERE member = $1 ORDER BY id DESC LIMIT $2`, member, limit)
	if err != nil {
		return nil, err
	}
	return scanActions(rows)
}

// RecentFailedActions returns up to limit dead-lettered actions, newest
// first, among the newest window actions.
func (s *Store) RecentFailedActions(ctx context.Context, limit, window int) ([]bot.Action, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, body, state FROM outbox WHERE status = 'failed'
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
		var body []byte
		err := tx.QueryRow(ctx, `SELECT body FROM outbox WHERE id = $1 AND status <> 'swept'`, int64(id)).Scan(&body)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("action %d: %w", id, bot.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(body, &a); err != nil {
			return fmt.Errorf("decode action %d: %w", id, err)
		}
		urgent, err := lockStatus(ctx, tx, id, &a)
		if err != nil {
			return err
		}
		if a.Status != bot.ActionFailed && a.Status != bot.ActionUnknown {
			return fmt.Errorf("action %d is %s, only failed or possibly delivered actions can be retried: %w", id, a.Status, bot.ErrConflict)
		}
		counter := "outbox_" + a.Status // outbox_failed or outbox_possibly_delivered
		// An operator's retry is a decision to send it again.
		a.Status, a.DueAt, a.AttemptAt = bot.ActionPending, due, time.Time{}
		if _, err := tx.Exec(ctx, `UPDATE outbox SET status = 'pending', due_at = $2, state = $3, lease_owner = NULL, lease_until = NULL WHERE id = $1`,
			int64(id), due, actionrec.Status(&a, urgent)); err != nil {
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
