package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/postgres/pgtest"
)

// TestSweepInChunksOnSeveralNodes: more rows than one sweep transaction
// visits are all swept, in several transactions, exactly the right ones,
// exactly once when two nodes sweep at the same time; the sent counter
// agrees with the rows left and a swept key is still taken.
func TestSweepInChunksOnSeveralNodes(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	var nodes []*Store
	for _, id := range []string{"n1", "n2"} {
		s, err := Open(ctx, url, Options{NodeID: id, DedupeTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes = append(nodes, s)
	}
	s := nodes[0]
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := sweepChunk*2 + 17
	old := n - 100 // the last 100 are recent
	cutoff := start.Add(time.Duration(old) * time.Second)
	// Row i was received (created, sent) at start+i s; every tenth event is
	// pending and every seventh failed; every tenth action pending, every
	// seventh failed.
	if _, err := s.pool.Exec(ctx, `INSERT INTO events (seq, part, received_at, processed, error, body)
		SELECT i, 0, $1::timestamptz + (i - 1) * interval '1 second', (i - 1) % 10 <> 0,
			CASE WHEN (i - 1) % 10 <> 0 AND (i - 1) % 7 = 0 THEN 'boom' END, convert_to(json_build_object('seq', i, 'type', 'contact_add')::text, 'UTF8')
		FROM generate_series(1, $2::int) i`, start, n); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE counters SET n = $1 WHERE name = 'event_seq'`, n); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO outbox (id, key, status, due_at, urgent, body)
		SELECT i, convert_to('k' || i, 'UTF8'), st, at, false, convert_to(json_build_object('key', 'k' || i, 'kind', 'staff_message',
			'due_at', at, 'created_at', at, 'status', st, 'sent_at', CASE WHEN st = 'sent' THEN at END, 'payload', '{}'::json)::text, 'UTF8')
		FROM (SELECT i, $1::timestamptz + (i - 1) * interval '1 second' AS at,
			CASE WHEN (i - 1) % 10 = 0 THEN 'pending' WHEN (i - 1) % 7 = 0 THEN 'failed' ELSE 'sent' END AS st
			FROM generate_series(1, $2::int) i) r`, start, n); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `SELECT setval('outbox_id', $1)`, n); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO counters (name, slot, n) SELECT 'outbox_' || status, 0, count(*) FROM outbox WHERE status IN ('sent', 'failed') GROUP BY status`); err != nil {
		t.Fatal(err)
	}
	wantEvents, wantActions := 0, 0
	for i := 0; i < old; i++ {
		if i%10 != 0 && i%7 != 0 {
			wantEvents++
			wantActions++
		}
	}

	var wg sync.WaitGroup
	stats := make([]bot.SweepStats, len(nodes))
	errs := make([]error, len(nodes))
	for i, node := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i], errs[i] = node.Sweep(ctx, cutoff)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A node that found the other sweeping did nothing; a node that came
	// after it finds nothing left. Either way each row is swept once.
	if got := stats[0].Events + stats[1].Events; got != wantEvents {
		t.Fatalf("swept %d events (%+v), want %d", got, stats, wantEvents)
	}
	if got := stats[0].Actions + stats[1].Actions; got != wantActions {
		t.Fatalf("swept %d actions (%+v), want %d", got, stats, wantActions)
	}
	if stats[0].Transactions+stats[1].Transactions < 4 {
		t.Fatalf("sweep took %+v transactions, want several short ones", stats)
	}

	evs, err := s.Events(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n-wantEvents {
		t.Fatalf("%d events left, want %d", len(evs), n-wantEvents)
	}
	for _, ev := range evs {
		if i := int(ev.Seq - 1); i < old && i%10 != 0 && i%7 != 0 {
			t.Fatalf("processed old event %d left behind", ev.Seq)
		}
	}
	acts, err := s.Actions(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(acts) != n-wantActions {
		t.Fatalf("%d actions listed, want %d", len(acts), n-wantActions)
	}
	var sent int
	for _, a := range acts {
		if i := int(a.ID - 1); i < old && a.Status == bot.ActionSent {
			t.Fatalf("old sent action %d left behind", a.ID)
		}
		if a.Status == bot.ActionSent {
			sent++
		}
	}
	ob, err := s.OutboxStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ob.Sent != sent {
		t.Fatalf("sent counter %d, %d sent actions stored", ob.Sent, sent)
	}
	// k2 (row 1) was sent before cutoff and swept: its key is still taken,
	// on either node, and the stub is no action to read or retry.
	if err := nodes[1].Update(ctx, func(tx bot.Tx) error {
		a, _ := bot.NewAction(bot.ActionStaffMessage, "k2", bot.StaffMessage{Text: "again"})
		dup, err := tx.Enqueue(a)
		if err == nil && !dup {
			t.Error("a swept action's key was enqueued again: it would be sent twice")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Action(ctx, 2); err == nil {
		t.Error("a swept action can still be read")
	}
	if _, err := s.RetryAction(ctx, 2, time.Now()); err == nil {
		t.Error("a swept action can be retried")
	}
	if err := s.MarkSent(ctx, 2, time.Now(), "ok"); err == nil {
		t.Error("a swept action can be marked sent")
	}
}
