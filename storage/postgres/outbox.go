package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/actionrec"
)

// counterSlots spreads the sent/failed counters over rows so concurrent
// deliveries do not queue on one row lock.
const counterSlots = 16

// scanActions decodes rows of (id, body, state).
func scanActions(rows pgx.Rows) ([]bot.Action, error) {
	defer rows.Close()
	var out []bot.Action
	for rows.Next() {
		var id int64
		var body, state []byte
		if err := rows.Scan(&id, &body, &state); err != nil {
			return nil, err
		}
		a, err := actionrec.Decode(body, state)
		if err != nil {
			return nil, fmt.Errorf("decode action %d: %w", id, err)
		}
		a.ID = uint64(id)
		out = append(out, a)
	}
	return out, rows.Err()
}

// lockStatus reads action id's status under its row lock into a (only
// the status fields) and reports whether it has a deadline.
func lockStatus(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, id uint64, a *bot.Action) (urgent bool, err error) {
	var state, whole []byte
	err = q.QueryRow(ctx, `SELECT state, CASE WHEN state IS NULL THEN body END FROM outbox WHERE id = $1 AND status <> 'swept' FOR UPDATE`, int64(id)).Scan(&state, &whole)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("action %d: %w", id, bot.ErrNotFound)
	}
	if err != nil {
		return false, err
	}
	if state == nil {
		urgent, err = actionrec.Legacy(whole, a)
	} else {
		urgent, err = actionrec.DecodeStatus(state, a)
	}
	if err != nil {
		return false, fmt.Errorf("decode action %d: %w", id, err)
	}
	a.ID = id
	return urgent, nil
}

// DueActions implements bot.Outbox: actions with a deadline first, then by due time.
func (s *Store) DueActions(ctx context.Context, now time.Time, limit int) ([]bot.Action, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, body, state FROM outbox WHERE status = 'pending' AND due_at <= $1
		ORDER BY urgent DESC, due_at, id LIMIT $2`, now, limit)
	if err != nil {
		return nil, err
	}
	return scanActions(rows)
}

// claimOrder sorts actions as DueActions returns them.
func claimOrder(acts []bot.Action) {
	sort.SliceStable(acts, func(i, j int) bool {
		ui, uj := !acts[i].NotAfter.IsZero(), !acts[j].NotAfter.IsZero()
		if ui != uj {
			return ui
		}
		if !acts[i].DueAt.Equal(acts[j].DueAt) {
			return acts[i].DueAt.Before(acts[j].DueAt)
		}
		return acts[i].ID < acts[j].ID
	})
}

// NextDue implements bot.Outbox.
func (s *Store) NextDue(ctx context.Context) (time.Time, bool, error) {
	a, err := s.oldestPending(ctx)
	if err != nil || a == nil {
		return time.Time{}, false, err
	}
	return a.DueAt, true, nil
}

func (s *Store) oldestPending(ctx context.Context) (*bot.Action, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, body, state FROM outbox WHERE status = 'pending' ORDER BY due_at, id LIMIT 1`)
	if err != nil {
		return nil, err
	}
	acts, err := scanActions(rows)
	if err != nil || len(acts) == 0 {
		return nil, err
	}
	return &acts[0], nil
}

// updateAction loads a pending action's status under its row lock, lets
// fn change it (bot.Action's Record* methods: status fields only), and
// stores the status record with its due index columns, lease cleared, and
// the status counters. The body is neither read nor rewritten.
func (s *Store) updateAction(ctx context.Context, id uint64, fn func(a *bot.Action)) error {
	return s.updateActionLease(ctx, id, false, fn)
}

// updateActionLease is updateAction; keepLease leaves the claim lease as it
// is (an attempt starting: the claiming node is about to send, and no other
// node may take the action meanwhile).
func (s *Store) updateActionLease(ctx context.Context, id uint64, keepLease bool, fn func(a *bot.Action)) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var a bot.Action
		urgent, err := lockStatus(ctx, tx, id, &a)
		if err != nil {
			return err
		}
		if a.Status != bot.ActionPending {
			return fmt.Errorf("action %d is already %s: %w", id, a.Status, bot.ErrConflict)
		}
		fn(&a)
		update := `UPDATE outbox SET status = $2, due_at = $3, state = $4, lease_owner = NULL, lease_until = NULL WHERE id = $1`
		if keepLease {
			update = `UPDATE outbox SET status = $2, due_at = $3, state = $4 WHERE id = $1`
		}
		if _, err := tx.Exec(ctx, update, int64(id), a.Status, a.DueAt, actionrec.Status(&a, urgent)); err != nil {
			return err
		}
		if a.Status != bot.ActionPending {
			if _, err := tx.Exec(ctx, `INSERT INTO counters (name, slot, n) VALUES ($1, $2, 1) ON CONFLICT (name, slot) DO UPDATE SET n = counters.n + 1`,
				"outbox_"+a.Status, int64(id)%counterSlots); err != nil {
				return err
			}
		}
		return nil
	})
}

// BeginAttempt implements bot.Outbox.
func (s *Store) BeginAttempt(ctx context.Context, id uint64, at time.Time) error {
	return s.updateActionLease(ctx, id, true, func(a *bot.Action) { a.RecordAttempt(at) })
}

// MarkUnknown implements bot.Outbox.
func (s *Store) MarkUnknown(ctx context.Context, id uint64, next time.Time, errMsg string) error {
	return s.updateAction(ctx, id, func(a *bot.Action) { a.RecordUnknown(next, errMsg) })
}

// MarkSent implements bot.Outbox.
func (s *Store) MarkSent(ctx context.Context, id uint64, at time.Time, detail string) error {
	return s.updateAction(ctx, id, func(a *bot.Action) { a.RecordSent(at, detail) })
}

// MarkRetry implements bot.Outbox.
func (s *Store) MarkRetry(ctx context.Context, id uint64, next time.Time, errMsg string) error {
	return s.updateAction(ctx, id, func(a *bot.Action) { a.RecordRetry(next, errMsg) })
}

// MarkFailed implements bot.Outbox.
func (s *Store) MarkFailed(ctx context.Context, id uint64, at time.Time, errMsg string) error {
	return s.updateAction(ctx, id, func(a *bot.Action) { a.RecordFailed(errMsg) })
}

// Action implements bot.Outbox.
func (s *Store) Action(ctx context.Context, id uint64) (*bot.Action, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, body, state FROM outbox WHERE id = $1 AND status <> 'swept'`, int64(id))
	if err != nil {
		return nil, err
	}
	acts, err := scanActions(rows)
	if err != nil {
		return nil, err
	}
	if len(acts) == 0 {
		return nil, fmt.Errorf("action %d: %w", id, bot.ErrNotFound)
	}
	return &acts[0], nil
}

// Actions implements bot.Outbox.
func (s *Store) Actions(ctx context.Context, after uint64, limit int) ([]bot.Action, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, body, state FROM outbox WHERE id > $1 AND status <> 'swept' ORDER BY id LIMIT $2`, int64(after), limit)
	if err != nil {
		return nil, err
	}
	return scanActions(rows)
}

// OutboxStats implements bot.Outbox.
func (s *Store) OutboxStats(ctx context.Context) (bot.OutboxStats, error) {
	var st bot.OutboxStats
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM outbox WHERE status = 'pending'),
		(SELECT coalesce(sum(n), 0) FROM counters WHERE name = 'outbox_sent'),
		(SELECT coalesce(sum(n), 0) FROM counters WHERE name = 'outbox_failed'),
		(SELECT coalesce(sum(n), 0) FROM counters WHERE name = 'outbox_possibly_delivered')`).Scan(&st.Pending, &st.Sent, &st.Failed, &st.PossiblyDelivered)
	if err != nil {
		return st, err
	}
	a, err := s.oldestPending(ctx)
	if err != nil {
		return st, err
	}
	if a != nil {
		st.OldestDue = a.DueAt
	}
	return st, nil
}
