package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/actionrec"
)

// Update implements bot.Store: fn runs in a SERIALIZABLE transaction and is
// run again (after a short jittered wait) when the transaction loses a race
// to a concurrent one — a serialization failure or deadlock is never
// returned to the caller while attempts remain, so the pipeline never
// counts it as a handler failure. fn must change nothing outside tx.
//
// Progress is guaranteed: every write transaction holds the shared side of
// one advisory lock (taken in the BEGIN round trip), and a transaction that
// lost escalateAfter races in a row takes the exclusive side and runs alone,
// so even a long scan (a campaign tick over all participants) under
// constant concurrent load commits.
func (s *Store) Update(ctx context.Context, fn func(bot.Tx) error) error {
	return s.run(ctx, true, fn)
}

// View implements bot.Store: a read-only snapshot (REPEATABLE READ).
func (s *Store) View(ctx context.Context, fn func(bot.Tx) error) error {
	return s.run(ctx, false, fn)
}

// escalateAfter is how many lost races a write transaction tolerates before it runs alone.
const escalateAfter = 6

// writeLock is the advisory lock key of the write-transaction gate.
const writeLock = 0x77656377 // "wecw"

func (s *Store) run(ctx context.Context, write bool, fn func(bot.Tx) error) error {
	if err := check(ctx); err != nil {
		return err
	}
	var err error
	for attempt := 0; attempt < maxTxAttempts; attempt++ {
		var lost bool
		err, lost = s.try(ctx, write, write && attempt >= escalateAfter, fn)
		if !lost {
			return err
		}
		if err := check(ctx); err != nil {
			return err
		}
		time.Sleep(backoffTx(attempt))
	}
	return fmt.Errorf("transaction kept conflicting with concurrent ones (%d attempts): %w", maxTxAttempts, err)
}

// try runs fn once; lost reports a serialization failure or deadlock
// anywhere in it (even one fn wrapped or swallowed), so the caller re-runs it.
//
// The write gate: an ordinary write transaction takes the shared side of
// an advisory lock in its BEGIN round trip; one that runs alone first waits
// for the exclusive side as a session lock, before BEGIN, so it takes its
// snapshot only once every other writer has finished, and releases it
// with its COMMIT.
func (s *Store) try(ctx context.Context, write, alone bool, fn func(bot.Tx) error) (err error, lost bool) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err, retryable(err)
	}
	begin, unlock := "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", ""
	switch {
	case alone:
		begin = "BEGIN ISOLATION LEVEL SERIALIZABLE"
		unlock = fmt.Sprintf("SELECT pg_advisory_unlock(%d)", writeLock)
	case write:
		begin = fmt.Sprintf("BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT pg_advisory_xact_lock_shared(%d)", writeLock)
	}
	clean := false
	defer func() {
		if !clean {
			// Roll back and release the gate; a connection in doubt is closed,
			// which releases its locks, rather than returned to the pool.
			bg := context.WithoutCancel(ctx)
			_, rerr := conn.Exec(bg, "ROLLBACK")
			if rerr == nil && unlock != "" {
				_, rerr = conn.Exec(bg, unlock)
			}
			if rerr != nil {
				_ = conn.Conn().Close(bg)
			}
		}
		conn.Release()
	}()
	if alone {
		if _, err := conn.Exec(ctx, fmt.Sprintf("SELECT pg_advisory_lock(%d)", writeLock)); err != nil {
			unlock = ""
			return err, retryable(err)
		}
	}
	if _, err := conn.Exec(ctx, begin); err != nil { // no arguments: one simple-protocol round trip
		return err, retryable(err)
	}
	t := &pgTx{ctx: ctx, tx: conn, s: s, write: write}
	if err := fn(t); err != nil {
		return err, t.lost || retryable(err)
	}
	if t.lost {
		return t.lostErr, true
	}
	if conn.Conn().PgConn().TxStatus() == 'E' {
		// A statement failed and fn did not say so: nothing can commit.
		return errors.New("transaction aborted: a statement in it failed"), false
	}
	commit := "COMMIT"
	if t.enqueued {
		commit = "SELECT pg_notify('wecombot_outbox', ''); COMMIT"
	}
	if unlock != "" {
		commit += "; " + unlock
	}
	if _, err := conn.Exec(ctx, commit); err != nil {
		return err, retryable(err)
	}
	clean = true
	return nil, false
}

// querier is what a transaction's statements run on.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// pgTx implements bot.Tx over one pgx transaction.
type pgTx struct {
	ctx      context.Context
	tx       querier
	s        *Store
	write    bool
	enqueued bool
	// indexed caches the index entries of members read or written in this
	// transaction, so PutMember diffs without reading the stored member again.
	indexed map[string]bot.MemberIndex
	lost    bool
	lostErr error
}

// note records a lost race so the transaction is re-run whatever fn does with the error.
func (t *pgTx) note(err error) error {
	if err != nil && retryable(err) && !t.lost {
		t.lost, t.lostErr = true, err
	}
	return err
}

func (t *pgTx) exec(sql string, args ...any) (int64, error) {
	tag, err := t.tx.Exec(t.ctx, sql, args...)
	if t.note(err) != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (t *pgTx) row(sql string, args []any, dest ...any) error {
	return t.note(t.tx.QueryRow(t.ctx, sql, args...).Scan(dest...))
}

func (t *pgTx) readOnly(op string) error {
	if !t.write {
		return fmt.Errorf("%s: read-only transaction", op)
	}
	return nil
}

func (t *pgTx) MarkProcessed(seq uint64, errMsg string) (bool, error) {
	if err := t.readOnly("mark processed"); err != nil {
		return false, err
	}
	var e *string
	if errMsg != "" {
		e = &errMsg
	}
	n, err := t.exec(`UPDATE events SET processed = true, error = $2 WHERE seq = $1 AND NOT processed`, int64(seq), e)
	return n == 1, err
}

func (t *pgTx) Member(id string) (*bot.Member, error) {
	var raw []byte
	err := t.row(`SELECT body FROM members WHERE id = $1`, []any{id}, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, bot.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var m bot.Member
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decode member %s: %w", id, err)
	}
	t.remember(&m)
	return &m, nil
}

func (t *pgTx) PutMember(m *bot.Member) error {
	if m.ExternalUserID == "" {
		return errors.New("put member: empty external_userid")
	}
	if err := t.readOnly("put member"); err != nil {
		return err
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode member %s: %w", m.ExternalUserID, err)
	}
	if err := t.reindexMember(m); err != nil {
		return err
	}
	_, err = t.exec(`INSERT INTO members (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body`, m.ExternalUserID, raw)
	return err
}

// pageSize is how many rows a scan reads per query.
const pageSize = 256

func (t *pgTx) Members(after string, fn func(*bot.Member) bool) error {
	for {
		rows, err := t.tx.Query(t.ctx, `SELECT id, body FROM members WHERE id > $1 ORDER BY id LIMIT $2`, after, pageSize)
		if t.note(err) != nil {
			return err
		}
		var page []bot.Member
		for rows.Next() {
			var id string
			var raw []byte
			if err := rows.Scan(&id, &raw); err != nil {
				rows.Close()
				return err
			}
			var m bot.Member
			if err := json.Unmarshal(raw, &m); err != nil {
				rows.Close()
				return fmt.Errorf("decode member %s: %w", id, err)
			}
			page = append(page, m)
		}
		if err := t.note(rows.Err()); err != nil {
			return err
		}
		for i := range page {
			if !fn(&page[i]) {
				return nil
			}
		}
		if len(page) < pageSize {
			return nil
		}
		after = page[len(page)-1].ExternalUserID
	}
}

func (t *pgTx) MemberCount() (int, error) {
	var n int
	err := t.row(`SELECT count(*) FROM members`, nil, &n)
	return n, err
}

func (t *pgTx) Enqueue(a *bot.Action) (bool, error) {
	if a.Key == "" {
		return false, errors.New("enqueue: action has no key")
	}
	if err := t.readOnly("enqueue"); err != nil {
		return false, err
	}
	e := *a
	e.ID = 0 // the id column is the authority (assigned by the insert)
	if e.CreatedAt.IsZero() {
		e.CreatedAt = t.s.o.Now()
	}
	if e.DueAt.IsZero() {
		e.DueAt = e.CreatedAt
	}
	if e.Status == "" {
		e.Status = bot.ActionPending
	}
	body, err := actionrec.Body(&e)
	if err != nil {
		return false, fmt.Errorf("encode action %s: %w", a.Key, err)
	}
	urgent := !e.NotAfter.IsZero()
	// One round trip: the key's uniqueness decides, the sequence gives the id.
	var id int64
	err = t.row(`INSERT INTO outbox (id, key, status, due_at, urgent, member, body, state) VALUES (nextval('outbox_id'), $1, $2, $3, $4, nullif($5, ''), $6, $7)
		ON CONFLICT (key) DO NOTHING RETURNING id`, []any{[]byte(e.Key), e.Status, e.DueAt, urgent, e.MemberID, body, actionrec.Status(&e, urgent)}, &id)
	if errors.Is(err, pgx.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	e.ID = uint64(id)

	if e.Status != bot.ActionPending {
		if _, err := t.exec(`INSERT INTO counters (name, slot, n) VALUES ($1, $2, 1) ON CONFLICT (name, slot) DO UPDATE SET n = counters.n + 1`,
			"outbox_"+e.Status, id%counterSlots); err != nil {
			return false, err
		}
	}
	*a = e
	t.enqueued = true
	return false, nil
}

func (t *pgTx) SetActionResult(id uint64, r bot.ActionResult) error {
	if err := t.readOnly("set action result"); err != nil {
		return err
	}
	var a bot.Action
	urgent, err := lockStatus(t.ctx, t.tx, id, &a)
	if t.note(err) != nil {
		return err
	}
	was := a.Status
	if !a.ApplyResult(r) {
		return fmt.Errorf("action %d is %s and takes no %q result: %w", id, was, r.Status, bot.ErrConflict)
	}
	if _, err := t.exec(`UPDATE outbox SET status = $2, state = $3 WHERE id = $1`, int64(id), a.Status, actionrec.Status(&a, urgent)); err != nil {
		return err
	}
	if a.Status == was {
		return nil
	}
	if _, err := t.exec(`INSERT INTO counters (name, slot, n) VALUES ($1, $2, -1) ON CONFLICT (name, slot) DO UPDATE SET n = counters.n - 1`,
		"outbox_"+was, int64(id)%counterSlots); err != nil {
		return err
	}
	_, err = t.exec(`INSERT INTO counters (name, slot, n) VALUES ($1, $2, 1) ON CONFLICT (name, slot) DO UPDATE SET n = counters.n + 1`,
		"outbox_"+a.Status, int64(id)%counterSlots)
	return err
}

func (t *pgTx) Get(bucket, key string) ([]byte, error) {
	var v []byte
	err := t.row(`SELECT value FROM kv WHERE bucket = $1 AND key = $2`, []any{[]byte(bucket), []byte(key)}, &v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, bot.ErrNotFound
	}
	if v == nil && err == nil {
		v = []byte{}
	}
	return v, err
}

func (t *pgTx) Put(bucket, key string, value []byte) error {
	if err := t.readOnly("put"); err != nil {
		return err
	}
	if _, ok := bot.LookupBucket(bucket); !ok {
		return fmt.Errorf("put: bucket %q is not in the registry (bot.Buckets in bot/buckets.go): add it there with its key layout", bucket)
	}
	if value == nil {
		value = []byte{}
	}
	_, err := t.exec(`INSERT INTO kv (bucket, key, value) VALUES ($1, $2, $3) ON CONFLICT (bucket, key) DO UPDATE SET value = EXCLUDED.value`,
		[]byte(bucket), []byte(key), value)
	return err
}

func (t *pgTx) Delete(bucket, key string) error {
	if err := t.readOnly("delete"); err != nil {
		return err
	}
	_, err := t.exec(`DELETE FROM kv WHERE bucket = $1 AND key = $2`, []byte(bucket), []byte(key))
	return err
}

// prefixEnd is the smallest key greater than every key with prefix p, or
// nil when there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func (t *pgTx) Scan(bucket, prefix string, fn func(key string, value []byte) bool) error {
	return t.ScanAfter(bucket, prefix, "", fn)
}

func (t *pgTx) ScanAfter(bucket, prefix, after string, fn func(key string, value []byte) bool) error {
	from := []byte(prefix)
	end := prefixEnd(from)
	op := ">="
	if after != "" && after >= prefix {
		from, op = []byte(after), ">"
	}
	for {
		rows, err := t.tx.Query(t.ctx, `SELECT key, value FROM kv WHERE bucket = $1 AND key `+op+` $2 AND ($3::bytea IS NULL OR key < $3) ORDER BY key LIMIT $4`,
			[]byte(bucket), from, end, pageSize)
		if t.note(err) != nil {
			return err
		}
		type kv struct{ k, v []byte }
		var page []kv
		for rows.Next() {
			var r kv
			if err := rows.Scan(&r.k, &r.v); err != nil {
				rows.Close()
				return err
			}
			page = append(page, r)
		}
		if err := t.note(rows.Err()); err != nil {
			return err
		}
		for _, r := range page {
			if r.v == nil {
				r.v = []byte{}
			}
			if !fn(string(r.k), r.v) {
				return nil
			}
		}
		if len(page) < pageSize {
			return nil
		}
		from, op = page[len(page)-1].k, ">"
	}
}
