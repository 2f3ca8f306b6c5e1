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

// ImportState is how far an import from source got: records at or before
// these keys are in the database (the export resumes after them).
type ImportState struct {
	EventSeq        uint64
	ActionID        uint64
	MemberID        string
	KVBucket, KVKey string
	Finished        bool
}

// Import copies another store's records into this database in batches of
// one transaction each, keeping sequence numbers and ids. Re-running an
// interrupted import of the same source resumes it (ImportState); rows
// already there are skipped.
type Import struct {
	s     *Store
	ctx   context.Context
	batch *pgx.Batch
	// Rows counts what was written per kind (for the report).
	Rows map[string]int
}

// importBatch is how many rows one transaction writes.
const importBatch = 1000

// BeginImport starts or resumes an import from source (e.g. "bolt:/data/wecombot.db").
// It refuses a database that holds data not imported from source.
func (s *Store) BeginImport(ctx context.Context, source string) (*Import, ImportState, error) {
	var st ImportState
	var sources []string
	rows, err := s.pool.Query(ctx, `SELECT source FROM imports`)
	if err != nil {
		return nil, st, err
	}
	if sources, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, st, err
	}
	switch {
	case len(sources) > 1 || (len(sources) == 1 && sources[0] != source):
		return nil, st, fmt.Errorf("the database already holds an import from %s: import into an empty database", sources[0])
	case len(sources) == 0:
		var used bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM members) OR EXISTS (SELECT 1 FROM outbox) OR EXISTS (SELECT 1 FROM kv)`).Scan(&used); err != nil {
			return nil, st, err
		}
		if used {
			return nil, st, errors.New("the database is not empty (a wecombot already runs on it?): import into an empty database")
		}
		if _, err := s.pool.Exec(ctx, `INSERT INTO imports (source) VALUES ($1)`, source); err != nil {
			return nil, st, err
		}
	}
	var seq, id int64
	var member, bucket, key []byte
	var finished *time.Time
	err = s.pool.QueryRow(ctx, `SELECT
		(SELECT coalesce(max(seq), 0) FROM events),
		(SELECT coalesce(max(id), 0) FROM outbox),
		(SELECT convert_to(max(id), 'UTF8') FROM members),
		(SELECT bucket FROM kv ORDER BY bucket DESC, key DESC LIMIT 1),
		(SELECT key FROM kv ORDER BY bucket DESC, key DESC LIMIT 1),
		(SELECT finished_at FROM imports WHERE source = $1)`, source).Scan(&seq, &id, &member, &bucket, &key, &finished)
	if err != nil {
		return nil, st, err
	}
	st = ImportState{EventSeq: uint64(seq), ActionID: uint64(id), MemberID: string(member), KVBucket: string(bucket), KVKey: string(key), Finished: finished != nil}
	return &Import{s: s, ctx: ctx, batch: &pgx.Batch{}, Rows: map[string]int{}}, st, nil
}

func (im *Import) queue(kind, sql string, args ...any) error {
	im.batch.Queue(sql, args...)
	im.Rows[kind]++
	if im.batch.Len() >= importBatch {
		return im.flush()
	}
	return nil
}

func (im *Import) flush() error {
	if im.batch.Len() == 0 {
		return nil
	}
	b := im.batch
	im.batch = &pgx.Batch{}
	return pgx.BeginFunc(im.ctx, im.s.pool, func(tx pgx.Tx) error { return tx.SendBatch(im.ctx, b).Close() })
}

// Event copies one event with its processed state.
func (im *Import) Event(seq uint64, raw []byte, pending bool, errMsg string) error {
	var ev bot.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return fmt.Errorf("decode event %d: %w", seq, err)
	}
	ev.Seq = seq
	var e *string
	if errMsg != "" {
		e = &errMsg
	}
	if err := im.queue("events", `INSERT INTO events (seq, part, received_at, processed, error, body) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (seq) DO NOTHING`,
		int64(seq), Partition(&ev), ev.ReceivedAt, !pending, e, raw); err != nil {
		return err
	}
	if members := ev.Members(); len(members) > 0 {
		return im.queue("member_events", `INSERT INTO member_events (member, seq) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING`, members, int64(seq))
	}
	return nil
}

// Dedupe copies one dedupe key.
func (im *Import) Dedupe(key string, at time.Time) error {
	return im.queue("dedupe", `INSERT INTO dedupe (key, at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, []byte(key), at)
}

// Member copies one member's record as stored.
func (im *Import) Member(id string, raw []byte) error {
	return im.queue("members", `INSERT INTO members (id, body) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, id, raw)
}

// Action copies one outbox action (any status).
func (im *Import) Action(id uint64, raw []byte) error {
	var a bot.Action
	if err := json.Unmarshal(raw, &a); err != nil {
		return fmt.Errorf("decode action %d: %w", id, err)
	}
	body, err := actionrec.Body(&a)
	if err != nil {
		return fmt.Errorf("encode action %d: %w", id, err)
	}
	urgent := !a.NotAfter.IsZero()
	return im.queue("outbox", `INSERT INTO outbox (id, key, status, due_at, urgent, member, body, state) VALUES ($1, $2, $3, $4, $5, nullif($6, ''), $7, $8) ON CONFLICT (id) DO NOTHING`,
		int64(id), []byte(a.Key), a.Status, a.DueAt, urgent, a.MemberID, body, actionrec.Status(&a, urgent))
}

// KV copies one feature key.
func (im *Import) KV(bucket, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	return im.queue("kv", `INSERT INTO kv (bucket, key, value) VALUES ($1, $2, $3) ON CONFLICT (bucket, key) DO NOTHING`, []byte(bucket), []byte(key), value)
}

// Finish writes what is queued, continues the sequences after the
// source's (eventSeq, actionSeq), recounts the outbox's status counters
// marks the import finished and builds the member index from the copied
// members (which were inserted without it).
func (im *Import) Finish(source string, eventSeq, actionSeq uint64) error {
	if err := im.flush(); err != nil {
		return err
	}
	err := pgx.BeginFunc(im.ctx, im.s.pool, func(tx pgx.Tx) error {
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`UPDATE counters SET n = greatest($1, (SELECT coalesce(max(seq), 0) FROM events)) WHERE name = 'event_seq' AND slot = 0`, []any{int64(eventSeq)}},
			{`SELECT setval('outbox_id', greatest($1, (SELECT coalesce(max(id), 0) FROM outbox), 1))`, []any{int64(actionSeq)}},
			{`DELETE FROM counters WHERE name IN ('outbox_sent', 'outbox_failed')`, nil},
			{`INSERT INTO counters (name, slot, n) SELECT 'outbox_' || status, 0, count(*) FROM outbox WHERE status IN ('sent', 'failed') GROUP BY status`, nil},
			{`UPDATE imports SET finished_at = now() WHERE source = $1`, []any{source}},
			{`UPDATE counters SET n = 0 WHERE name = 'member_index_version' AND slot = 0`, nil},
		} {
			if _, err := tx.Exec(im.ctx, q.sql, q.args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = im.s.reindex(im.ctx)
	return err
}

// Counts counts the records of each kind, with the same names as
// storage/bolt's Counts ("events", "dedupe", "members", "outbox", "kv:BUCKET").
func (s *Store) Counts(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	var ev, dd, mem, ob int
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM dedupe),
		(SELECT count(*) FROM members), (SELECT count(*) FROM outbox WHERE status <> 'swept')`).Scan(&ev, &dd, &mem, &ob); err != nil {
		return nil, err
	}
	out["events"], out["dedupe"], out["members"], out["outbox"] = ev, dd, mem, ob
	rows, err := s.pool.Query(ctx, `SELECT bucket, count(*) FROM kv GROUP BY bucket`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var b []byte
		var n int
		if err := rows.Scan(&b, &n); err != nil {
			return nil, err
		}
		out["kv:"+string(b)] = n
	}
	return out, rows.Err()
}
