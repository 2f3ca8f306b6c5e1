package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/loadtest"
)

// TestIngestAndAppendKeepOneOrder: callbacks through IngestEvent and other
// writers through AppendEvent, concurrently: every event reaches the log
// once, with distinct sequence numbers, retries are duplicates, and a
// reader that saw seq n never sees an event below n appear later.
func TestIngestAndAppendKeepOneOrder(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "w.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const writers, each = 16, 60
	var wg sync.WaitGroup
	errs := make(chan error, writers*each*2)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				ev := &bot.Event{Type: bot.EventContactAdd, ExternalUserID: fmt.Sprintf("wm%d_%d", w, i), DedupeKey: fmt.Sprintf("k%d_%d", w, i)}
				var dup bool
				var err error
				if w%4 == 0 {
					dup, err = s.AppendEvent(ctx, ev)
				} else {
					dup, err = s.IngestEvent(ctx, ev)
				}
				if err != nil || dup || ev.Seq == 0 {
					errs <- fmt.Errorf("append %s: dup %v seq %d err %v", ev.DedupeKey, dup, ev.Seq, err)
				}
				retry := &bot.Event{Type: bot.EventContactAdd, ExternalUserID: ev.ExternalUserID, DedupeKey: ev.DedupeKey}
				if dup, err := s.IngestEvent(ctx, retry); err != nil || !dup {
					errs <- fmt.Errorf("retry %s: dup %v err %v", ev.DedupeKey, dup, err)
				}
			}
		})
	}
	// A reader following the log as the pipeline does.
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	var seen []uint64
	go func() {
		defer close(readerDone)
		var after uint64
		for {
			evs, err := s.PendingEvents(ctx, after, 256)
			if err != nil {
				errs <- err
				return
			}
			for _, ev := range evs {
				seen = append(seen, ev.Seq)
				after = ev.Seq
			}
			select {
			case <-stop:
				if len(evs) == 0 {
					return
				}
			default:
				time.Sleep(200 * time.Microsecond)
			}
		}
	}()
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := s.EventStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending == writers*each {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending %d, want %d", st.Pending, writers*each)
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	<-readerDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != writers*each {
		t.Errorf("the reader saw %d events, want %d (an event appeared below its cursor)", len(seen), writers*each)
	}
	all, err := s.PendingEvents(ctx, 0, 10*writers*each)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != writers*each {
		t.Errorf("log holds %d events, want %d", len(all), writers*each)
	}
}

// copyFile copies src to dst as it is on disk.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestIngestedEventsSurviveACrash: events acknowledged by IngestEvent while
// nothing could be moved into bbolt (a writer holds it) are in the files
// a crash leaves: Open moves each exactly once, a torn record at the end
// is ignored, their retries stay duplicates, and the log goes on from
// there — a second crash moves only what came after.
func TestIngestedEventsSurviveACrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.AppendEvent(ctx, &bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm_before", DedupeKey: "before"}); err != nil {
		t.Fatal(err)
	}
	// crashWith acknowledges n events while bbolt's writer is held, then
	// copies the files as a crash would leave them.
	crashWith := func(prefix string, n int, to string) {
		t.Helper()
		hold, held := make(chan struct{}), make(chan struct{})
		go s.db.Update(func(*bbolt.Tx) error { close(held); <-hold; return nil })
		<-held
		for i := range n {
			ev := &bot.Event{Type: bot.EventContactAdd, ExternalUserID: fmt.Sprint(prefix, i), DedupeKey: fmt.Sprint(prefix, i)}
			if dup, err := s.IngestEvent(ctx, ev); err != nil || dup {
				t.Fatalf("ingest: %v %v", dup, err)
			}
		}
		copyFile(t, path, to)
		copyFile(t, path+ingestSuffix, to+ingestSuffix)
		close(hold)
	}
	crashed := filepath.Join(dir, "crashed.db")
	crashWith("wm_a", 50, crashed)
	// A record torn by the crash after the last acknowledged one.
	f, err := os.OpenFile(crashed+ingestSuffix, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := readIngest(f, mustSize(t, f), 0)
	if err != nil || len(recs) != 50 {
		t.Fatalf("ingest file holds %d records (%v), want 50", len(recs), err)
	}
	end := int64(0)
	for _, r := range recs {
		end += int64(ingestHeader + len(r.raw))
	}
	if _, err := f.WriteAt([]byte{0, 0, 1, 0, 9, 9, 9, 9, 1, 2, 3}, end); err != nil {
		t.Fatal(err)
	}
	f.Close()

	c, err := Open(crashed, Options{})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := c.PendingEvents(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 51 || evs[0].ExternalUserID != "wm_before" || evs[50].ExternalUserID != "wm_a49" {
		t.Fatalf("after the crash the log holds %d events, want wm_before and the 50 acknowledged", len(evs))
	}
	for i, ev := range evs[1:] {
		if ev.Seq <= evs[i].Seq {
			t.Fatalf("sequence not increasing at %d: %d after %d", i, ev.Seq, evs[i].Seq)
		}
	}
	if dup, err := c.IngestEvent(ctx, &bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm_a7", DedupeKey: "wm_a7"}); err != nil || !dup {
		t.Errorf("a retry of a recovered event: dup %v err %v, want a duplicate", dup, err)
	}
	// Go on, crash again: only the new events are moved.
	s.Close()
	s = c
	path = crashed
	again := filepath.Join(dir, "again.db")
	crashWith("wm_b", 5, again)
	d, err := Open(again, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	evs, err = d.PendingEvents(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 56 || evs[55].ExternalUserID != "wm_b4" {
		t.Fatalf("after the second crash the log holds %d events, want 56 ending with wm_b4", len(evs))
	}
	st, err := d.EventStats(ctx)
	if err != nil || st.Pending != 56 {
		t.Errorf("pending %d (%v), want 56", st.Pending, err)
	}
}

func mustSize(t *testing.T, f *os.File) int64 {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// BenchmarkIngestVsAppend16 is 16 concurrent writers (WeCom's connections)
// of distinct members, durable: IngestEvent (the callback's path) and
// AppendEvent (into bbolt before returning), side by side.
func BenchmarkIngestVsAppend16(b *testing.B) {
	for _, path := range []string{"ingest", "append"} {
		b.Run(path, func(b *testing.B) {
			s := benchStore(b, false)
			ctx := context.Background()
			var n, syncs atomic.Int64
			syncFile := s.in.syncFile
			s.in.syncFile = func(f *os.File) error { syncs.Add(1); return syncFile(f) }
			b.ReportAllocs()
			b.SetParallelism(8) // × GOMAXPROCS 2 = 16 writers
			start, cpu := time.Now(), loadtest.ProcessCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					ev := bot.Event{Type: bot.EventContactAdd, DedupeKey: fmt.Sprint("k", i), ExternalUserID: fmt.Sprint("wm_bench_", i), WelcomeCode: "WC"}
					var err error
					if path == "ingest" {
						_, err = s.IngestEvent(ctx, &ev)
					} else {
						_, err = s.AppendEvent(ctx, &ev)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			// The whole process's CPU (writers, mover, syncs in the
			// kernel) per event, and events per sync of the ingest log.
			b.ReportMetric(float64(loadtest.ProcessCPU()-cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/event")
			if path == "ingest" {
				b.ReportMetric(float64(b.N)/float64(max(syncs.Load(), 1)), "events/sync")
			}
		})
	}
}

// TestReadOnlyOpenRefusesUnmovedEvents: a file whose ingest log holds
// acknowledged events it lacks is not opened read-only (a backup or check
// of it would miss them); once a writable open moved them, it is.
func TestReadOnlyOpenRefusesUnmovedEvents(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	hold, held := make(chan struct{}), make(chan struct{})
	go s.db.Update(func(*bbolt.Tx) error { close(held); <-hold; return nil })
	<-held
	if _, err := s.IngestEvent(context.Background(), &bot.Event{Type: bot.EventContactAdd, ExternalUserID: "wm1", DedupeKey: "k1"}); err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(dir, "crashed.db")
	copyFile(t, path, crashed)
	copyFile(t, IngestLogPath(path), IngestLogPath(crashed))
	close(hold)
	s.Close()
	if ro, err := Open(crashed, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "1 acknowledged events are still in") {
		if ro != nil {
			ro.Close()
		}
		t.Fatalf("read-only open of a file with unmoved events: %v", err)
	}
	w, err := Open(crashed, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	ro, err := Open(crashed, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open after the move: %v", err)
	}
	defer ro.Close()
	if st, err := ro.EventStats(context.Background()); err != nil || st.Pending != 1 {
		t.Errorf("pending %d (%v), want the moved event", st.Pending, err)
	}
}

// TestWithSeqIsJSONMarshal: the log's records are byte for byte what
// json.Marshal makes of the event with its sequence number.
func TestWithSeqIsJSONMarshal(t *testing.T) {
	for _, ev := range []bot.Event{
		{},
		{Type: bot.EventContactAdd},
		{Type: bot.EventGroupUpdate, ChatID: "wr1", MemChangeList: []string{"a", "b"}, Data: map[string]string{"x": "y"}, At: time.Unix(1, 2)},
	} {
		for _, seq := range []uint64{1, 42, 1<<64 - 1} {
			body, err := json.Marshal(&ev)
			if err != nil {
				t.Fatal(err)
			}
			want := ev
			want.Seq = seq
			w, _ := json.Marshal(&want)
			if got := withSeq(body, seq); string(got) != string(w) {
				t.Errorf("withSeq = %s, want %s", got, w)
			}
		}
	}
}

// TestEventEncoderIsJSONMarshal: the pooled encoder the ingest log uses
// makes json.Marshal's bytes of the event without its sequence number
// (HTML escaping, no trailing newline), used again and again.
func TestEventEncoderIsJSONMarshal(t *testing.T) {
	enc := encoders.Get().(*eventEncoder)
	defer enc.put()
	for _, ev := range []bot.Event{
		{},
		{Seq: 7, Type: bot.EventContactAdd, ExternalUserID: "wm<1>&\"x\"", WelcomeCode: "WC", FailReason: "你好 \u2028 <b>"},
		{Type: bot.EventGroupUpdate, ChatID: "wr1", MemChangeList: []string{"a", "b"}, Data: map[string]string{"x": "y"}, At: time.Unix(1, 2)},
		{},
	} {
		got, err := enc.encode(&ev)
		if err != nil {
			t.Fatal(err)
		}
		cp := ev
		cp.Seq = 0
		want, _ := json.Marshal(&cp)
		if string(got) != string(want) {
			t.Errorf("encode = %s, want %s", got, want)
		}
	}
}

// TestRacingFirstDeliveriesStaySingle: WeCom's retries of one callback
// racing each other (and the mover, which takes keys from memory into
// bbolt meanwhile) leave exactly one event per key.
func TestRacingFirstDeliveriesStaySingle(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "w.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const keys, racers = 200, 6
	var stored atomic.Int64
	var wg sync.WaitGroup
	for r := range racers {
		wg.Go(func() {
			for k := range keys {
				ev := &bot.Event{Type: bot.EventContactAdd, ExternalUserID: fmt.Sprint("wm", k), DedupeKey: fmt.Sprint("key", k)}
				var dup bool
				var err error
				if (k+r)%3 == 0 {
					dup, err = s.AppendEvent(ctx, ev)
				} else {
					dup, err = s.IngestEvent(ctx, ev)
				}
				if err != nil {
					t.Error(err)
				}
				if !dup {
					stored.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := stored.Load(); n != keys {
		t.Errorf("%d first deliveries stored for %d keys", n, keys)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := s.PendingEvents(ctx, 0, 10*keys)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == keys {
			break
		}
		if len(evs) > keys || time.Now().After(deadline) {
			t.Fatalf("log holds %d events for %d keys", len(evs), keys)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFailedSyncFailsTheGroupsAfterIt: when a group's sync fails while
// others are written behind it, none of those is acknowledged (recovery
// would stop at the failed group's records); every acknowledged event
// reaches the log, no refused one does, and the log goes on.
func TestFailedSyncFailsTheGroupsAfterIt(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "w.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var calls atomic.Int64
	s.in.syncFile = func(f *os.File) error {
		if n := calls.Add(1); n == 5 || n == 6 {
			time.Sleep(2 * time.Millisecond) // let later groups be written meanwhile
			return fmt.Errorf("injected sync failure %d", n)
		}
		return fdatasync(f)
	}
	ctx := context.Background()
	var mu sync.Mutex
	acked, refused := map[string]bool{}, map[string]bool{}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 30 {
				id := fmt.Sprintf("wm%d_%d", w, i)
				_, err := s.IngestEvent(ctx, &bot.Event{Type: bot.EventContactAdd, ExternalUserID: id, DedupeKey: id})
				mu.Lock()
				if err != nil {
					refused[id] = true
				} else {
					acked[id] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(refused) == 0 || len(acked) == 0 {
		t.Fatalf("acked %d, refused %d: want both", len(acked), len(refused))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := s.EventStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := s.PendingEvents(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending == len(evs) && len(evs) >= len(acked) || time.Now().After(deadline) {
			in := map[string]bool{}
			for _, ev := range evs {
				in[ev.ExternalUserID] = true
			}
			for id := range acked {
				if !in[id] {
					t.Errorf("%s acknowledged but not in the log", id)
				}
			}
			for id := range refused {
				if in[id] {
					t.Errorf("%s refused but in the log", id)
				}
			}
			break
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHoldMovesKeepsAckedEventsInTheLog: while HoldMoves holds the mover,
// acknowledged events stay in the ingest log (durable, counted pending,
// their retries duplicates) and readers of bbolt do not see them; an
// AppendEvent is still served, with everything before it; on release the
// rest is moved.
func TestHoldMovesKeepsAckedEventsInTheLog(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "w.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	release := make(chan struct{})
	s.HoldMoves(release)
	ingest := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			ev := &bot.Event{Type: bot.EventContactAdd, ExternalUserID: fmt.Sprint(prefix, i), DedupeKey: fmt.Sprint(prefix, i)}
			if dup, err := s.IngestEvent(ctx, ev); err != nil || dup {
				t.Fatalf("ingest: %v %v", dup, err)
			}
		}
	}
	inBolt := func() int {
		t.Helper()
		evs, err := s.PendingEvents(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	// parked: the mover waits for the release (it moves nothing there).
	parked := func() {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !s.in.moverParked(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the mover never waited for the hold's release")
			}
		}
	}
	ingest("a", 20)
	parked()
	if n := inBolt(); n != 0 {
		t.Fatalf("%d events moved while held", n)
	}
	if st, err := s.EventStats(ctx); err != nil || st.Pending != 20 || st.LastSeq != 20 {
		t.Fatalf("stats while held: %+v %v, want 20 pending, last 20", st, err)
	}
	if dup, err := s.IngestEvent(ctx, &bot.Event{Type: bot.EventContactAdd, ExternalUserID: "a3", DedupeKey: "a3"}); err != nil || !dup {
		t.Fatalf("a retry while held: dup %v err %v, want a duplicate", dup, err)
	}
	if dup, err := s.AppendEvent(ctx, &bot.Event{Type: bot.EventContactAdd, ExternalUserID: "direct", DedupeKey: "direct"}); err != nil || dup {
		t.Fatalf("append while held: %v %v", dup, err)
	}
	if n := inBolt(); n != 21 {
		t.Fatalf("after an AppendEvent while held, bbolt has %d events, want 21 (it and all before it)", n)
	}
	ingest("b", 10)
	parked()
	if n := inBolt(); n != 21 {
		t.Fatalf("%d events in bbolt, want 21: held again after the append", n)
	}
	close(release)
	for deadline := time.Now().Add(10 * time.Second); inBolt() != 31; {
		if time.Now().After(deadline) {
			t.Fatalf("released: %d of 31 events in bbolt after 10 s", inBolt())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNextGroupFormsDuringTheSync: while a group syncs, later callbacks
// join one forming group that nobody flushes yet (a second caller
// flushing alone would cost every request its own sync) until it is as
// large as the last group synced; then it is written and synced beside
// the first (the disk takes two syncs at once nearly as fast as one),
// and all are acknowledged.
func TestNextGroupFormsDuringTheSync(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "w.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	entered, release := make(chan struct{}, 8), make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // before Close, which waits for the sync
	var calls atomic.Int64
	s.in.syncFile = func(f *os.File) error {
		if calls.Add(1) == 1 {
			entered <- struct{}{}
			<-release
		}
		return fdatasync(f)
	}
	s.in.mu.Lock()
	s.in.lastGroup = 4 // as if the last group synced had 4 entries
	s.in.mu.Unlock()
	ctx := context.Background()
	ingest := func(id string, errs chan<- error) {
		_, err := s.IngestEvent(ctx, &bot.Event{Type: bot.EventContactAdd, ExternalUserID: id, DedupeKey: id})
		errs <- err
	}
	errs := make(chan error, 5)
	go ingest("wm_first", errs)
	<-entered // the first group is in its sync
	for i := range 3 {
		go ingest(fmt.Sprint("wm_next_", i), errs)
	}
	// forming waits until n sequence numbers are given out and returns
	// the forming group's size and whether it is led.
	forming := func(n uint64) (int, bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Microsecond) {
			s.in.mu.Lock()
			queued, f := s.in.seq, s.in.forming
			formed, led := 0, false
			if f != nil {
				formed, led = len(f.entries), f.led
			}
			s.in.mu.Unlock()
			if queued == n {
				return formed, led
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d given sequence numbers, want %d", queued, n)
			}
		}
	}
	if formed, led := forming(4); formed != 3 || led || calls.Load() != 1 {
		t.Fatalf("during the first sync: forming group of %d (led %v), %d syncs; want 3 waiting, unled, 1 sync", formed, led, calls.Load())
	}
	go ingest("wm_next_3", errs) // the group is as large as the last one now
	for deadline := time.Now().Add(10 * time.Second); calls.Load() != 2; time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the group of 4 was not synced beside the first: %d syncs", calls.Load())
		}
	}
	free()
	for range 5 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d syncs for two groups, want 2", n)
	}
}

// TestFailingMovesAreReportedAndLoseNothing: while the database refuses
// the mover's transactions, OnMoveOutcome hears of every failure that
// leaves acknowledged events waiting, with its error (and of no
// recovery), not of a failed AppendEvent alone (its caller has the error,
// and nothing waits whose move would end the spell); the acknowledged
// events wait in the ingest log, counted by UnmovedEvents, and none
// reaches bbolt; once it takes them again every event is moved, once,
// and OnMoveOutcome hears nil once.
func TestFailingMovesAreReportedAndLoseNothing(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "w.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	errFull := errors.New("injected: write w.db: no space left on device")
	var broken atomic.Bool
	broken.Store(true)
	s.in.mu.Lock()
	run := s.in.moveTx
	s.in.moveTx = func(fn func(*bbolt.Tx) error) error {
		if broken.Load() {
			return errFull
		}
		return run(fn)
	}
	s.in.mu.Unlock()
	var mu sync.Mutex
	var heard []error
	s.OnMoveOutcome(func(err error) { mu.Lock(); heard = append(heard, err); mu.Unlock() })
	outcomes := func() (failures, recoveries int, last error) {
		mu.Lock()
		defer mu.Unlock()
		for _, err := range heard {
			if err != nil {
				failures++
			} else {
				recoveries++
			}
		}
		if len(heard) > 0 {
			last = heard[len(heard)-1]
		}
		return failures, recoveries, last
	}
	ctx := context.Background()
	ingest := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			id := fmt.Sprint(prefix, i)
			if dup, err := s.IngestEvent(ctx, &bot.Event{Type: bot.EventContactAdd, ExternalUserID: id, DedupeKey: id}); err != nil || dup {
				t.Fatalf("ingest %s: dup %v err %v", id, dup, err)
			}
		}
	}
	inBolt := func() map[string]int {
		t.Helper()
		evs, err := s.PendingEvents(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, ev := range evs {
			seen[ev.ExternalUserID]++
		}
		return seen
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after 10 s, still not %s", what)
			}
		}
	}

	for i := range 2 { // the mover reports a move before it tries the next
		id := fmt.Sprint("direct", i)
		if _, err := s.AppendEvent(ctx, &bot.Event{Type: bot.EventContactAdd, ExternalUserID: id, DedupeKey: id}); !errors.Is(err, errFull) {
			t.Fatalf("AppendEvent while moves fail: %v, want %v", err, errFull)
		}
	}
	if f, _, _ := outcomes(); f != 0 {
		t.Fatalf("%d failures heard for a failed AppendEvent alone, want none", f)
	}
	ingest("a", 30)
	eventually("three failed moves heard", func() bool { f, _, _ := outcomes(); return f >= 3 })
	if _, recoveries, last := outcomes(); recoveries != 0 || !errors.Is(last, errFull) {
		t.Fatalf("while failing: %d recoveries heard, last %v; want none, and %v", recoveries, last, errFull)
	}
	if n := len(inBolt()); n != 0 {
		t.Fatalf("%d events in bbolt while its moves fail", n)
	}
	if n := s.UnmovedEvents(); n != 30 {
		t.Fatalf("UnmovedEvents %d while failing, want the 30 acknowledged", n)
	}
	if st, err := s.EventStats(ctx); err != nil || st.Pending != 30 {
		t.Fatalf("stats while failing: %+v %v, want 30 pending", st, err)
	}

	broken.Store(false)
	eventually("the 30 acknowledged events in bbolt", func() bool { return len(inBolt()) == 30 })
	eventually("the recovery heard", func() bool { _, r, last := outcomes(); return r == 1 && last == nil })
	ingest("b", 5) // moves after the recovery are not reported
	eventually("all 35 events in bbolt", func() bool { return len(inBolt()) == 35 })
	for id, n := range inBolt() {
		if n != 1 {
			t.Errorf("%s in bbolt %d times", id, n)
		}
	}
	if _, recoveries, last := outcomes(); recoveries != 1 || last != nil {
		t.Errorf("after recovery: %d recoveries heard, last %v; want one, nil", recoveries, last)
	}
	// Seen in bbolt a moment before the queue lets go of them.
	eventually("nothing left unmoved", func() bool { return s.UnmovedEvents() == 0 })
}
