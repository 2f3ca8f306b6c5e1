package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/actionrec"
)

var _ bot.Retention = (*Store)(nil)

// sweepChunk bounds how many rows one sweep transaction visits, so the
// sweep's row locks and its WAL come in short pieces next to callbacks'
// appends and deliveries.
const sweepChunk = 1000

// sweepLock names the advisory lock one sweeping node holds: nodes started
// together sweep once, not once each.
const sweepLock = "retention-sweep"

// Sweep implements bot.Retention: it deletes events processed without
// failure and received before cutoff, and turns actions sent before cutoff
// into stub rows (status 'swept', empty body: only the id and key are left,
// so enqueueing the same key again is still a duplicate), in transactions
// of at most sweepChunk rows each. Pending and failed events and actions
// and the dedupe keys are kept. When another node is already sweeping,
// Sweep returns at once with nothing done: that node does the work.
func (s *Store) Sweep(ctx context.Context, cutoff time.Time) (bot.SweepStats, error) {
	start := time.Now()
	var st bot.SweepStats
	if err := check(ctx); err != nil {
		return st, err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return st, err
	}
	defer conn.Release()
	key := lockKey(sweepLock)
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
		return st, fmt.Errorf("retention sweep lock: %w", err)
	}
	if !got {
		st.Took = time.Since(start)
		return st, nil
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key); err != nil {
			// Unsure whether the lock is still held: drop the connection, which releases it.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()

	err = s.sweepChunks(ctx, conn, &st, func(tx pgx.Tx, from int64) (int, int64, bool, error) {
		return sweepEvents(ctx, tx, from, cutoff)
	}, &st.Events)
	if err == nil {
		err = s.sweepChunks(ctx, conn, &st, func(tx pgx.Tx, from int64) (int, int64, bool, error) {
			return sweepActions(ctx, tx, from, cutoff)
		}, &st.Actions)
	}
	st.Took = time.Since(start)
	return st, err
}

// sweepChunks runs chunk in one transaction after another, each starting
// after the last row the previous one visited, until it says done.
func (s *Store) sweepChunks(ctx context.Context, conn *pgxpool.Conn, st *bot.SweepStats,
	chunk func(tx pgx.Tx, from int64) (n int, next int64, done bool, err error), total *int) error {
	var from int64
	for {
		if err := check(ctx); err != nil {
			return err
		}
		t0 := time.Now()
		var n int
		var next int64
		var done bool
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var err error
			n, next, done, err = chunk(tx, from)
			return err
		})
		if err != nil {
			return err
		}
		*total += n
		st.Transactions++
		st.LongestTx = max(st.LongestTx, time.Since(t0))
		if done {
			return nil
		}
		from = next
	}
}

// sweepEvents deletes, among the sweepChunk events after seq from, those
// processed without error and received before cutoff. Seq order is append
// order, so the sweep is done at the first event received at or after
// cutoff (or the end of the log).
func sweepEvents(ctx context.Context, tx pgx.Tx, from int64, cutoff time.Time) (int, int64, bool, error) {
	var last, newer *int64
	if err := tx.QueryRow(ctx, `WITH c AS (SELECT seq, received_at FROM events WHERE seq > $1 ORDER BY seq LIMIT $2)
		SELECT (SELECT max(seq) FROM c), (SELECT min(seq) FROM c WHERE received_at >= $3)`,
		from, sweepChunk, cutoff).Scan(&last, &newer); err != nil {
		return 0, 0, false, err
	}
	if last == nil {
		return 0, 0, true, nil
	}
	// The conditions are checked again on each row as it is deleted, so an
	// event a concurrent transaction just put back to pending stays.
	tag, err := tx.Exec(ctx, `DELETE FROM events WHERE seq > $1 AND seq <= $2
		AND processed AND error IS NULL AND received_at < $3`, from, *last, cutoff)
	if err != nil {
		return 0, 0, false, err
	}
	return int(tag.RowsAffected()), *last, newer != nil, nil
}

// sweepActions turns, among the sweepChunk sent actions after id from,
// those sent before cutoff into stub rows, and takes them off the sent
// counter. Ids are enqueue order and an action sent before cutoff was
// created before it, so the sweep is done at the first sent action created
// at or after cutoff (or the last one).
func sweepActions(ctx context.Context, tx pgx.Tx, from int64, cutoff time.Time) (int, int64, bool, error) {
	rows, err := tx.Query(ctx, `SELECT id, body, state FROM outbox WHERE status = 'sent' AND id > $1 ORDER BY id LIMIT $2 FOR UPDATE`, from, sweepChunk)
	if err != nil {
		return 0, 0, false, err
	}
	var ids []int64
	last, visited, done := from, 0, false
	for rows.Next() {
		var id int64
		var body, state []byte
		if err := rows.Scan(&id, &body, &state); err != nil {
			rows.Close()
			return 0, 0, false, err
		}
		visited++
		a, err := actionrec.Decode(body, state)
		if err != nil {
			last = id
			continue // an undecodable action stays for an operator to look at
		}
		if !a.CreatedAt.Before(cutoff) {
			done = true
			break
		}
		last = id
		if a.SentAt.Before(cutoff) {
			ids = append(ids, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, false, err
	}
	if visited < sweepChunk {
		done = true
	}
	if len(ids) == 0 {
		return 0, last, done, nil
	}
	tag, err := tx.Exec(ctx, `UPDATE outbox SET status = 'swept', body = ''::bytea, state = NULL, member = NULL, lease_owner = NULL, lease_until = NULL
		WHERE id = ANY($1) AND status = 'sent'`, ids)
	if err != nil {
		return 0, 0, false, err
	}
	n := int(tag.RowsAffected())
	if n > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO counters (name, slot, n) VALUES ('outbox_sent', 0, $1)
			ON CONFLICT (name, slot) DO UPDATE SET n = counters.n + $1`, -int64(n)); err != nil {
			return 0, 0, false, err
		}
	}
	return n, last, done, nil
}
