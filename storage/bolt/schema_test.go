package bolt

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/storagetest"
)

// unpack writes testdata/name (gzipped) to a temp file and returns its path.
func unpack(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "wecombot.db")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testdata/v0.db.gz was written by the store as it was before schema
// versions (main at 619f1ab): two events (one processed), a member, a
// check-in day, a pending follow-up (key followup|ev1|0, no purpose) and a
// sent welcome. Opening it migrates it to SchemaVersion and keeps everything.
func TestOpenMigratesAFileWithoutVersion(t *testing.T) {
	t.Parallel()
	path := unpack(t, "v0.db.gz")
	ctx := context.Background()

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a version 0 file: %v", err)
	}
	if v := ro.SchemaVersion(); v != 0 {
		t.Fatalf("old file reports version %d, want 0", v)
	}
	ro.Close()

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v := s.SchemaVersion(); v != SchemaVersion {
		t.Fatalf("after open: version %d, want %d", v, SchemaVersion)
	}
	// Every schema migration, then the member index built from its member.
	if got := s.Migrated(); len(got) != SchemaVersion+1 || !strings.Contains(got[SchemaVersion], "member index version") {
		t.Fatalf("migrations run: %q, want all %d and the member index", got, SchemaVersion)
	}
	storagetest.CheckMemberIndex(t, s)
	// The member history indexes what was stored before it existed.
	if evs, err := s.MemberEvents(ctx, "wm1", 10); err != nil || len(evs) != 2 {
		t.Errorf("wm1's events after the migration: %d %v", len(evs), err)
	}
	if acts, err := s.MemberActions(ctx, "wm1", 10); err != nil || len(acts) != 2 {
		t.Errorf("wm1's actions after the migration: %d %v", len(acts), err)
	}
	acts, err := s.Actions(ctx, 0, 10)
	if err != nil || len(acts) != 2 {
		t.Fatalf("actions %v %v", acts, err)
	}
	for _, a := range acts {
		want := bot.ActionPurpose("")
		if a.Key == "followup|ev1|0" {
			want = bot.PurposeFollowUp
		}
		if a.Purpose != want {
			t.Errorf("action %s: purpose %q, want %q", a.Key, a.Purpose, want)
		}
	}
	es, _ := s.EventStats(ctx)
	ob, _ := s.OutboxStats(ctx)
	if es.LastSeq != 2 || es.Pending != 1 || ob.Pending != 1 || ob.Sent != 1 {
		t.Errorf("stats changed by the migration: events %+v outbox %+v", es, ob)
	}
	err = s.View(ctx, func(tx bot.Tx) error {
		if m, err := tx.Member("wm1"); err != nil || m.Name != "老客户" {
			t.Errorf("member: %+v %v", m, err)
		}
		if v, err := tx.Get(bot.BucketCheckinDays, "c1|wm1|2026-11-20"); err != nil || !strings.Contains(string(v), "2026-11-20") {
			t.Errorf("check-in day: %q %v", v, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Opening again runs nothing.
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Migrated(); len(got) != 0 {
		t.Fatalf("second open migrated again: %q", got)
	}
}

func TestNewFileHasCurrentVersion(t *testing.T) {
	t.Parallel()
	s, err := Open(filepath.Join(t.TempDir(), "new.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v := s.SchemaVersion(); v != SchemaVersion {
		t.Fatalf("new file: version %d, want %d", v, SchemaVersion)
	}
}

// A file from a newer wecombot is refused with a message naming both
// versions, and left as it was.
func TestNewerSchemaIsRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "newer.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaVersion, u64(uint64(SchemaVersion+1)))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, _ := os.ReadFile(path)
	for _, ro := range []bool{false, true} {
		_, err := Open(path, Options{ReadOnly: ro})
		if err == nil || !strings.Contains(err.Error(), "newer than this wecombot") {
			t.Fatalf("read-only=%v: err = %v, want a refusal", ro, err)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("refused file was changed")
	}
}

// The follow-up migration works in bounded transactions: more pending
// follow-ups than one chunk all get their purpose.
func TestFollowUpMigrationInChunks(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "many.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	n := migrateChunk*2 + 3
	err = s.Update(context.Background(), func(tx bot.Tx) error {
		for i := range n {
			a, _ := bot.NewAction(bot.ActionMassSend, "followup|e|"+string(rune('a'+i%26))+strings.Repeat("x", i/26), bot.MassSend{})
			if _, err := tx.Enqueue(a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The actions were enqueued without a purpose, as the engine did before
	// purposes: make it a version-1 file so the purpose migration runs.
	s = reopenAfter(t, s, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaVersion, u64(1))
	})
	acts, err := s.Actions(context.Background(), 0, n+1)
	if err != nil || len(acts) != n {
		t.Fatalf("%d actions, %v", len(acts), err)
	}
	for _, a := range acts {
		if a.Purpose != bot.PurposeFollowUp {
			t.Fatalf("action %d %s not migrated", a.ID, a.Key)
		}
	}
}

// TestOpenRebuildsAStaleMemberIndex: a file whose member index was built
// by another bot.MemberIndexVersion (here: version 0 and a stray tally)
// gets it rebuilt from the members at open, in chunks.
func TestOpenRebuildsAStaleMemberIndex(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "wecombot.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n := migrateChunk + 7
	if err := s.Update(ctx, func(tx bot.Tx) error {
		for i := range n {
			m := &bot.Member{ExternalUserID: fmt.Sprintf("wm%05d", i), Stage: bot.StageAware, Tags: []string{fmt.Sprint("t", i%3)}}
			if err := tx.PutMember(m); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s = reopenAfter(t, s, func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put(metaIndexVersion, u64(0)); err != nil {
			return err
		}
		return tx.Bucket(bucketTallies).Put([]byte("stray"), i64(5))
	})
	if got := s.Migrated(); len(got) != 1 || !strings.Contains(got[0], fmt.Sprintf("from %d members", n)) {
		t.Fatalf("migrated %q", got)
	}
	storagetest.CheckMemberIndex(t, s)
}

// reopenAfter changes s's file with change (making it look written by an
// older wecombot), closes it and opens it again (closed when t ends).
func reopenAfter(t *testing.T, s *Store, change func(*bbolt.Tx) error) *Store {
	t.Helper()
	if err := s.db.Update(change); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := Open(s.Path(), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStatusMigrationSplitsActions: a version-3 file keeps each action as
// one JSON record; opening it splits every action (more than one chunk,
// the first split already by a run that died) into body and status
// records, keeping every field, and the outbox works on the result.
func TestStatusMigrationSplitsActions(t *testing.T) {
	t.Parallel()
	s, err := Open(filepath.Join(t.TempDir(), "v3.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n := migrateChunk + 5
	start := time.Unix(1_700_000_000, 0).UTC()
	var want []bot.Action
	// Written the way schema version 3 stored them.
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		ob := tx.Bucket(bucketOutbox)
		for i := range n {
			id, _ := ob.NextSequence()
			a, _ := bot.NewAction(bot.ActionWelcome, fmt.Sprintf("welcome|%d", i), bot.WelcomeMessage{WelcomeCode: fmt.Sprint("wc", i), Text: "欢迎"})
			a.ID, a.MemberID, a.CreatedAt, a.DueAt = id, fmt.Sprintf("wm%05d", i), start, start.Add(time.Duration(i)*time.Second)
			a.NotAfter = a.CreatedAt.Add(20 * time.Second)
			ctr := ctrObPending
			switch i % 4 {
			case 0:
				a.Status, a.Attempts, a.SentAt, a.Detail, ctr = bot.ActionSent, 1, a.DueAt.Add(time.Second), "msgid", ctrObSent
			case 1:
				a.Status, a.Attempts, a.LastError, ctr = bot.ActionFailed, 3, "invalid welcome code", ctrObFailed
			case 2:
				a.AttemptAt, a.Attempts, a.LastError = a.DueAt, 1, "timeout" // pending, an attempt open
			}
			raw, err := json.Marshal(a)
			if err != nil {
				return err
			}
			if err := ob.Put(u64(id), raw); err != nil {
				return err
			}
			if err := tx.Bucket(bucketOutboxStatus).Delete(u64(id)); err != nil {
				return err
			}
			if a.Status == bot.ActionPending {
				if err := putDue(tx, a.DueAt, true, id); err != nil {
					return err
				}
			}
			if err := addCounter(tx, ctr, 1); err != nil {
				return err
			}
			var back bot.Action // as the JSON record reads back
			if err := json.Unmarshal(raw, &back); err != nil {
				return err
			}
			want = append(want, back)
		}
		// A run that died after its first chunk committed: the next open
		// starts the migration over and must not split those again.
		if _, done, err := migrateActionStatus(tx, nil); err != nil || done {
			return fmt.Errorf("first chunk: done %v, %v", done, err)
		}
		return tx.Bucket(bucketMeta).Put(metaVersion, u64(3))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Opened read-only (backup, `migrate --from bolt`) it is not migrated,
	// and reads the same actions.
	ro, err := Open(s.Path(), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ro.Actions(ctx, 0, n+1); err != nil || len(got) != n || !reflect.DeepEqual(got[n-1], want[n-1]) || !reflect.DeepEqual(got[2], want[2]) {
		t.Fatalf("read-only v3 file: %d actions, %v", len(got), err)
	}
	ro.Close()
	s, err = Open(s.Path(), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Migrated(); len(got) != 1 || !strings.Contains(got[0], "outbox status") {
		t.Fatalf("migrations run: %q, want the status split", got)
	}
	got, err := s.Actions(ctx, 0, n+1)
	if err != nil || len(got) != n {
		t.Fatalf("%d actions, %v", len(got), err)
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("action %d after the migration:\n%+v\nwant\n%+v", i+1, got[i], want[i])
		}
	}
	if err := s.db.View(func(tx *bbolt.Tx) error {
		if k := tx.Bucket(bucketOutboxStatus).Stats().KeyN; k != n {
			t.Errorf("%d status records for %d actions", k, n)
		}
		_, v := tx.Bucket(bucketOutbox).Cursor().First()
		if bytes.Contains(v, []byte(`"status"`)) {
			t.Errorf("a body still holds the status: %s", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueActions(ctx, start.Add(24*time.Hour), n)
	if err != nil || len(due) != n/2 {
		t.Fatalf("%d due actions, want %d (%v)", len(due), n/2, err)
	}
	// The open attempt (i%4 == 2) makes the next one possibly delivered.
	a := due[0]
	if a.AttemptAt.IsZero() {
		a = due[1]
	}
	if err := s.BeginAttempt(ctx, a.ID, start.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(ctx, a.ID, start.Add(time.Hour), "msgid-2"); err != nil {
		t.Fatal(err)
	}
	after, err := s.Action(ctx, a.ID)
	if err != nil || after.Status != bot.ActionSent || !after.PossiblyDelivered || after.Attempts != 2 || after.Detail != "msgid-2" || !after.AttemptAt.IsZero() {
		t.Fatalf("after attempt and outcome: %+v %v", after, err)
	}
	if ob, _ := s.OutboxStats(ctx); ob.Pending != n/2-1 || ob.Sent != (n+3)/4+1 || ob.Failed != (n+2)/4 {
		t.Errorf("outbox stats %+v after the migration and one send", ob)
	}
}

// TestMemberBitsAcrossChunks: members numbered on both sides of a 65,536
// chunk boundary land in the right chunk's bitmap, move between terms
// there, and a rebuilt index numbers them again from 1.
func TestMemberBitsAcrossChunks(t *testing.T) {
	t.Parallel()
	s, err := Open(filepath.Join(t.TempDir(), "wecombot.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketNums).SetSequence(1<<16 - 3) }); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(stage bot.Stage) {
		t.Helper()
		if err := s.Update(ctx, func(tx bot.Tx) error {
			for i := range 6 {
				if err := tx.PutMember(&bot.Member{ExternalUserID: fmt.Sprintf("wm%d", i), Stage: stage, Tags: []string{fmt.Sprint("t", i%2)}}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(bot.StageAware)
	put(bot.StageLoyal)
	numbers := func(want string) {
		t.Helper()
		storagetest.CheckMemberIndex(t, s)
		_ = s.View(ctx, func(tx bot.Tx) error {
			all, _ := tx.(bot.MemberBits).TermBits(bot.BitAll)
			if got := fmt.Sprint(all.ToArray()); got != want {
				t.Errorf("numbers %s, want %s", got, want)
			}
			return nil
		})
	}
	numbers("[65534 65535 65536 65537 65538 65539]")
	s = reopenAfter(t, s, func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaIndexVersion, u64(1)) })
	numbers("[1 2 3 4 5 6]") // rebuilt
}
