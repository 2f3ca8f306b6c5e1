package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/storagetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, func(t *testing.T, clock *storagetest.Clock, ttl time.Duration) bot.Store {
		s, err := Open(filepath.Join(t.TempDir(), "t.db"), Options{Now: clock.Now, DedupeTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestReopenKeepsEverything(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ev := bot.Event{Type: bot.EventContactAdd, DedupeKey: "k", ExternalUserID: "wm1"}
	if _, err := s.AppendEvent(ctx, &ev); err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx bot.Tx) error {
		a, _ := bot.NewAction(bot.ActionWelcome, "w", bot.WelcomeMessage{WelcomeCode: "c"})
		if _, err := tx.Enqueue(a); err != nil {
			return err
		}
		return tx.PutMember(&bot.Member{ExternalUserID: "wm1", Stage: bot.StageAware})
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if dup, _ := s.AppendEvent(ctx, &bot.Event{DedupeKey: "k"}); !dup {
		t.Fatal("dedupe key lost across reopen")
	}
	if evs, _ := s.PendingEvents(ctx, 0, 10); len(evs) != 1 {
		t.Fatal("pending event lost")
	}
	if st, _ := s.OutboxStats(ctx); st.Pending != 1 {
		t.Fatal("owed action lost")
	}
	_ = s.View(ctx, func(tx bot.Tx) error {
		if m, err := tx.Member("wm1"); err != nil || m.Stage != bot.StageAware {
			t.Errorf("member lost: %v", err)
		}
		return nil
	})
}

func TestSecondOpenFailsFast(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	_, err = Open(path, Options{OpenTimeout: 200 * time.Millisecond})
	if !errors.Is(err, bot.ErrStoreLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second open: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestGarbageFileIsAClearError(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "not a usable wecombot database") || errors.Is(err, bot.ErrStoreLocked) {
		t.Fatalf("garbage file: %v", err)
	}
}

func TestBackupOpensWithTheData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "t.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if _, err := s.AppendEvent(ctx, &bot.Event{DedupeKey: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	n, err := s.Backup(&buf)
	if err != nil || n == 0 {
		t.Fatalf("backup %d %v", n, err)
	}
	path := filepath.Join(dir, "restored.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if st, _ := r.EventStats(ctx); st.LastSeq != 10 {
		t.Fatalf("restored stats %+v", st)
	}
}

func benchStore(b *testing.B, noSync bool) *Store {
	s, err := Open(filepath.Join(b.TempDir(), "b.db"), Options{NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkAppendEvent is one durable append at a time: the fsync cost.
func BenchmarkAppendEvent(b *testing.B) {
	s := benchStore(b, false)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev := bot.Event{Type: bot.EventContactAdd, DedupeKey: fmt.Sprint("k", i), ExternalUserID: "wm_bench"}
		if _, err := s.AppendEvent(ctx, &ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkAppendEventParallel shows group commit: concurrent appends share fsyncs.
func BenchmarkAppendEventParallel(b *testing.B) {
	s := benchStore(b, false)
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ev := bot.Event{Type: bot.EventContactAdd, DedupeKey: fmt.Sprint("k", n.Add(1)), ExternalUserID: "wm_bench"}
			if _, err := s.AppendEvent(ctx, &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}

// BenchmarkMarkProcessedAndEnqueue is the engine's commit: processed mark + one action.
func BenchmarkMarkProcessedAndEnqueue(b *testing.B) {
	s := benchStore(b, false)
	ctx := context.Background()
	seqs := make([]uint64, 0, 1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if len(seqs) == 0 {
			b.StopTimer()
			for j := 0; j < 1024; j++ {
				ev := bot.Event{Type: bot.EventContactAdd}
				if _, err := s.AppendEvent(ctx, &ev); err != nil {
					b.Fatal(err)
				}
				seqs = append(seqs, ev.Seq)
			}
			b.StartTimer()
		}
		seq := seqs[0]
		seqs = seqs[1:]
		err := s.Update(ctx, func(tx bot.Tx) error {
			if _, err := tx.MarkProcessed(seq, ""); err != nil {
				return err
			}
			a, _ := bot.NewAction(bot.ActionWelcome, fmt.Sprint("w", i), bot.WelcomeMessage{WelcomeCode: "c"})
			_, err := tx.Enqueue(a)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAttemptAndOutcome is the outbox's part of deliveries — the
// durable attempt record before each send and the outcome after it
// (BeginAttempt + MarkSent) — from concurrent senders sharing group
// commits, without fsync (the CPU and page writes of the status writes,
// not the disk): storagetest.BenchAttemptAndOutcome.
func BenchmarkAttemptAndOutcome(b *testing.B) {
	storagetest.BenchAttemptAndOutcome(b, benchStore(b, true), 1000)
}

// TestAppendOnlyTablesAreDense: the event log and the outbox bodies are
// appended in key order and never rewritten, so their pages are written
// nearly full (bbolt's default split leaves them half empty): the disk an
// add takes.
func TestAppendOnlyTablesAreDense(t *testing.T) {
	t.Parallel()
	s, err := Open(filepath.Join(t.TempDir(), "dense.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	text := strings.Repeat("欢迎加入！新人专享券已发放。", 3)
	for i := range 1500 {
		ev := &bot.Event{Type: bot.EventContactAdd, Source: bot.SourceWeCom, ExternalUserID: fmt.Sprint("wm", i), DedupeKey: fmt.Sprint("add|", i)}
		if _, err := s.AppendEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
		err := s.Batch(ctx, func(tx bot.Tx) error {
			a, _ := bot.NewAction(bot.ActionWelcome, fmt.Sprint("welcome|", i), bot.WelcomeMessage{WelcomeCode: fmt.Sprint("wc", i), Text: text})
			a.MemberID = fmt.Sprint("wm", i)
			_, err := tx.Enqueue(a)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	err = s.db.View(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketEvents, bucketOutbox} {
			st := tx.Bucket(name).Stats()
			if fill := float64(st.LeafInuse) / float64(st.LeafAlloc); fill < 0.8 {
				t.Errorf("%s: leaf pages %.0f%% full, want ≥ 80%%", name, 100*fill)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
