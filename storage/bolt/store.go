// Package bolt implements bot.Store on an embedded bbolt file: the event log
// with durable dedupe, members, the outbox and a small key-value space, each
// in its own buckets, with counters kept in the same transactions as the
// records they count.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/wecombot/wecombot/bot"
)

// Options tune a Store. Zero values take the defaults noted.
type Options struct {
	// DedupeTTL is how long a dedupe key suppresses a repeat (default 72h).
	DedupeTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OpenTimeout bounds the wait for the file lock (default 1 s): a second
	// process on the same file fails fast instead of hanging.
	OpenTimeout time.Duration
	// NoSync skips fsync: only for simulations and benchmarks, never production.
	NoSync bool
	// ReadOnly opens an existing file without writing to it (backup,
	// restore checks); it fails while a server holds the file.
	ReadOnly bool
	// TrimEvery is how often the process's file-backed resident memory is
	// checked against MapBudget (default 50 ms; negative: never, and the
	// file's pages stay mapped until the kernel reclaims them).
	TrimEvery time.Duration
	// MapBudget bounds the file's pages mapped into the process: when the
	// process's file-backed resident memory (/proc/self/statm's shared
	// pages) has grown by more than this since the last trim, the file's
	// pages are dropped from the memory map (trimMapping; the page cache
	// keeps them). Default DefaultMapBudget; negative trims at every check.
	MapBudget int64
}

// DefaultMapBudget is Options.MapBudget's default.
const DefaultMapBudget = 32 << 20

// Store is the bbolt implementation of bot.Store.
type Store struct {
	db   *bbolt.DB
	gc   *groupCommit // concurrent writers share a transaction and an fsync
	in   *ingestLog   // the event log's way in (nil read-only)
	path string
	o    Options
	// migrated lists the migrations Open ran ("2: typed action purpose…").
	migrated []string
	// stopTrim ends the trimming loop; trimDone is closed when it has.
	stopTrim chan struct{}
	trimDone chan struct{}
	trims    atomic.Int64
}

var _ bot.Store = (*Store)(nil)

// Open opens (creating if needed) the bbolt file at path.
func Open(path string, o Options) (*Store, error) {
	if o.DedupeTTL <= 0 {
		o.DedupeTTL = 72 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = time.Second
	}
	if o.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	} else if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data directory for %s: %w", path, err)
	}
	db, err := openDB(path, o)
	if err != nil {
		return nil, err
	}
	db.NoSync = o.NoSync
	s := &Store{db: db, path: path, o: o, gc: &groupCommit{db: db}}
	if o.ReadOnly {
		if v := s.SchemaVersion(); v > SchemaVersion {
			db.Close()
			return nil, errNewerSchema(path, v)
		}
		if err := s.checkIngestMoved(); err != nil {
			db.Close()
			return nil, err
		}
		return s, nil
	}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, fmt.Errorf("prepare %s: %w", path, err)
	}
	if n, err := s.reindex(); err != nil {
		db.Close()
		return nil, fmt.Errorf("prepare %s: %w", path, err)
	} else if n > 0 {
		s.migrated = append(s.migrated, fmt.Sprintf("member index version %d built from %d members", bot.MemberIndexVersion, n))
	}
	if s.in, err = openIngest(s); err != nil {
		db.Close()
		return nil, fmt.Errorf("prepare %s: %w", path, err)
	}
	s.startTrim()
	return s, nil
}

// startTrim keeps the file's pages mapped into the process within
// MapBudget until Close: every TrimEvery it reads the process's
// file-backed resident memory (cheap: one read of /proc/self/statm) and
// drops the file's pages from the memory map (trimMapping) once it has
// grown by more than the budget since the last trim. A fixed interval
// could not bound it: bbolt's random reads map ~16 cached neighbours per
// page fault, ~50 MB/s at 1,000 callbacks/s on 1M members.
func (s *Store) startTrim() {
	every, budget := s.o.TrimEvery, s.o.MapBudget
	if every == 0 {
		every = 50 * time.Millisecond
	}
	if budget == 0 {
		budget = DefaultMapBudget
	}
	if every < 0 {
		return
	}
	s.stopTrim, s.trimDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.trimDone)
		res := openFileResident()
		defer res.close()
		floor := res.read()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stopTrim:
				return
			case <-t.C:
				// Growth is counted from the lowest size seen since the
				// last trim: other mappings going away (or the kernel
				// reclaiming) must not hide this file's growth.
				now := res.read()
				floor = min(floor, now)
				if now-floor <= budget && budget > 0 {
					continue
				}
				if err := s.trimMapping(); err == nil { // best effort: the next tick tries again
					s.trims.Add(1)
				}
				floor = res.read()
			}
		}
	}()
}

// Trims is how many times the file's pages were dropped from the
// process's memory map since Open.
func (s *Store) Trims() int64 { return s.trims.Load() }

// SchemaVersion is the file's schema version (0: written before versions).
func (s *Store) SchemaVersion() int {
	v := 0
	_ = s.db.View(func(tx *bbolt.Tx) error { v = schemaVersion(tx); return nil })
	return v
}

// Migrated lists the schema migrations Open ran on the file, oldest first.
func (s *Store) Migrated() []string { return s.migrated }

// openDB opens the file, turning bbolt's failures into errors an operator can act on.
func openDB(path string, o Options) (db *bbolt.DB, err error) {
	// bbolt may panic on some corrupt files; never let that take the process down.
	defer func() {
		if v := recover(); v != nil {
			db, err = nil, fmt.Errorf("%s is not a usable wecombot database (corrupt?): %v — restore it from a backup (docs/deploy.md)", path, v)
		}
	}()
	// The freelist is synced (bbolt's default): without it every open walks
	// the whole file to rebuild it, which with 1,000,000 members took 0.5–0.7 s
	// and left ~1 GB of the file resident; synced, start-up is ~0.1 s and
	// RSS ~20 MB (docs/performance.md). A file written unsynced is walked once.
	// The map starts at 1 GiB of address space (touched pages only count
	// as memory): a write that outgrows the map remaps the file, waiting
	// for every read transaction to end while new reads wait for it — the
	// callbacks' dedupe reads and the console's long reads among them.
	mmap := 0
	if bits.UintSize == 64 && runtime.GOOS != "windows" { // Windows grows the file to the map
		mmap = 1 << 30
	}
	db, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: o.OpenTimeout, FreelistType: bbolt.FreelistMapType, ReadOnly: o.ReadOnly, InitialMmapSize: mmap})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bberrors.ErrTimeout):
		return nil, fmt.Errorf("another wecombot is using %s; stop it or set WECOMBOT_DATA_DIR to another directory: %w", path, bot.ErrStoreLocked)
	case errors.Is(err, bberrors.ErrInvalid), errors.Is(err, bberrors.ErrVersionMismatch), errors.Is(err, bberrors.ErrChecksum):
		return nil, fmt.Errorf("%s is not a usable wecombot database (%v) — restore it from a backup (docs/deploy.md)", path, err)
	}
	return nil, fmt.Errorf("open %s: %w", path, err)
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close moves the events acknowledged but not yet in the database into it
// (what cannot be moved stays in the ingest log for the next Open) and
// closes the files.
func (s *Store) Close() error {
	if s.stopTrim != nil {
		close(s.stopTrim)
		<-s.trimDone
		s.stopTrim = nil
	}
	var err error
	if s.in != nil {
		err = s.in.close()
	}
	return errors.Join(err, s.db.Close())
}

// OnEventsAppended sets f to be called whenever events reach the event
// log's readers (IngestEvent's a moment after their acknowledgement): the
// pipeline's wake-up.
func (s *Store) OnEventsAppended(f func()) {
	if s.in == nil {
		return
	}
	s.in.mu.Lock()
	s.in.onMoved = f
	s.in.mu.Unlock()
}

// OnMoveOutcome sets f to hear how the moves of acknowledged events from
// the ingest log into the database go: f gets the error of every move
// that fails and leaves them waiting (the mover retries, backing off to
// once a second) and nil at the first move that succeeds after failures.
// Nothing else shows a database that refuses these moves — the
// callbacks' appends to the ingest log go on succeeding — while
// acknowledged events pile up where the event log's readers cannot see
// them. f runs on the mover, which waits for it: it must not append
// events (an AppendEvent waits for this very mover).
func (s *Store) OnMoveOutcome(f func(err error)) {
	if s.in == nil {
		return
	}
	s.in.mu.Lock()
	s.in.onOutcome = f
	s.in.mu.Unlock()
}

// UnmovedEvents counts the events acknowledged into the ingest log and
// not yet moved into the database (and the few being synced or appended
// right now): it grows while the database refuses the moves.
func (s *Store) UnmovedEvents() int {
	if s.in == nil {
		return 0
	}
	n, _ := s.in.stats()
	return n
}

// Backup writes a consistent copy of the database to w from a read
// transaction: safe while serving.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func i64(v int64) []byte { return u64(uint64(v)) }

func dueKey(due time.Time, id uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(max(due.UnixNano(), 0)))
	binary.BigEndian.PutUint64(k[8:], id)
	return k
}

func counter(tx *bbolt.Tx, name []byte) int64 {
	v := tx.Bucket(bucketMeta).Get(name)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func addCounter(tx *bbolt.Tx, name []byte, delta int64) error {
	return tx.Bucket(bucketMeta).Put(name, i64(counter(tx, name)+delta))
}

func check(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	return ctx.Err()
}

// ---- event log ----

// AppendEvent implements bot.EventLog: it returns once the event is in
// the log (its readers see it), deduplicated by its key. Concurrent
// appends share one transaction and fsync with the other writers
// (groupCommit), after the events acknowledged before them (ingestLog).
func (s *Store) AppendEvent(ctx context.Context, ev *bot.Event) (bool, error) {
	return s.appendEvent(ctx, ev, false)
}

// HoldMoves keeps IngestEvent's events in the ingest log, acknowledged
// and durable, until release is closed, and then moves them into bbolt —
// bench's ack-path phase, which measures the acknowledgement alone, the
// move with the drain that follows, as PostgreSQL's peer writes its
// table pages at a checkpoint. AppendEvent still returns once its event
// (and everything before it) is in bbolt.
func (s *Store) HoldMoves(release <-chan struct{}) {
	if s.in != nil {
		s.in.holdMoves(release)
	}
}

// IngestEvent is AppendEvent for an event that must be durable before it
// is acknowledged but need not be read back at once (a callback): it
// returns once the event is synced to the ingest log, and the log's
// readers see it a moment later, when OnEventsAppended's function is
// called. A crash in between loses nothing: Open moves it.
func (s *Store) IngestEvent(ctx context.Context, ev *bot.Event) (bool, error) {
	return s.appendEvent(ctx, ev, true)
}

func (s *Store) appendEvent(ctx context.Context, ev *bot.Event, ingest bool) (bool, error) {
	if err := check(ctx); err != nil {
		return false, err
	}
	if err := bot.CheckEvent(ev); err != nil {
		return false, fmt.Errorf("append event: %w", err)
	}
	if s.in == nil {
		return false, fmt.Errorf("append event: %s is open read-only", s.path)
	}
	now := s.o.Now()
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = now
	}
	var dup bool
	var err error
	if ingest {
		dup, err = s.in.ingest(ev, now)
	} else {
		dup, err = s.in.appendDirect(ev, now)
	}
	return dup, err
}

// seen reports whether key was appended within the dedupe TTL.
func (s *Store) seen(key string, now time.Time) bool {
	found := false
	_ = s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketDedupe).Get([]byte(key))
		found = len(v) >= 8 && now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(v)))) < s.o.DedupeTTL
		return nil
	})
	return found
}

// PendingEvents implements bot.EventLog.
func (s *Store) PendingEvents(ctx context.Context, after uint64, limit int) ([]bot.Event, error) {
	if err := check(ctx); err != nil {
		return nil, err
	}
	var out []bot.Event
	err := s.db.View(func(tx *bbolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		c := tx.Bucket(bucketPending).Cursor()
		for k, _ := c.Seek(u64(after + 1)); k != nil && len(out) < limit; k, _ = c.Next() {
			var ev bot.Event
			if err := json.Unmarshal(events.Get(k), &ev); err != nil {
				return fmt.Errorf("decode event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// Events implements bot.EventLog.
func (s *Store) Events(ctx context.Context, after uint64, limit int) ([]bot.Event, error) {
	if err := check(ctx); err != nil {
		return nil, err
	}
	var out []bot.Event
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			var ev bot.Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("decode event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// EventStats implements bot.EventLog.
func (s *Store) EventStats(ctx context.Context) (bot.EventStats, error) {
	var st bot.EventStats
	if err := check(ctx); err != nil {
		return st, err
	}
	unmoved, last := 0, uint64(0)
	if s.in != nil {
		unmoved, last = s.in.stats()
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		st.LastSeq = max(tx.Bucket(bucketEvents).Sequence(), last)
		st.Pending = int(counter(tx, ctrPending)) + unmoved
		st.Failed = int(counter(tx, ctrFailed))
		if _, v := tx.Bucket(bucketPending).Cursor().First(); len(v) == 8 {
			st.OldestPending = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
		}
		return nil
	})
	return st, err
}

// PruneDedupe implements bot.EventLog.
func (s *Store) PruneDedupe(ctx context.Context, cutoff time.Time) (int, error) {
	if err := check(ctx); err != nil {
		return 0, err
	}
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketDedupe).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(v) >= 8 && time.Unix(0, int64(binary.BigEndian.Uint64(v))).Before(cutoff) {
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

// ---- transactions ----

// Update implements bot.Store.
func (s *Store) Update(ctx context.Context, fn func(bot.Tx) error) error {
	if err := check(ctx); err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		denseAppends(tx)
		return s.write(tx, fn)
	})
}

// write runs fn on tx and then stores the member bitmap chunks and the
// counter changes it made.
func (s *Store) write(tx *bbolt.Tx, fn func(bot.Tx) error) error {
	t := &boltTx{tx: tx, s: s, bits: bitChunks{}}
	if err := fn(t); err != nil {
		return err
	}
	for _, f := range t.beforeCommit {
		if err := f(); err != nil {
			return err
		}
	}
	if err := t.bits.flush(tx); err != nil {
		return err
	}
	if err := t.tallies.flush(tx); err != nil {
		return err
	}
	return t.flushCounters()
}

// appendFill is how full the pages of the append-only tables are written.
// bbolt splits a page at half its size by default, which suits keys
// inserted anywhere; records appended in key order (event seqs, action
// ids) and never rewritten would then leave every page half empty — the
// event log and the outbox bodies took twice their size on disk.
const appendFill = 0.95

// denseAppends sets the fill of the append-only tables for write tx: the
// event log and the outbox bodies (immutable since their status lives in
// outbox_status).
func denseAppends(tx *bbolt.Tx) {
	for _, name := range [][]byte{bucketEvents, bucketOutbox} {
		if b := tx.Bucket(name); b != nil {
			b.FillPercent = appendFill
		}
	}
}

// Batch is Update with group commit: concurrent callers share one write
// transaction and one fsync (groupCommit, with appends and outbox records),
// which is what lets the event workers and the outbox keep up with callback
// ingest. fn may run more than once (when a batch-mate fails, the group
// rolls back and runs again without it), so fn must change nothing outside
// tx — as for Update retried by the pipeline. A failing fn is not run
// again: its error is returned as is.
func (s *Store) Batch(ctx context.Context, fn func(bot.Tx) error) error {
	if err := check(ctx); err != nil {
		return err
	}
	return s.gc.run(func(tx *bbolt.Tx) error { return s.write(tx, fn) })
}

// View implements bot.Store.
func (s *Store) View(ctx context.Context, fn func(bot.Tx) error) error {
	if err := check(ctx); err != nil {
		return err
	}
	return s.db.View(func(tx *bbolt.Tx) error { return fn(&boltTx{tx: tx, s: s}) })
}

// boltTx implements bot.Tx over one bbolt transaction.
type boltTx struct {
	tx *bbolt.Tx
	s  *Store
	// indexed caches the index entries of members read or written in this
	// transaction, so PutMember diffs without decoding the stored member again.
	indexed map[string]bot.MemberIndex
	// The changes to the hot counters (events pending, outbox pending,
	// members) made through this Tx, stored once when its function
	// returns (Store.write) instead of a read and a write of the counter
	// per event, action and member.
	pending, obPending, members int64
	// bits are the member bitmap chunks changed by this (writable)
	// transaction, tallies its tally changes (both stored by Store.write).
	bits    bitChunks
	tallies tallyDeltas
	// local and beforeCommit are bot.TxLocal's (writable transactions).
	local        map[string]any
	beforeCommit []func() error
}

var _ bot.TxLocal = (*boltTx)(nil)

// Local implements bot.TxLocal.
func (t *boltTx) Local() map[string]any {
	if t.local == nil {
		t.local = map[string]any{}
	}
	return t.local
}

// BeforeCommit implements bot.TxLocal: Store.write runs fn after the
// transaction's function returns.
func (t *boltTx) BeforeCommit(fn func() error) { t.beforeCommit = append(t.beforeCommit, fn) }

// flushCounters stores the counter changes made through t.
func (t *boltTx) flushCounters() error {
	for _, c := range []struct {
		name  []byte
		delta int64
	}{{ctrPending, t.pending}, {ctrObPending, t.obPending}, {ctrMembers, t.members}} {
		if c.delta == 0 {
			continue
		}
		if err := addCounter(t.tx, c.name, c.delta); err != nil {
			return err
		}
	}
	t.pending, t.obPending, t.members = 0, 0, 0
	return nil
}

func (t *boltTx) MarkProcessed(seq uint64, errMsg string) (bool, error) {
	pending := t.tx.Bucket(bucketPending)
	k := u64(seq)
	if pending.Get(k) == nil {
		return false, nil
	}
	if err := pending.Delete(k); err != nil {
		return false, err
	}
	t.pending--
	if errMsg != "" {
		if err := t.tx.Bucket(bucketFailed).Put(k, []byte(errMsg)); err != nil {
			return false, err
		}
		if err := addCounter(t.tx, ctrFailed, 1); err != nil {
			return false, err
		}
	}
	return true, nil
}

func (t *boltTx) Member(id string) (*bot.Member, error) {
	v := t.tx.Bucket(bucketMembers).Get([]byte(id))
	if v == nil {
		return nil, bot.ErrNotFound
	}
	var m bot.Member
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, fmt.Errorf("decode member %s: %w", id, err)
	}
	t.remember(&m)
	return &m, nil
}

func (t *boltTx) PutMember(m *bot.Member) error {
	if m.ExternalUserID == "" {
		return errors.New("put member: empty external_userid")
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode member %s: %w", m.ExternalUserID, err)
	}
	b := t.tx.Bucket(bucketMembers)
	key := []byte(m.ExternalUserID)
	old := b.Get(key)
	if old == nil {
		t.members++
	}
	if err := t.reindexMember(m, old); err != nil {
		return err
	}
	return b.Put(key, raw)
}

func (t *boltTx) Members(after string, fn func(*bot.Member) bool) error {
	c := t.tx.Bucket(bucketMembers).Cursor()
	var k, v []byte
	if after == "" {
		k, v = c.First()
	} else {
		k, v = c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, v = c.Next()
		}
	}
	for ; k != nil; k, v = c.Next() {
		var m bot.Member
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("decode member %s: %w", k, err)
		}
		if !fn(&m) {
			return nil
		}
	}
	return nil
}

func (t *boltTx) MemberCount() (int, error) {
	return int(counter(t.tx, ctrMembers) + t.members), nil
}

func (t *boltTx) Enqueue(a *bot.Action) (bool, error) {
	if a.Key == "" {
		return false, errors.New("enqueue: action has no key")
	}
	keys, key := t.tx.Bucket(bucketOutboxKeys), []byte(a.Key)
	if keys.Get(key) != nil {
		return true, nil
	}
	ob := t.tx.Bucket(bucketOutbox)
	id, err := ob.NextSequence()
	if err != nil {
		return false, err
	}
	a.ID = id
	if a.CreatedAt.IsZero() {
		a.CreatedAt = t.s.o.Now()
	}
	if a.DueAt.IsZero() {
		a.DueAt = a.CreatedAt
	}
	if a.Status == "" {
		a.Status = bot.ActionPending
	}
	if err := putAction(t.tx, id, a); err != nil {
		return false, fmt.Errorf("store action %s: %w", a.Key, err)
	}
	if err := keys.Put(key, u64(id)); err != nil {
		return false, err
	}
	if err := indexAction(t.tx, a.MemberID, id); err != nil {
		return false, err
	}
	if a.Status != bot.ActionPending {
		return false, nil
	}
	if err := putDue(t.tx, a.DueAt, !a.NotAfter.IsZero(), id); err != nil {
		return false, err
	}
	t.obPending++
	return false, nil
}

func (t *boltTx) SetActionResult(id uint64, r bot.ActionResult) error {
	var a bot.Action
	urgent, err := loadStatus(t.tx, id, &a)
	if err != nil {
		return err
	}
	was := a.Status
	if !a.ApplyResult(r) {
		return fmt.Errorf("action %d is %s and takes no %q result: %w", id, was, r.Status, bot.ErrConflict)
	}
	if a.Status != was {
		// Batched actions are counted nowhere (like skipped ones); they join
		// the final counters when their result arrives.
		if was == bot.ActionSent || was == bot.ActionFailed {
			if err := addCounter(t.tx, statusCounter(was), -1); err != nil {
				return err
			}
		}
		if err := addCounter(t.tx, statusCounter(a.Status), 1); err != nil {
			return err
		}
	}
	return putStatus(t.tx, id, &a, urgent)
}

func (t *boltTx) kv(bucket string, create bool) (*bbolt.Bucket, error) {
	name := []byte(kvPrefix + bucket)
	if b := t.tx.Bucket(name); b != nil || !create {
		return b, nil
	}
	return t.tx.CreateBucket(name)
}

func (t *boltTx) Get(bucket, key string) ([]byte, error) {
	b, _ := t.kv(bucket, false)
	if b == nil {
		return nil, bot.ErrNotFound
	}
	v := b.Get([]byte(key))
	if v == nil {
		return nil, bot.ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (t *boltTx) Put(bucket, key string, value []byte) error {
	if !t.tx.Writable() {
		return errors.New("put: read-only transaction")
	}
	if _, ok := bot.LookupBucket(bucket); !ok {
		return fmt.Errorf("put: bucket %q is not in the registry (bot.Buckets in bot/buckets.go): add it there with its key layout", bucket)
	}
	b, err := t.kv(bucket, true)
	if err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	return b.Put([]byte(key), value)
}

func (t *boltTx) Delete(bucket, key string) error {
	b, _ := t.kv(bucket, false)
	if b == nil {
		return nil
	}
	return b.Delete([]byte(key))
}

func (t *boltTx) Scan(bucket, prefix string, fn func(key string, value []byte) bool) error {
	return t.ScanAfter(bucket, prefix, "", fn)
}

func (t *boltTx) ScanAfter(bucket, prefix, after string, fn func(key string, value []byte) bool) error {
	b, _ := t.kv(bucket, false)
	if b == nil {
		return nil
	}
	c := b.Cursor()
	p := []byte(prefix)
	k, v := c.Seek(p)
	if after != "" && after >= prefix {
		if k, v = c.Seek([]byte(after)); k != nil && string(k) == after {
			k, v = c.Next()
		}
	}
	for ; k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if !fn(string(k), bytes.Clone(v)) {
			return nil
		}
	}
	return nil
}

// ---- outbox ----

// putDue indexes a pending action by due time (and as urgent when it has a deadline).
func putDue(tx *bbolt.Tx, due time.Time, urgent bool, id uint64) error {
	if err := tx.Bucket(bucketOutboxDue).Put(dueKey(due, id), nil); err != nil {
		return err
	}
	if !urgent {
		return nil
	}
	return tx.Bucket(bucketOutboxUrgent).Put(dueKey(due, id), nil)
}

// deleteDue removes a pending action from the due indexes.
func deleteDue(tx *bbolt.Tx, due time.Time, urgent bool, id uint64) error {
	if err := tx.Bucket(bucketOutboxDue).Delete(dueKey(due, id)); err != nil {
		return err
	}
	if !urgent {
		return nil
	}
	return tx.Bucket(bucketOutboxUrgent).Delete(dueKey(due, id))
}

// DueActions implements bot.Outbox: range scans of the urgent index (actions
// with a deadline), then of the due index.
func (s *Store) DueActions(ctx context.Context, now time.Time, limit int) ([]bot.Action, error) {
	return s.DueActionsExcept(ctx, now, limit, false, nil)
}

// DueActionsExcept is DueActions without the actions skip names: they are
// neither decoded nor counted against limit. The relay reads the outbox
// this way, skipping the actions it is already sending or has queued, so
// a backlog is not decoded again on every read (pipeline.SkippingOutbox);
// urgentOnly reads only actions with a deadline (welcome codes).
func (s *Store) DueActionsExcept(ctx context.Context, now time.Time, limit int, urgentOnly bool, skip func(id uint64) bool) ([]bot.Action, error) {
	if err := check(ctx); err != nil {
		return nil, err
	}
	var out []bot.Action
	limitKey := dueKey(now, ^uint64(0))
	err := s.db.View(func(tx *bbolt.Tx) error {
		ob := tx.Bucket(bucketOutbox)
		taken := map[uint64]bool{}
		// Actions with a deadline first, then everything by due time.
		indexes := [][]byte{bucketOutboxUrgent, bucketOutboxDue}
		if urgentOnly {
			indexes = indexes[:1]
		}
		for _, idx := range indexes {
			c := tx.Bucket(idx).Cursor()
			for k, _ := c.First(); k != nil && bytes.Compare(k, limitKey) <= 0 && len(out) < limit; k, _ = c.Next() {
				id := binary.BigEndian.Uint64(k[8:])
				if taken[id] || (skip != nil && skip(id)) {
					continue
				}
				taken[id] = true
				a, err := decodeAction(tx, id, ob.Get(k[8:]))
				if err != nil {
					return err
				}
				out = append(out, a)
			}
		}
		return nil
	})
	return out, err
}

// NextDueAfter is the earliest DueAt after t among pending actions (the
// relay's timer: the ones due by t it is sending or has queued).
func (s *Store) NextDueAfter(ctx context.Context, t time.Time) (time.Time, bool, error) {
	if err := check(ctx); err != nil {
		return time.Time{}, false, err
	}
	var at time.Time
	found := false
	err := s.db.View(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket(bucketOutboxDue).Cursor().Seek(dueKey(t.Add(time.Nanosecond), 0)); k != nil {
			at, found = time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))), true
		}
		return nil
	})
	return at, found, err
}

// NextDue implements bot.Outbox.
func (s *Store) NextDue(ctx context.Context) (time.Time, bool, error) {
	if err := check(ctx); err != nil {
		return time.Time{}, false, err
	}
	var at time.Time
	found := false
	err := s.db.View(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket(bucketOutboxDue).Cursor().First(); k != nil {
			at, found = time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))), true
		}
		return nil
	})
	return at, found, err
}

// updateAction loads a pending action's status, lets fn change it, and
// keeps the due index and counters in step, in one transaction shared with
// concurrent callers (group commit: fn works on a fresh copy, so a re-run
// is harmless). fn sees and changes only the status fields (bot.Action's
// Record* methods): the action's body is neither read nor rewritten.
func (s *Store) updateAction(ctx context.Context, id uint64, fn func(a *bot.Action)) error {
	if err := check(ctx); err != nil {
		return err
	}
	return s.gc.run(func(tx *bbolt.Tx) error {
		var a bot.Action
		urgent, err := loadStatus(tx, id, &a)
		if err != nil {
			return err
		}
		if a.Status != bot.ActionPending {
			return fmt.Errorf("action %d is already %s: %w", id, a.Status, bot.ErrConflict)
		}
		due := a.DueAt
		fn(&a)
		// The due indexes change only when the action leaves pending or is
		// due at another time (not when an attempt starts).
		if a.Status != bot.ActionPending || !a.DueAt.Equal(due) {
			if err := deleteDue(tx, due, urgent, id); err != nil {
				return err
			}
		}
		switch a.Status {
		case bot.ActionPending:
			if a.DueAt.Equal(due) {
				break
			}
			if err := putDue(tx, a.DueAt, urgent, id); err != nil {
				return err
			}
		case bot.ActionSent:
			if err := addCounter(tx, ctrObPending, -1); err != nil {
				return err
			}
			if err := addCounter(tx, ctrObSent, 1); err != nil {
				return err
			}
		case bot.ActionFailed, bot.ActionUnknown:
			if err := addCounter(tx, ctrObPending, -1); err != nil {
				return err
			}
			if err := addCounter(tx, statusCounter(a.Status), 1); err != nil {
				return err
			}
		}
		return putStatus(tx, id, &a, urgent)
	})
}

// statusCounter names the counter of a final status.
func statusCounter(status string) []byte {
	switch status {
	case bot.ActionSent:
		return ctrObSent
	case bot.ActionUnknown:
		return ctrObUnknown
	}
	return ctrObFailed
}

// BeginAttempt implements bot.Outbox.
func (s *Store) BeginAttempt(ctx context.Context, id uint64, at time.Time) error {
	return s.updateAction(ctx, id, func(a *bot.Action) { a.RecordAttempt(at) })
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
	if err := check(ctx); err != nil {
		return nil, err
	}
	var a *bot.Action
	err := s.db.View(func(tx *bbolt.Tx) error {
		got, err := loadAction(tx, id)
		if err != nil {
			return err
		}
		a = &got
		return nil
	})
	return a, err
}

// Actions implements bot.Outbox.
func (s *Store) Actions(ctx context.Context, after uint64, limit int) ([]bot.Action, error) {
	if err := check(ctx); err != nil {
		return nil, err
	}
	var out []bot.Action
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			a, err := decodeAction(tx, binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// OutboxStats implements bot.Outbox.
func (s *Store) OutboxStats(ctx context.Context) (bot.OutboxStats, error) {
	var st bot.OutboxStats
	if err := check(ctx); err != nil {
		return st, err
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		st.Pending = int(counter(tx, ctrObPending))
		st.Sent = int(counter(tx, ctrObSent))
		st.Failed = int(counter(tx, ctrObFailed))
		st.PossiblyDelivered = int(counter(tx, ctrObUnknown))
		if k, _ := tx.Bucket(bucketOutboxDue).Cursor().First(); k != nil {
			st.OldestDue = time.Unix(0, int64(binary.BigEndian.Uint64(k[:8])))
		}
		return nil
	})
	return st, err
}
