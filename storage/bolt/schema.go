package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"github.com/wecombot/wecombot/bot"
)

// The file's own tables. The key-value space's buckets are registered in
// bot.Buckets (bot/buckets.go) and stored as kvPrefix+name.
var (
	bucketEvents     = []byte("events")      // seq BE → Event JSON
	bucketPending    = []byte("pending")     // seq BE → received unix-nano BE (unprocessed events only)
	bucketFailed     = []byte("failed")      // seq BE → error text (events recorded as failed)
	bucketDedupe     = []byte("dedupe")      // dedupe key → unix-nano BE ‖ seq BE
	bucketMembers    = []byte("members")     // external_userid → Member JSON
	bucketOutbox     = []byte("outbox")      // id BE → action body JSON (fixed at enqueue; actionrecord.go)
	bucketOutboxKeys = []byte("outbox_keys") // action key → id BE (kept after the action is swept: idempotency)
	bucketOutboxDue  = []byte("outbox_due")  // due unix-nano BE ‖ id BE → nil (pending only)
	// outbox_urgent indexes the pending actions that must go out by a
	// deadline (welcome codes: 20 s) the same way; DueActions serves them
	// first, so a backlog of other actions never makes a welcome miss its window.
	bucketOutboxUrgent = []byte("outbox_urgent")
	// outbox_status holds what delivery changes of each action (status, due
	// time, attempts…) in a compact binary record (actionrecord.go).
	bucketOutboxStatus = []byte("outbox_status") // id BE → status record
	bucketMeta         = []byte("meta")          // counter name → int64 BE; schema_version, member_index_version → uint64 BE
	// The member index (memberindex.go), derived from members: rebuilt at
	// open when its version differs, never exported.
	bucketTallies = []byte("member_tallies") // tally key → int64 BE
	bucketTerms   = []byte("member_terms")   // term NUL external_userid → nil
	// The member bitmaps (memberbits.go), part of the member index.
	bucketNums   = []byte("member_nums") // external_userid → member number (uint32 BE)
	bucketNumIDs = []byte("num_members") // member number (uint32 BE) → external_userid
	bucketBits   = []byte("member_bits") // bit term NUL high 16 bits of the number (BE) → roaring bitmap of the low 16 bits
	// A member's history (history.go), kept with the records and swept with them.
	bucketMemberEvents  = []byte("member_events")  // external_userid NUL seq BE → nil
	bucketMemberActions = []byte("member_actions") // external_userid NUL action id BE → nil
	kvPrefix            = "kv:"

	tables = [][]byte{bucketEvents, bucketPending, bucketFailed, bucketDedupe, bucketMembers,
		bucketOutbox, bucketOutboxStatus, bucketOutboxKeys, bucketOutboxDue, bucketOutboxUrgent, bucketMeta, bucketTallies, bucketTerms,
		bucketNums, bucketNumIDs, bucketBits,
		bucketMemberEvents, bucketMemberActions}
)

// Counter names in the meta bucket.
var (
	ctrPending   = []byte("events_pending")
	ctrFailed    = []byte("events_failed")
	ctrMembers   = []byte("members")
	ctrObPending = []byte("outbox_pending")
	ctrObSent    = []byte("outbox_sent")
	ctrObFailed  = []byte("outbox_failed")
	ctrObUnknown = []byte("outbox_possibly_delivered")
	metaVersion  = []byte("schema_version")
	// metaIndexVersion is the bot.MemberIndexVersion the member index was built by.
	metaIndexVersion = []byte("member_index_version")
)

// SchemaVersion is the layout this build reads and writes. Files written
// before versions existed have none and count as version 0.
var SchemaVersion = len(migrations)

// migration upgrades a file by one version. It runs at Open in bounded
// transactions: step is called until it reports done, each call in its own
// transaction, and the version is bumped in the transaction of the last
// call, so a crash mid-way re-runs the migration from its start (steps are
// idempotent).
type migration struct {
	what string
	step func(tx *bbolt.Tx, from []byte) (next []byte, done bool, err error)
}

// migrations[i] takes a file from version i to i+1. Append only.
var migrations = []migration{
	{"record the schema version (files written before had none)", func(*bbolt.Tx, []byte) ([]byte, bool, error) { return nil, true, nil }},
	{"typed action purpose: pending follow-ups (keys followup|…) get purpose followup", migrateFollowUpPurpose},
	{"member history: events and actions indexed by member (member_events, member_actions)", migrateMemberHistory},
	{"outbox status records: each action's delivery status beside its body (outbox_status)", migrateActionStatus},
}

// migrateChunk bounds how many records one migration transaction touches.
const migrateChunk = 5000

// migrateFollowUpPurpose gives pending actions that the engine enqueued as
// follow-ups before actions had a purpose (recognised then by their key
// prefix) the purpose the outbox guard now checks. Sent and failed actions
// are history and keep their JSON as written.
func migrateFollowUpPurpose(tx *bbolt.Tx, from []byte) ([]byte, bool, error) {
	ob := tx.Bucket(bucketOutbox)
	c := tx.Bucket(bucketOutboxDue).Cursor()
	k, _ := c.First()
	if from != nil {
		k, _ = c.Seek(from)
	}
	for n := 0; k != nil; k, _ = c.Next() {
		if n == migrateChunk {
			return bytes.Clone(k), false, nil
		}
		n++
		id := k[8:]
		raw := ob.Get(id)
		if raw == nil {
			continue
		}
		var a bot.Action
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, false, fmt.Errorf("decode action %d: %w", binary.BigEndian.Uint64(id), err)
		}
		if a.Purpose != "" || !strings.HasPrefix(a.Key, "followup|") {
			continue
		}
		a.Purpose = bot.PurposeFollowUp
		out, err := json.Marshal(&a)
		if err != nil {
			return nil, false, err
		}
		if err := ob.Put(bytes.Clone(id), out); err != nil {
			return nil, false, err
		}
	}
	return nil, true, nil
}

func schemaVersion(tx *bbolt.Tx) int {
	m := tx.Bucket(bucketMeta)
	if m == nil {
		return 0
	}
	v := m.Get(metaVersion)
	if len(v) != 8 {
		return 0
	}
	return int(binary.BigEndian.Uint64(v))
}

// errNewerSchema explains a file written by a newer wecombot.
func errNewerSchema(path string, v int) error {
	return fmt.Errorf("%s has schema version %d, newer than this wecombot's %d: run the newer wecombot, or restore a backup made by this version (docs/deploy.md)", path, v, SchemaVersion)
}

// migrate creates the tables and brings the file to SchemaVersion.
func (s *Store) migrate() error {
	// A newer file is refused before anything is written to it.
	from := s.SchemaVersion()
	if from > SchemaVersion {
		return errNewerSchema(s.path, from)
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, b := range tables {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for v := from; v < SchemaVersion; v++ {
		m := migrations[v]
		var pos []byte
		for done := false; !done; {
			if err := s.db.Update(func(tx *bbolt.Tx) error {
				next, d, err := m.step(tx, pos)
				if err != nil {
					return err
				}
				pos, done = next, d
				if d {
					return tx.Bucket(bucketMeta).Put(metaVersion, u64(uint64(v+1)))
				}
				return nil
			}); err != nil {
				return fmt.Errorf("migrate to schema version %d (%s): %w", v+1, m.what, err)
			}
		}
		s.migrated = append(s.migrated, fmt.Sprintf("%d: %s", v+1, m.what))
	}
	return nil
}
