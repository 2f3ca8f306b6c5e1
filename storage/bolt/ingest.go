package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/wecombot/wecombot/bot"
)

// The ingest log makes a callback durable with one small write and one
// fdatasync, so its 200 never waits for a bbolt commit (two fsyncs, the
// pages of four tables, and the writer lock the engine and the outbox
// hold): IngestEvent appends the event to a preallocated file beside the
// database (<file>-ingest), group-committed like the bbolt writes (the
// first waiter flushes; the next group forms while it syncs), and
// answers once that is synced. A mover then copies the synced events into
// bbolt — events, pending, member history, dedupe — in sequence order,
// group-committed with the engine's transactions, and wakes the pipeline;
// only then do the event log's readers see them.
//
// AppendEvent (every other writer: schedulers, sweeps, results) goes
// through the same sequence and mover without the file, returning once
// its event is in bbolt, so sequence numbers reach the log's readers in
// order whichever way an event came in.
//
// Open moves what a crash left in the file (records with a sequence
// number above the log's, CRC-checked; the first torn or older record
// ends the file's contents) before anything else runs; Close moves the
// rest. A retry is recognised against both the events not moved yet and
// bbolt's dedupe table.
type ingestLog struct {
	s    *Store
	f    *os.File
	path string
	sync bool // fdatasync each group (off only with Options.NoSync)
	// syncFile is fdatasync (tests make it fail).
	syncFile func(*os.File) error

	mu      sync.Mutex
	seq     uint64              // last sequence number given out
	queue   []*ingestEntry      // given out, not yet in bbolt, in order
	keys    map[string]struct{} // dedupe keys in queue
	moves   uint64              // moves into bbolt finished (keys left l.keys)
	forming *ingestGroup        // IngestEvent entries waiting for the next flush
	// flights counts groups written and being synced (at most
	// maxFlights); taken are those not yet finished, oldest first.
	flights int
	taken   []*ingestGroup
	// The last group's size and sync time, for gather; gathering is set
	// while a leader waits, and grew wakes it when the group grows.
	lastGroup int
	lastFlush time.Duration
	gathering bool
	grew      chan struct{}
	off       int64    // where the next group goes in the file
	spare     [][]byte // written groups' buffers, for the next groups

	growMu  sync.Mutex   // held while the file grows
	size    atomic.Int64 // bytes written in the file (zeros beyond off; changed under growMu)
	growing atomic.Bool  // growAhead is under way
	closed  bool
	onMoved func()
	// moveTx runs a move's transaction: the group commit (tests make it
	// fail); onOutcome hears how moves go (OnMoveOutcome).
	moveTx    func(func(*bbolt.Tx) error) error
	onOutcome func(error)
	// held, while open, keeps the mover from moving (HoldMoves); it
	// still moves for an AppendEvent caller.
	held   <-chan struct{}
	parked bool // the mover waits in waitHeld

	wake     chan struct{} // nudges the mover: a group is synced
	urgent   chan struct{} // nudges the mover: an AppendEvent caller waits
	stop     chan struct{} // closed by close: the mover moves what it can and returns
	moverOut chan struct{} // closed when the mover returned
}

// ingestEntry is one event between its sequence number and bbolt.
type ingestEntry struct {
	seq     uint64
	at      int64 // dedupe time (unix ns)
	key     string
	raw     []byte // the event's JSON, Seq set
	members []string
	recv    int64         // ReceivedAt (unix ns)
	ready   bool          // durable in the file, or AppendEvent's: may be moved
	direct  bool          // AppendEvent's: its caller waits for the move
	moved   chan struct{} // direct only: closed once in bbolt or failed
	err     error         // set before moved is closed when the move failed
}

// ingestGroup is IngestEvent entries flushed together.
type ingestGroup struct {
	led      bool         // a caller is to flush it (lead set, or closed lead)
	off      int64        // where it was written
	finished bool         // done closed
	opener   *ingestEntry // its first entry: leads it when handed the lead
	entries  []*ingestEntry
	buf      []byte
	err      error
	done     chan struct{} // closed when err is set
	lead     chan struct{} // closed when the group's first caller is to flush it
}

const (
	ingestSuffix = "-ingest"
	// ingestHeader is a record's length (u32), CRC-32C of the rest
	// (u32), sequence number (u64) and dedupe time (i64); the event's
	// JSON follows.
	ingestHeader = 24
	// ingestChunk is how much the file grows at a time, written as zeros
	// and synced once, so that a group's fdatasync has no size change
	// (metadata) to write.
	ingestChunk = 4 << 20
	// ingestKeep is the most of the file kept at start-up; larger files
	// (a long outage of bbolt writes) are cut back after their move.
	ingestKeep = 4 * ingestChunk
	// maxMove bounds the events in one bbolt transaction of the mover.
	maxMove = 2000
	// maxFlights is how many groups may be syncing at once (flush). One:
	// the next group forms for the whole of a sync and is flushed by one
	// caller when it ends. With two, a second caller arriving during a
	// sync flushes alone (groups of 1.1 entries at 16 connections), so
	// nearly every request paid a sync's CPU (~30 µs) and each sync held
	// one of the runtime's Ps while its thread slept in the kernel —
	// both Ps at once when two were in flight, leaving a core idle with
	// work queued (execution trace of bench's ack path: fdatasync held a
	// P 57% of the run). One flight: groups of ~7, CPU per ack 163–192 µs
	// vs 195–228, ack/bare 0.48–0.52 vs 0.37–0.40 (bench, c=16,
	// alternated runs, loaded machine).
	//
	// Two, but the second only for a group as large as the last one
	// synced (add): one flight kept the disk busy ~70% of the ack path
	// with ~7 of the 16 requests waiting in IngestEvent, and the disk
	// takes two syncs at once nearly as fast as one (two writers
	// fdatasyncing 14k/s against 8–9k/s for one). A group that large
	// would otherwise wait out the sync before it; a smaller one still
	// waits, so groups stay large. ack/bare 0.39–0.59 (mean 0.49)
	// against 0.37–0.49 (mean 0.43) with one flight (bench, c=16,
	// GOMAXPROCS=3, 12 alternated runs each, load 2.6–6.9); the gain is
	// in the runs where the disk is slow, about even on the quietest.
	maxFlights = 2
	// movePace is the least time between two moves while events keep
	// coming (mover): 16 writers ingest 60–66k events/s with it, 18–28k
	// without (BenchmarkIngestVsAppend16, one run).
	movePace = 5 * time.Millisecond
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errIngestClosed answers writes after Close.
var errIngestClosed = errors.New("store is closed")

// IngestLogPath is the ingest log beside the database file at path: it
// belongs to that file (moved aside with it by a restore).
func IngestLogPath(path string) string { return path + ingestSuffix }

// checkIngestMoved fails a read-only open while the ingest log holds
// acknowledged events the file lacks (the server stopped without closing
// it): a copy or check of the file alone would miss them.
func (s *Store) checkIngestMoved() error {
	f, err := os.Open(IngestLogPath(s.path))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open ingest log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open ingest log: %w", err)
	}
	var last uint64
	_ = s.db.View(func(tx *bbolt.Tx) error { last = tx.Bucket(bucketEvents).Sequence(); return nil })
	recs, err := readIngest(f, fi.Size(), last)
	if err != nil {
		return err
	}
	if len(recs) > 0 {
		return fmt.Errorf("%s: %d acknowledged events are still in %s, not yet in the file (wecombot stopped without closing it): start wecombot serve once, which moves them, then retry", s.path, len(recs), IngestLogPath(s.path))
	}
	return nil
}

// openIngest opens (creating) the ingest log of s, moves what it holds
// into bbolt and starts the mover.
func openIngest(s *Store) (*ingestLog, error) {
	l := &ingestLog{s: s, path: IngestLogPath(s.path), sync: !s.o.NoSync, syncFile: fdatasync, moveTx: s.gc.run, keys: map[string]struct{}{},
		grew: make(chan struct{}, 1), wake: make(chan struct{}, 1), urgent: make(chan struct{}, 1), stop: make(chan struct{}), moverOut: make(chan struct{})}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open ingest log: %w", err)
	}
	l.f = f
	if err := l.recover(); err != nil {
		f.Close()
		return nil, err
	}
	go l.mover()
	return l, nil
}

// recover moves the records a crash left in the file into bbolt and
// starts the file over.
func (l *ingestLog) recover() error {
	fi, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("ingest log: %w", err)
	}
	l.size.Store(fi.Size())
	var last uint64
	err = l.s.db.View(func(tx *bbolt.Tx) error { last = tx.Bucket(bucketEvents).Sequence(); return nil })
	if err != nil {
		return err
	}
	l.seq = last
	recs, err := readIngest(l.f, l.size.Load(), last)
	if err != nil {
		return err
	}
	for len(recs) > 0 {
		n := min(len(recs), maxMove)
		if err := l.s.gc.run(func(tx *bbolt.Tx) error { return moveEntries(tx, recs[:n], l.s.o.DedupeTTL) }); err != nil {
			return fmt.Errorf("move the ingest log's events into the database: %w", err)
		}
		l.seq = max(l.seq, recs[n-1].seq)
		recs = recs[n:]
	}
	if l.size.Load() > ingestKeep {
		if err := l.f.Truncate(ingestKeep); err != nil {
			return fmt.Errorf("ingest log: %w", err)
		}
		l.size.Store(ingestKeep)
	}
	// The file starts over at 0; what is left behind is older than the
	// log (skipped) or cut off by the first record written.
	return nil
}

// readIngest returns the file's records with a sequence number above
// after, in order, up to the first torn record, zeros, or a record not
// newer than the one before (left from before the file started over).
func readIngest(f *os.File, size int64, after uint64) ([]*ingestEntry, error) {
	data := make([]byte, size)
	if _, err := f.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read ingest log: %w", err)
	}
	var out []*ingestEntry
	var prev uint64
	for off := 0; off+ingestHeader <= len(data); {
		n := int(binary.BigEndian.Uint32(data[off:]))
		if n < ingestHeader || off+n > len(data) || crc32.Checksum(data[off+8:off+n], crcTable) != binary.BigEndian.Uint32(data[off+4:]) {
			break
		}
		seq := binary.BigEndian.Uint64(data[off+8:])
		if seq <= prev {
			break
		}
		prev = seq
		at := int64(binary.BigEndian.Uint64(data[off+16:]))
		raw := data[off+ingestHeader : off+n]
		off += n
		if seq <= after {
			continue // in the database already
		}
		var ev bot.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			break // not a record of ours after all: stop rather than guess
		}
		out = append(out, &ingestEntry{seq: seq, at: at, key: ev.DedupeKey, raw: raw, members: ev.Members(),
			recv: ev.ReceivedAt.UnixNano(), ready: true})
	}
	return out, nil
}

// moveEntries writes entries into bbolt's event log in one transaction;
// it may run more than once (group commit). An entry whose dedupe key is
// in bbolt already (only possible for a record moved again at recovery)
// is skipped.
func moveEntries(tx *bbolt.Tx, entries []*ingestEntry, ttl time.Duration) error {
	events, pending, dd := tx.Bucket(bucketEvents), tx.Bucket(bucketPending), tx.Bucket(bucketDedupe)
	added := int64(0)
	top := events.Sequence()
	for _, e := range entries {
		top = max(top, e.seq)
		if events.Get(u64(e.seq)) != nil {
			continue
		}
		if e.key != "" {
			if v := dd.Get([]byte(e.key)); len(v) >= 8 && e.at-int64(binary.BigEndian.Uint64(v)) < int64(ttl) {
				continue
			}
		}
		if err := events.Put(u64(e.seq), e.raw); err != nil {
			return err
		}
		if err := indexEvent(tx, e.members, e.seq); err != nil {
			return err
		}
		if err := pending.Put(u64(e.seq), i64(e.recv)); err != nil {
			return err
		}
		if e.key != "" {
			if err := dd.Put([]byte(e.key), append(i64(e.at), u64(e.seq)...)); err != nil {
				return err
			}
		}
		added++
	}
	if top > events.Sequence() {
		if err := events.SetSequence(top); err != nil {
			return err
		}
	}
	if added == 0 {
		return nil
	}
	return addCounter(tx, ctrPending, added)
}

// add gives ev the next sequence number and queues it, unless its dedupe
// key was appended within the TTL (dup). direct entries are ready at once;
// the others join the forming group g, which the caller is to flush when
// lead.
func (l *ingestLog) add(ev *bot.Event, now time.Time, direct bool) (e *ingestEntry, g *ingestGroup, lead, dup bool, err error) {
	// Encoded before the lock, without its sequence number (seq is the
	// first field and omitted when 0): withSeq adds it under the lock.
	enc := encoders.Get().(*eventEncoder)
	defer enc.put() // after the unlock below: withSeq copied the body
	body, err := enc.encode(ev)
	if err != nil {
		return nil, nil, false, false, fmt.Errorf("encode event: %w", err)
	}
	members := ev.Members()
	l.mu.Lock()
	defer l.mu.Unlock()
	// bbolt is read without the lock (a read can wait for the mover's
	// commit to remap the file). A key leaves l.keys only once it is in
	// bbolt, each move counted in l.moves: when no move finished since
	// bbolt said no, that answer and l.keys (checked again: a racing
	// delivery may have taken the key meanwhile) hold together.
	checked := ^uint64(0)
	for ev.DedupeKey != "" {
		if _, ok := l.keys[ev.DedupeKey]; ok {
			return nil, nil, false, true, nil
		}
		if checked == l.moves {
			break
		}
		moves := l.moves
		l.mu.Unlock()
		seen := l.s.seen(ev.DedupeKey, now)
		l.mu.Lock()
		if seen {
			return nil, nil, false, true, nil
		}
		checked = moves
	}
	if l.closed {
		return nil, nil, false, false, errIngestClosed
	}
	e = &ingestEntry{seq: l.seq + 1, at: now.UnixNano(), key: ev.DedupeKey, members: members,
		recv: ev.ReceivedAt.UnixNano(), ready: direct, direct: direct}
	if direct {
		e.moved = make(chan struct{})
	}
	e.raw = withSeq(body, e.seq)
	l.seq = e.seq
	l.queue = append(l.queue, e)
	if e.key != "" {
		l.keys[e.key] = struct{}{}
	}
	if !direct {
		if l.forming == nil {
			l.forming = &ingestGroup{opener: e, buf: l.takeBuf(), done: make(chan struct{}), lead: make(chan struct{})}
		}
		g = l.forming
		g.entries = append(g.entries, e)
		g.buf = appendRecord(g.buf, e)
		if l.gathering {
			select {
			case l.grew <- struct{}{}:
			default:
			}
		}
		if !g.led && (l.flights == 0 || l.flights < maxFlights && len(g.entries) >= max(2, l.lastGroup)) {
			g.led, lead = true, true
			l.flights++
		}
	}
	return e, g, lead, false, nil
}

// eventEncoder encodes events into a buffer it keeps (encoders pools
// them), so an event costs one allocation of its JSON (withSeq's copy)
// rather than json.Marshal's and that copy.
type eventEncoder struct {
	buf []byte
	// json is encoding/json, for the events appendEventJSON leaves to it.
	json bytes.Buffer
	enc  *json.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &eventEncoder{}
	e.enc = json.NewEncoder(&e.json)
	return e
}}

// encode returns json.Marshal of ev with Seq 0 (TestEventEncoderIsJSONMarshal),
// valid until the next encode or put.
func (e *eventEncoder) encode(ev *bot.Event) ([]byte, error) {
	if b, ok := appendEventJSON(e.buf[:0], ev); ok {
		e.buf = b
		return b, nil
	}
	cp := *ev
	cp.Seq = 0
	e.json.Reset()
	if err := e.enc.Encode(&cp); err != nil { // json.Marshal's bytes and a newline
		return nil, err
	}
	b := e.json.Bytes()
	return b[:len(b)-1], nil
}

// put gives e back to the pool, unless an unusually large event grew it.
func (e *eventEncoder) put() {
	if cap(e.buf) <= 64<<10 && e.json.Cap() <= 64<<10 {
		encoders.Put(e)
	}
}

// takeBuf is a group's record buffer: one a finished group gave back, or
// none yet (l.mu held).
func (l *ingestLog) takeBuf() []byte {
	if n := len(l.spare); n > 0 {
		b := l.spare[n-1]
		l.spare = l.spare[:n-1]
		return b
	}
	return nil
}

// giveBuf keeps a written group's buffer for a later group (l.mu held):
// a few, none grown past 1 MiB.
func (l *ingestLog) giveBuf(b []byte) {
	if cap(b) > 0 && cap(b) <= 1<<20 && len(l.spare) < maxFlights+1 {
		l.spare = append(l.spare, b[:0])
	}
}

// withSeq is json.Marshal of the event body encodes with Seq set to seq
// (TestWithSeqIsJSONMarshal): Seq is bot.Event's first field, omitted
// when zero.
func withSeq(body []byte, seq uint64) []byte {
	out := make([]byte, 0, len(body)+28)
	out = append(out, `{"seq":`...)
	out = strconv.AppendUint(out, seq, 10)
	if len(body) > 2 {
		out = append(out, ',')
	}
	return append(out, body[1:]...)
}

func appendRecord(buf []byte, e *ingestEntry) []byte {
	start := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, uint32(ingestHeader+len(e.raw)))
	buf = binary.BigEndian.AppendUint32(buf, 0) // CRC, below
	buf = binary.BigEndian.AppendUint64(buf, e.seq)
	buf = binary.BigEndian.AppendUint64(buf, uint64(e.at))
	buf = append(buf, e.raw...)
	binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start+8:], crcTable))
	return buf
}

// ingest makes ev durable in the file and returns once it is (see
// ingestLog); it is in bbolt a moment later.
func (l *ingestLog) ingest(ev *bot.Event, now time.Time) (bool, error) {
	e, g, lead, dup, err := l.add(ev, now, false)
	if err != nil || dup {
		return dup, err
	}
	opened := g.opener == e
	switch {
	case lead:
		l.flush() // g: it forms until its leader takes it
	case opened: // e opened g, which formed while another group was written: it leads g next
		select {
		case <-g.done:
		case <-g.lead: // the previous leader handed over: flush what formed
			l.flush()
		}
	}
	<-g.done
	if g.err != nil {
		return false, g.err
	}
	ev.Seq = e.seq
	return false, nil
}

// flush writes the forming group (the caller leads it) and syncs it,
// while the group before may still be syncing when maxFlights allows
// more than one: fdatasync returns once everything written to the file
// before it began is durable, so a group's sync finishes every group
// written before it too. Groups finish in order; a group whose write
// or sync fails fails with every group written after it (recovery stops
// at the first torn record, so none after may be acknowledged), and the
// file goes on from its offset.
func (l *ingestLog) flush() {
	l.mu.Lock()
	l.gather()
	g := l.forming
	l.forming = nil
	if len(l.queue) == len(g.entries) && l.queue[0] == g.entries[0] {
		l.off = 0 // everything before is in bbolt: the file starts over
	}
	g.off = l.off
	l.taken = append(l.taken, g)
	// Written under the lock, so the file's groups are in order and a
	// later group's sync covers every earlier one.
	err := l.writeAt(g.buf, g.off)
	end := g.off + int64(len(g.buf))
	l.giveBuf(g.buf) // in the file (or failed): the next group may reuse it
	g.buf = nil
	if err == nil {
		l.off = end
		l.mu.Unlock()
		t0 := time.Now()
		if l.sync {
			if err = l.syncFile(l.f); err != nil {
				err = fmt.Errorf("sync ingest log: %w", err)
			}
		}
		l.mu.Lock()
		l.lastGroup, l.lastFlush = len(g.entries), time.Since(t0)
	}
	l.flights--
	var done []*ingestGroup
	switch {
	case g.finished: // finished by a later group's sync, or failed with an earlier group
	case err == nil:
		// Every group up to g is durable.
		n := 0
		for n < len(l.taken) && l.taken[n] != g {
			n++
		}
		done = append(done, l.taken[:n+1]...)
		for _, d := range done {
			d.finished = true
			for _, e := range d.entries {
				e.ready = true
			}
		}
		l.taken = append(l.taken[:0], l.taken[n+1:]...)
	default:
		err = fmt.Errorf("append event: %w", err)
		n := 0
		for n < len(l.taken) && l.taken[n] != g {
			n++
		}
		done = append(done, l.taken[n:]...)
		for _, d := range done {
			d.finished, d.err = true, err
			l.drop(d.entries)
		}
		l.taken = l.taken[:n]
		l.off = g.off
	}
	if f := l.forming; f != nil && !f.led && l.flights < maxFlights {
		f.led = true
		l.flights++
		close(f.lead)
	}
	l.mu.Unlock()
	for _, d := range done {
		close(d.done)
	}
	if err == nil && len(done) > 0 {
		l.nudge()
	}
}

// gather lets the leader wait a moment for company (l.mu held, released
// while waiting): when the last group was large, callers are arriving
// together — a closed loop of WeCom's connections answered by the last
// sync — and the first of them flushing alone would cost the rest a
// second sync. It waits until the group has 3/4 of the last one's
// entries, or half the last sync's time (at most 500 µs) has passed.
func (l *ingestLog) gather() {
	want := l.lastGroup * 3 / 4
	if want < 2 || len(l.forming.entries) >= want {
		return
	}
	t := time.NewTimer(min(l.lastFlush/2, 500*time.Microsecond))
	defer t.Stop()
	l.gathering = true
	defer func() { l.gathering = false }()
	for len(l.forming.entries) < want {
		l.mu.Unlock()
		select {
		case <-l.grew:
			l.mu.Lock()
		case <-t.C:
			l.mu.Lock()
			return
		}
	}
}

// writeAt puts buf at off, growing the file by zeroed chunks if it must
// (normally growAhead has) (l.mu held).
func (l *ingestLog) writeAt(buf []byte, off int64) error {
	end := off + int64(len(buf))
	if end > l.size.Load() {
		l.growMu.Lock()
		err := l.grow(end)
		l.growMu.Unlock()
		if err != nil {
			return err
		}
	}
	if l.size.Load()-end < ingestChunk/2 && !l.growing.Swap(true) {
		go l.growAhead()
	}
	if _, err := l.f.WriteAt(buf, off); err != nil {
		return fmt.Errorf("write ingest log: %w", err)
	}
	return nil
}

// growAhead adds a chunk to the file before a group needs it, so no
// group waits for a chunk of zeros to be written and synced.
func (l *ingestLog) growAhead() {
	l.growMu.Lock()
	defer l.growMu.Unlock()
	_ = l.grow(l.size.Load() + 1) // a failure is a group's to report when it needs the space
	l.growing.Store(false)
}

// grow extends the file by zeroed, synced chunks to at least end
// (l.growMu held: what is being zeroed is never written meanwhile).
func (l *ingestLog) grow(end int64) error {
	size := l.size.Load()
	if end <= size {
		return nil // grown meanwhile
	}
	grow := (end - size + ingestChunk - 1) / ingestChunk * ingestChunk
	zeros := make([]byte, 64<<10)
	for at := size; at < size+grow; at += int64(len(zeros)) {
		if _, err := l.f.WriteAt(zeros, at); err != nil {
			_ = l.f.Truncate(size) // leave no half-grown chunk
			return fmt.Errorf("grow ingest log: %w", err)
		}
	}
	if l.sync {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("grow ingest log: %w", err)
		}
	}
	l.size.Add(grow)
	return nil
}

// drop takes entries that will not be moved out of the queue (l.mu held).
func (l *ingestLog) drop(entries []*ingestEntry) {
	gone := make(map[*ingestEntry]bool, len(entries))
	for _, e := range entries {
		gone[e] = true
		if e.key != "" {
			delete(l.keys, e.key)
		}
	}
	kept := l.queue[:0]
	for _, e := range l.queue {
		if !gone[e] {
			kept = append(kept, e)
		}
	}
	clear(l.queue[len(kept):])
	l.queue = kept
}

// appendDirect queues ev after the events before it and returns once the
// mover has put it in bbolt (AppendEvent).
func (l *ingestLog) appendDirect(ev *bot.Event, now time.Time) (bool, error) {
	e, _, _, dup, err := l.add(ev, now, true)
	if err != nil || dup {
		return dup, err
	}
	select {
	case l.urgent <- struct{}{}:
	default:
	}
	<-e.moved
	if e.err != nil {
		return false, e.err
	}
	ev.Seq = e.seq
	return false, nil
}

func (l *ingestLog) nudge() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// mover copies ready entries into bbolt, oldest first, until stopped
// with nothing left it can move.
func (l *ingestLog) mover() {
	defer close(l.moverOut)
	defer l.failDirect(errIngestClosed) // stopped: nobody waits forever
	backoff := time.Duration(0)
	failing := false
	for {
		l.waitHeld()
		moved, waiting, err := l.moveOnce()
		failing = l.report(moved, waiting, err, failing)
		wake := l.wake
		wait := time.Second // a nudge lost to a full channel costs at most this
		switch {
		case err != nil:
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
			wait, wake = backoff, nil
		case moved:
			// Paced while events keep coming: each move is a bbolt
			// commit (two fsyncs), which the ingest log's syncs would
			// queue behind on the disk; the first event after a pause
			// moves at once. AppendEvent's callers never wait for it.
			backoff = 0
			wait, wake = movePace, nil
		}
		select {
		case <-l.stop:
			if err != nil || !l.pendingReady() {
				return
			}
		case <-wake:
		case <-l.urgent:
		case <-time.After(wait):
		}
	}
}

// report tells onOutcome how a move went, failing being whether the
// moves before it failed: each failure that leaves acknowledged events
// waiting (the mover backs off to one try a second, so this stays cheap,
// and a hook set during a failing spell still hears of it), and the first
// move that succeeds after them. A failed batch of AppendEvent's alone is
// its callers' to report: nothing is left waiting after it, so no later
// move would end the spell. It returns whether moves are failing now.
func (l *ingestLog) report(moved bool, waiting int, err error, failing bool) bool {
	switch {
	case err != nil && waiting == 0:
		return failing
	case err == nil && !(moved && failing):
		return failing
	}
	l.mu.Lock()
	hear := l.onOutcome
	l.mu.Unlock()
	if hear != nil {
		hear(err)
	}
	return err != nil
}

// waitHeld returns once the mover may move: nothing holds it (HoldMoves),
// an AppendEvent caller waits for its event (moved with everything
// before it), or the log is closing.
func (l *ingestLog) waitHeld() {
	for {
		l.mu.Lock()
		held, direct := l.held, false
		if held != nil {
			select {
			case <-held:
				l.held, held = nil, nil
			default:
				for _, e := range l.queue {
					if e.direct {
						direct = true
						break
					}
				}
			}
		}
		l.parked = held != nil && !direct
		l.mu.Unlock()
		if !l.parked {
			return
		}
		select {
		case <-held:
		case <-l.urgent:
		case <-l.stop:
		}
		l.mu.Lock()
		l.parked = false
		l.mu.Unlock()
		select {
		case <-l.stop:
			return
		default:
		}
	}
}

// moverParked reports whether the mover waits for a hold's release.
func (l *ingestLog) moverParked() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.parked
}

// holdMoves keeps the mover from moving IngestEvent's events into bbolt
// until release is closed.
func (l *ingestLog) holdMoves(release <-chan struct{}) {
	l.mu.Lock()
	l.held = release
	l.mu.Unlock()
	select {
	case l.urgent <- struct{}{}: // a mover waiting on its pace sees it
	default:
	}
}

// failDirect answers AppendEvent callers still waiting with err.
func (l *ingestLog) failDirect(err error) {
	l.mu.Lock()
	var direct []*ingestEntry
	for _, e := range l.queue {
		if e.direct {
			e.err = err
			direct = append(direct, e)
		}
	}
	l.drop(direct)
	l.mu.Unlock()
	for _, e := range direct {
		close(e.moved)
	}
}

func (l *ingestLog) pendingReady() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue) > 0 && l.queue[0].ready
}

// moveOnce moves the queue's ready head (at most maxMove) into bbolt;
// when that fails, waiting counts the acknowledged events of the batch,
// left for the next try.
func (l *ingestLog) moveOnce() (moved bool, waiting int, err error) {
	l.mu.Lock()
	n := 0
	for n < len(l.queue) && n < maxMove && l.queue[n].ready {
		n++
	}
	batch := append([]*ingestEntry(nil), l.queue[:n]...)
	move := l.moveTx
	l.mu.Unlock()
	if n == 0 {
		return false, 0, nil
	}
	err = move(func(tx *bbolt.Tx) error { return moveEntries(tx, batch, l.s.o.DedupeTTL) })
	l.mu.Lock()
	if err != nil {
		// IngestEvent's entries are durable in the file and wait for the
		// next try; AppendEvent's callers get the error.
		var direct []*ingestEntry
		for _, e := range batch {
			if e.direct {
				e.err = fmt.Errorf("append event: %w", err)
				direct = append(direct, e)
			}
		}
		l.drop(direct)
		l.mu.Unlock()
		for _, e := range direct {
			close(e.moved)
		}
		return false, n - len(direct), fmt.Errorf("move acknowledged events into the database: %w", err)
	}
	// The batch is still the queue's head: only entries not ready (in a
	// group being written) or AppendEvent's after a failed move leave it
	// otherwise, and neither is in a batch being moved.
	for _, e := range batch {
		if e.key != "" {
			delete(l.keys, e.key)
		}
	}
	clear(l.queue[:n])
	l.queue = l.queue[n:]
	l.moves++
	notify := l.onMoved
	l.mu.Unlock()
	for _, e := range batch {
		if e.direct {
			close(e.moved)
		}
	}
	if notify != nil {
		notify()
	}
	return true, 0, nil
}

// stats are the events not in bbolt yet and the last sequence number.
func (l *ingestLog) stats() (unmoved int, last uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue), l.seq
}

// close refuses new events, waits for the group being written, moves
// what it can and closes the file (what could not be moved stays in it
// for the next Open).
func (l *ingestLog) close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	for {
		l.mu.Lock()
		busy := l.flights > 0
		l.mu.Unlock()
		if !busy {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(l.stop)
	<-l.moverOut
	l.growMu.Lock() // a chunk being added ahead is finished first
	defer l.growMu.Unlock()
	return l.f.Close()
}
