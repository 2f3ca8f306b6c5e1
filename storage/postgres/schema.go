package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/storage/actionrec"
)

// migrations are applied in order, each once, inside one transaction under
// an advisory lock (so nodes starting together migrate once). Never edit a
// released migration: append a new one.
var migrations = []string{
	// 1: the event log, members, outbox, key-value space and the node coordination tables.
	`
CREATE TABLE counters (
	name text NOT NULL,
	slot int NOT NULL DEFAULT 0,
	n bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (name, slot)
);
-- event_seq is taken under its row lock by each appending transaction, so
-- sequence numbers are assigned in commit order without gaps.
INSERT INTO counters (name, slot, n) VALUES ('event_seq', 0, 0);

CREATE TABLE events (
	seq bigint PRIMARY KEY,
	part int NOT NULL,
	received_at timestamptz NOT NULL,
	processed boolean NOT NULL DEFAULT false,
	error text,
	body bytea NOT NULL
);
CREATE INDEX events_pending ON events (seq) WHERE NOT processed;
CREATE INDEX events_pending_part ON events (part, seq) WHERE NOT processed;
CREATE INDEX events_failed ON events (seq) WHERE error IS NOT NULL;

CREATE TABLE dedupe (
	key bytea PRIMARY KEY,
	at timestamptz NOT NULL
);
CREATE INDEX dedupe_at ON dedupe (at);

CREATE TABLE members (
	id text COLLATE "C" PRIMARY KEY,
	body bytea NOT NULL
);

CREATE SEQUENCE outbox_id;
CREATE TABLE outbox (
	id bigint PRIMARY KEY,
	key bytea NOT NULL UNIQUE,
	status text NOT NULL,
	due_at timestamptz NOT NULL,
	urgent boolean NOT NULL,
	lease_owner text,
	lease_until timestamptz,
	body bytea NOT NULL
);
CREATE INDEX outbox_due ON outbox (due_at, id) WHERE status = 'pending';
-- Claim order: actions with a deadline (welcome codes) first, then by due time.
CREATE INDEX outbox_claim ON outbox (urgent DESC, due_at, id) WHERE status = 'pending';

CREATE TABLE kv (
	bucket bytea NOT NULL,
	key bytea NOT NULL,
	value bytea NOT NULL,
	PRIMARY KEY (bucket, key)
);

CREATE TABLE nodes (
	id text PRIMARY KEY,
	started_at timestamptz NOT NULL DEFAULT now(),
	seen_at timestamptz NOT NULL
);
CREATE TABLE partitions (
	p int PRIMARY KEY,
	owner text,
	lease_until timestamptz
);
INSERT INTO partitions (p) SELECT generate_series(0, 63);
`,
	// 2: copies from a bbolt file (wecombot migrate --from bolt:PATH): resumable, one source per database.
	`
CREATE TABLE imports (
	source text PRIMARY KEY,
	started_at timestamptz NOT NULL DEFAULT now(),
	finished_at timestamptz
);
`,
	// 3: the retention sweep (Store.Sweep). A swept action keeps a stub row
	// (status 'swept', empty body) so its key stays taken and Enqueue stays
	// idempotent; the sweep finds sent actions through this index.
	`
CREATE INDEX outbox_sent ON outbox (id) WHERE status = 'sent';
`,
	// 4: the member index (bot.MemberIndex), kept by PutMember: tallies
	// spread over slots (by member) so concurrent writers rarely touch one
	// row, and the search index term → members. Derived from members:
	// built at open when member_index_version differs (memberindex.go).
	`
CREATE TABLE member_tallies (
	key text COLLATE "C" NOT NULL,
	slot int NOT NULL,
	n bigint NOT NULL,
	PRIMARY KEY (key, slot)
);
CREATE TABLE member_terms (
	term text COLLATE "C" NOT NULL,
	member text COLLATE "C" NOT NULL,
	PRIMARY KEY (term, member)
);
INSERT INTO counters (name, slot, n) VALUES ('member_index_version', 0, 0);
`,
	// 5: a member's history: her events (member_events, deleted with the
	// event by the sweep) and actions (outbox.member, cleared when the
	// sweep stubs the action), so her detail reads her own rows.
	`
CREATE TABLE member_events (
	member text COLLATE "C" NOT NULL,
	seq bigint NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
	PRIMARY KEY (member, seq)
);
CREATE INDEX member_events_seq ON member_events (seq);
INSERT INTO member_events (member, seq)
	SELECT DISTINCT u.m, e.seq FROM events e,
		LATERAL (SELECT convert_from(e.body, 'UTF8')::jsonb AS j) b,
		LATERAL (SELECT b.j->>'external_user_id' UNION SELECT jsonb_array_elements_text(coalesce(b.j->'mem_change_list', '[]'::jsonb))) AS u(m)
	WHERE u.m IS NOT NULL AND u.m <> '';
ALTER TABLE outbox ADD COLUMN member text COLLATE "C";
UPDATE outbox SET member = nullif(convert_from(body, 'UTF8')::jsonb->>'member_id', '') WHERE status <> 'swept';
CREATE INDEX outbox_member ON outbox (member, id) WHERE member IS NOT NULL;
`,
	// 6: each action's delivery status in a compact record beside its body
	// (storage/actionrec): attempts and outcomes write only state and the
	// index columns, never the body. The rows written before are split by
	// splitActions (goSteps) in the same transaction. A NULL state means
	// the body holds the whole action, status included (a swept stub, or a
	// row an older node wrote), and is read as such.
	`
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS state bytea;
`,
	// 7: the member bitmaps (bot.MemberBits), part of the member index:
	// members numbered from a sequence, and per bit term one row per
	// 16,384 numbers and slot (number mod 16, so members numbered one
	// after the other — written together — update different rows), a
	// bit(1024) of the numbers there. Built at open with the index.
	`
CREATE SEQUENCE member_num;
CREATE TABLE member_nums (
	id text COLLATE "C" PRIMARY KEY,
	num int NOT NULL UNIQUE
);
CREATE TABLE member_bits (
	term text COLLATE "C" NOT NULL,
	chunk int NOT NULL,
	bits bit(1024) NOT NULL,
	PRIMARY KEY (term, chunk)
);
`,
}

// goSteps are the data changes of a migration that SQL cannot make: run
// after migrations[v-1], in its transaction.
var goSteps = map[int]func(ctx context.Context, tx pgx.Tx) error{6: splitActions}

// splitActions gives every action stored as one JSON body (before schema
// version 6) its status record and a body without the status, 1,000 rows
// per statement.
func splitActions(ctx context.Context, tx pgx.Tx) error {
	for after := int64(0); ; {
		rows, err := tx.Query(ctx, `SELECT id, body FROM outbox WHERE id > $1 AND state IS NULL AND status <> 'swept' ORDER BY id LIMIT 1000`, after)
		if err != nil {
			return err
		}
		var ids []int64
		var bodies, states [][]byte
		for rows.Next() {
			var id int64
			var whole []byte
			if err := rows.Scan(&id, &whole); err != nil {
				rows.Close()
				return err
			}
			var a bot.Action
			if err := json.Unmarshal(whole, &a); err != nil {
				rows.Close()
				return fmt.Errorf("decode action %d: %w", id, err)
			}
			body, err := actionrec.Body(&a)
			if err != nil {
				rows.Close()
				return err
			}
			ids, bodies, states = append(ids, id), append(bodies, body), append(states, actionrec.Status(&a, !a.NotAfter.IsZero()))
			after = id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox o SET body = u.body, state = u.state
			FROM unnest($1::bigint[], $2::bytea[], $3::bytea[]) AS u(id, body, state) WHERE o.id = u.id`, ids, bodies, states); err != nil {
			return err
		}
	}
}

// SchemaVersion is the schema this build writes.
var SchemaVersion = len(migrations)

// migrationLock is the advisory lock key taken while migrating.
const migrationLock = 0x77656362 // "wecb"

// Migrate brings the schema up to SchemaVersion and returns the versions
// before and after. A database newer than this build is refused.
func Migrate(ctx context.Context, conn interface {
	Begin(context.Context) (pgx.Tx, error)
}) (from, to int, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return 0, 0, err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&from); err != nil {
		return 0, 0, err
	}
	if from > len(migrations) {
		return from, from, fmt.Errorf("the database's schema is version %d, newer than this wecombot (%d): upgrade wecombot", from, len(migrations))
	}
	for v := from + 1; v <= len(migrations); v++ {
		if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
			return from, v - 1, fmt.Errorf("schema migration %d: %w", v, err)
		}
		if step := goSteps[v]; step != nil {
			if err := step(ctx, tx); err != nil {
				return from, v - 1, fmt.Errorf("schema migration %d: %w", v, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v); err != nil {
			return from, v - 1, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return from, from, err
	}
	return from, len(migrations), nil
}

// MigrateURL connects to url, migrates the schema and disconnects
// (`wecombot migrate`).
func MigrateURL(ctx context.Context, url string) (from, to int, err error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, url)
	if err != nil {
		return 0, 0, fmt.Errorf("connect to PostgreSQL: %v", redactErr(err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return Migrate(ctx, conn)
}

// SchemaVersionAt connects to url and returns the schema version there (0:
// none yet), for `wecombot doctor`.
func SchemaVersionAt(ctx context.Context, url string) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, url)
	if err != nil {
		return 0, fmt.Errorf("connect to PostgreSQL: %v", redactErr(err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(cctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err = conn.QueryRow(cctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}
