// Package postgres implements bot.Store on PostgreSQL (github.com/jackc/pgx/v5),
// so several wecombot nodes can share one event log, state and outbox.
//
// What bbolt gave for free is explicit here:
//   - event sequence numbers are assigned under the event_seq counter's row
//     lock by the appending transaction, so they are handed out in commit
//     order and a rolled-back append leaves no gap: a reader paging with
//     "seq > after" never skips an event that commits later;
//   - Update runs SERIALIZABLE and re-runs fn on a serialization failure or
//     deadlock (fn must change nothing outside the transaction), so
//     read-modify-write handlers cannot lose updates and a conflict is never
//     a handler failure;
//   - scans (Members, Scan) read in pages of keyset queries instead of one
//     huge result held open;
//   - keys that are scanned by prefix (kv, dedupe) are bytea, members'
//     ids text COLLATE "C": byte order, as in bbolt.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wecombot/wecombot/bot"
)

// Options tune a Store. Zero values take the defaults noted.
type Options struct {
	// DedupeTTL is how long a dedupe key suppresses a repeat (default 72h).
	DedupeTTL time.Duration
	// Now is the clock for event and action times (default time.Now).
	// Leases use the database's clock, so nodes' clocks need not agree.
	Now func() time.Time
	// MaxConns bounds the connection pool (default 24).
	MaxConns int32
	// NodeID names this node in partition and outbox leases (default host-pid).
	NodeID string
	// LeaseTTL is how long partition leases last without a heartbeat (default 5 s).
	LeaseTTL time.Duration
	// Log, when set, receives errors of background work (the wake-up listener).
	Log func(what string, err error)
	// NoMigrate refuses to open a database whose schema is not current
	// instead of migrating it (`wecombot migrate` does it explicitly).
	NoMigrate bool
}

// Store is the PostgreSQL implementation of bot.Store.
type Store struct {
	pool *pgxpool.Pool
	o    Options
	app  chan *appendReq
	stop chan struct{}
	done chan struct{}
}

var _ bot.Store = (*Store)(nil)

// Open connects to url (postgres://…), migrates the schema (unless
// NoMigrate) and returns the store.
func Open(ctx context.Context, url string, o Options) (*Store, error) {
	if o.DedupeTTL <= 0 {
		o.DedupeTTL = 72 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NodeID == "" {
		o.NodeID = defaultNodeID()
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 24
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %v", redactErr(err))
	}
	cfg.MaxConns = o.MaxConns
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "wecombot"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL %s: %w", cfg.ConnConfig.Host, err)
	}
	if o.NoMigrate {
		var v int
		if err := pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil || v != SchemaVersion {
			pool.Close()
			return nil, fmt.Errorf("database schema is version %d, this wecombot needs %d: run `wecombot migrate`", v, SchemaVersion)
		}
	} else if _, _, err := Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{pool: pool, o: o, app: make(chan *appendReq, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	if _, err := s.reindex(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	go s.appender()
	return s, nil
}

// Pool is the connection pool (for admin commands and tests).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close stops the appender and closes the pool.
func (s *Store) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
		<-s.done
	}
	s.pool.Close()
	return nil
}

// redactErr drops a URL (and its password) from a parse error.
func redactErr(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return "cannot parse the connection string (check its syntax; the value is not shown since it may hold a password)"
	}
	return err.Error()
}

// retryable reports a serialization failure or deadlock: the transaction
// lost a race and is safe to run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// maxTxAttempts bounds the re-runs of a transaction that keeps losing races.
const maxTxAttempts = 50

// backoffTx is a short jittered wait before re-running a lost transaction.
func backoffTx(attempt int) time.Duration {
	ceil := time.Millisecond << min(attempt, 7)
	return ceil/2 + rand.N(ceil/2+1)
}

func check(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	return ctx.Err()
}

// ---- event log ----

type appendReq struct {
	ev   *bot.Event
	dup  bool
	seq  uint64
	err  error
	done chan struct{}
}

// Partitions is how many partitions members are spread over (the unit of
// event-processing ownership between nodes).
const Partitions = 64

// Partition is the partition an event belongs to: its member's (or group's).
func Partition(ev *bot.Event) int {
	key := ev.ShardKey()
	if key == "" {
		return int(ev.Seq % Partitions)
	}
	return int(bot.ShardHash(key) % Partitions)
}

// AppendEvent implements bot.EventLog. Concurrent appends on a node share
// one transaction (group commit); across nodes they serialise on the
// sequence row, which is what keeps sequence numbers in commit order.
func (s *Store) AppendEvent(ctx context.Context, ev *bot.Event) (bool, error) {
	if err := check(ctx); err != nil {
		return false, err
	}
	if err := bot.CheckEvent(ev); err != nil {
		return false, fmt.Errorf("append event: %w", err)
	}
	now := s.o.Now()
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = now
	}
	// A retry (on any node) is answered by a read, without a write.
	if ev.DedupeKey != "" {
		var at time.Time
		err := s.pool.QueryRow(ctx, `SELECT at FROM dedupe WHERE key = $1`, []byte(ev.DedupeKey)).Scan(&at)
		if err == nil && now.Sub(at) < s.o.DedupeTTL {
			return true, nil
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return false, fmt.Errorf("append event: %w", err)
		}
	}
	r := &appendReq{ev: ev, done: make(chan struct{})}
	select {
	case s.app <- r:
	case <-s.stop:
		return false, errors.New("append event: store closed")
	case <-ctx.Done():
		return false, ctx.Err()
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	if r.err != nil {
		return false, fmt.Errorf("append event: %w", r.err)
	}
	if !r.dup {
		ev.Seq = r.seq
	}
	return r.dup, nil
}

// appender commits queued appends in batches: whatever queued while the
// last batch committed goes in the next.
func (s *Store) appender() {
	defer close(s.done)
	for {
		var first *appendReq
		select {
		case first = <-s.app:
		case <-s.stop:
			return
		}
		batch := []*appendReq{first}
	fill:
		for len(batch) < 256 {
			select {
			case r := <-s.app:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commitAppends(batch)
		for _, r := range batch {
			close(r.done)
		}
	}
}

func (s *Store) commitAppends(batch []*appendReq) {
	// Lock dedupe keys in one order so batches on two nodes cannot deadlock.
	sort.SliceStable(batch, func(i, j int) bool { return batch[i].ev.DedupeKey < batch[j].ev.DedupeKey })
	now := s.o.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	for attempt := 0; attempt < maxTxAttempts; attempt++ {
		err = s.tryAppends(ctx, batch, now)
		if !retryable(err) {
			break
		}
		time.Sleep(backoffTx(attempt))
	}
	if err != nil {
		for _, r := range batch {
			if r.err == nil {
				r.err = err
			}
		}
	}
}

func (s *Store) tryAppends(ctx context.Context, batch []*appendReq, now time.Time) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	expired := now.Add(-s.o.DedupeTTL)
	var fresh []*appendReq
	for _, r := range batch {
		r.dup, r.seq = false, 0
		if r.ev.DedupeKey == "" {
			fresh = append(fresh, r)
			continue
		}
		// The dedupe key is claimed in the same transaction as the insert:
		// a racing first delivery on another node waits here and then sees it.
		tag, err := tx.Exec(ctx, `INSERT INTO dedupe (key, at) VALUES ($1, $2)
			ON CONFLICT (key) DO UPDATE SET at = EXCLUDED.at WHERE dedupe.at <= $3`,
			[]byte(r.ev.DedupeKey), now, expired)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			r.dup = true
			continue
		}
		fresh = append(fresh, r)
	}
	if len(fresh) == 0 {
		return tx.Commit(ctx)
	}
	var last int64
	if err := tx.QueryRow(ctx, `UPDATE counters SET n = n + $1 WHERE name = 'event_seq' AND slot = 0 RETURNING n`, len(fresh)).Scan(&last); err != nil {
		return fmt.Errorf("next sequence: %w", err)
	}
	b := &pgx.Batch{}
	seq := uint64(last) - uint64(len(fresh))
	for _, r := range fresh {
		seq++
		e := *r.ev
		e.Seq = seq
		raw, err := json.Marshal(&e)
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		r.seq = seq
		b.Queue(`INSERT INTO events (seq, part, received_at, body) VALUES ($1, $2, $3, $4)`, int64(seq), Partition(&e), e.ReceivedAt, raw)
		if members := e.Members(); len(members) > 0 {
			b.Queue(`INSERT INTO member_events (member, seq) SELECT unnest($1::text[]), $2`, members, int64(seq))
		}
	}
	b.Queue(`SELECT pg_notify('wecombot_events', '')`)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func scanEvents(rows pgx.Rows) ([]bot.Event, error) {
	defer rows.Close()
	var out []bot.Event
	for rows.Next() {
		var seq int64
		var raw []byte
		if err := rows.Scan(&seq, &raw); err != nil {
			return nil, err
		}
		var ev bot.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("decode event %d: %w", seq, err)
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

// PendingEvents implements bot.EventLog.
func (s *Store) PendingEvents(ctx context.Context, after uint64, limit int) ([]bot.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, body FROM events WHERE NOT processed AND seq > $1 ORDER BY seq LIMIT $2`, int64(after), limit)
	if err != nil {
		return nil, err
	}
	return scanEvents(rows)
}

// Events implements bot.EventLog.
func (s *Store) Events(ctx context.Context, after uint64, limit int) ([]bot.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`, int64(after), limit)
	if err != nil {
		return nil, err
	}
	return scanEvents(rows)
}

// EventStats implements bot.EventLog.
func (s *Store) EventStats(ctx context.Context) (bot.EventStats, error) {
	var st bot.EventStats
	var last int64
	var oldest *time.Time
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT n FROM counters WHERE name = 'event_seq' AND slot = 0),
		(SELECT count(*) FROM events WHERE NOT processed),
		(SELECT count(*) FROM events WHERE error IS NOT NULL),
		(SELECT received_at FROM events WHERE NOT processed ORDER BY seq LIMIT 1)`).Scan(&last, &st.Pending, &st.Failed, &oldest)
	if err != nil {
		return st, err
	}
	st.LastSeq = uint64(last)
	if oldest != nil {
		st.OldestPending = *oldest
	}
	return st, nil
}

// PruneDedupe implements bot.EventLog.
func (s *Store) PruneDedupe(ctx context.Context, cutoff time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM dedupe WHERE at < $1`, cutoff)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
