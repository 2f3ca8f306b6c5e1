package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/wecombot/wecombot/bot"
)

// The member index (bot.MemberIndex) in member_tallies (summed over slots)
// and member_terms, changed by PutMember in the member's transaction.

// tallySlots spreads each tally over rows: a member's deltas go to the
// slot of her id, so concurrent SERIALIZABLE writers of different members
// rarely update one row (which would make one of them re-run).
const tallySlots = 16

// memberIndex returns the stored member's index entries: cached when fn
// read her in this transaction, else read and decoded.
func (t *pgTx) memberIndex(id string) (bot.MemberIndex, error) {
	if ix, ok := t.indexed[id]; ok {
		return ix, nil
	}
	var raw []byte
	err := t.row(`SELECT body FROM members WHERE id = $1`, []any{id}, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return bot.MemberIndex{}, nil
	}
	if err != nil {
		return bot.MemberIndex{}, err
	}
	var m bot.Member
	if err := json.Unmarshal(raw, &m); err != nil {
		return bot.MemberIndex{}, fmt.Errorf("decode member %s: %w", id, err)
	}
	return bot.IndexMember(&m), nil
}

func (t *pgTx) remember(m *bot.Member) {
	if !t.write {
		return
	}
	if t.indexed == nil {
		t.indexed = map[string]bot.MemberIndex{}
	}
	t.indexed[m.ExternalUserID] = bot.IndexMember(m)
}

// reindexMember applies the change from the stored member to m.
func (t *pgTx) reindexMember(m *bot.Member) error {
	old, err := t.memberIndex(m.ExternalUserID)
	if err != nil {
		return err
	}
	ix := bot.IndexMember(m)
	if err := applyIndexDelta(t, m.ExternalUserID, ix, old); err != nil {
		return err
	}
	if t.indexed == nil {
		t.indexed = map[string]bot.MemberIndex{}
	}
	t.indexed[m.ExternalUserID] = ix
	return nil
}

// applyIndexDelta writes the difference between two index entries of
// member id in one statement (one round trip): a member write that changes
// nothing indexed costs none. A member without a number gets the
// sequence's next (bits.go lays out member_bits).
func applyIndexDelta(t *pgTx, id string, ix, old bot.MemberIndex) error {
	tallies, removed, added := ix.Diff(old)
	bitsRemoved, bitsAdded := bot.SortedDiff(old.Bits, ix.Bits)
	if len(tallies) == 0 && len(removed) == 0 && len(added) == 0 && len(bitsRemoved) == 0 && len(bitsAdded) == 0 {
		return nil
	}
	keys := make([]string, 0, len(tallies))
	deltas := make([]int64, 0, len(tallies))
	for k, d := range tallies {
		keys = append(keys, k)
		deltas = append(deltas, d)
	}
	_, err := t.exec(`WITH
		t AS (INSERT INTO member_tallies (key, slot, n) SELECT k, $3, d FROM unnest($1::text[], $2::bigint[]) AS u(k, d)
			ON CONFLICT (key, slot) DO UPDATE SET n = member_tallies.n + EXCLUDED.n RETURNING 1),
		r AS (DELETE FROM member_terms WHERE member = $4 AND term = ANY($5::text[]) RETURNING 1),
		a AS (INSERT INTO member_terms (term, member) SELECT unnest($6::text[]), $4 ON CONFLICT DO NOTHING RETURNING 1),
		o AS (SELECT (SELECT num FROM member_nums WHERE id = $4) AS num),
		n AS (SELECT CASE WHEN o.num IS NULL AND cardinality($8::text[]) > 0 THEN nextval('member_num')::int ELSE o.num END AS num,
			o.num IS NULL AS new FROM o),
		ni AS (INSERT INTO member_nums (id, num) SELECT $4, n.num FROM n WHERE n.new AND n.num IS NOT NULL RETURNING 1),
		br AS (UPDATE member_bits b SET bits = b.bits & ~set_bit(B'0'::bit(1024), (n.num >> 4) & 1023, 1) FROM n
			WHERE b.term = ANY($7::text[]) AND b.chunk = ((n.num >> 14) << 4) | (n.num & 15) RETURNING 1),
		ba AS (INSERT INTO member_bits (term, chunk, bits)
			SELECT u, ((n.num >> 14) << 4) | (n.num & 15), set_bit(B'0'::bit(1024), (n.num >> 4) & 1023, 1) FROM unnest($8::text[]) AS u, n
			ON CONFLICT (term, chunk) DO UPDATE SET bits = member_bits.bits | EXCLUDED.bits RETURNING 1)
		SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM r), (SELECT count(*) FROM a), (SELECT count(*) FROM ni),
			(SELECT count(*) FROM br), (SELECT count(*) FROM ba)`,
		keys, deltas, int(bot.ShardHash(id)%tallySlots), id, removed, added, bitsRemoved, bitsAdded)
	return err
}

func (t *pgTx) Tallies(prefix string, fn func(key string, n int64) bool) error {
	end := prefixEnd([]byte(prefix))
	var endArg any
	if end != nil {
		endArg = string(end)
	}
	rows, err := t.tx.Query(t.ctx, `SELECT key, sum(n)::bigint FROM member_tallies WHERE key >= $1 AND ($2::text IS NULL OR key < $2)
		GROUP BY key HAVING sum(n) <> 0 ORDER BY key`, prefix, endArg)
	if t.note(err) != nil {
		return err
	}
	all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		Key string
		N   int64
	}])
	if t.note(err) != nil {
		return err
	}
	for _, r := range all {
		if !fn(r.Key, r.N) {
			return nil
		}
	}
	return nil
}

func (t *pgTx) TermMembers(term, after string, fn func(member string) bool) error {
	for {
		rows, err := t.tx.Query(t.ctx, `SELECT member FROM member_terms WHERE term = $1 AND member > $2 ORDER BY member LIMIT $3`, term, after, pageSize)
		if t.note(err) != nil {
			return err
		}
		page, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if t.note(err) != nil {
			return err
		}
		for _, m := range page {
			if !fn(m) {
				return nil
			}
		}
		if len(page) < pageSize {
			return nil
		}
		after = page[len(page)-1]
	}
}

func (t *pgTx) ScanTerms(prefix string, fn func(term, member string) bool) error {
	end := prefixEnd([]byte(prefix))
	var endArg any
	if end != nil {
		endArg = string(end)
	}
	fromTerm, fromMember := prefix, ""
	for {
		rows, err := t.tx.Query(t.ctx, `SELECT term, member FROM member_terms WHERE (term, member) > ($1, $2) AND term >= $3 AND ($4::text IS NULL OR term < $4)
			ORDER BY term, member LIMIT $5`, fromTerm, fromMember, prefix, endArg, pageSize)
		if t.note(err) != nil {
			return err
		}
		page, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Term, Member string }])
		if t.note(err) != nil {
			return err
		}
		for _, e := range page {
			if !fn(e.Term, e.Member) {
				return nil
			}
		}
		if len(page) < pageSize {
			return nil
		}
		fromTerm, fromMember = page[len(page)-1].Term, page[len(page)-1].Member
	}
}

// reindex rebuilds the member index when it was built by another
// bot.MemberIndexVersion (or not at all: a new or imported database),
// under the migration lock so one node builds it: the index is cleared
// and the members added in transactions of reindexChunk members; the
// version is recorded in the last one (a crash mid-way starts over).
func (s *Store) reindex(ctx context.Context) (rebuilt bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return false, err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)
	var have int64
	if err := conn.QueryRow(ctx, `SELECT n FROM counters WHERE name = 'member_index_version' AND slot = 0`).Scan(&have); err != nil {
		return false, fmt.Errorf("read the member index version: %w", err)
	}
	if have == bot.MemberIndexVersion {
		return false, nil
	}
	if _, err := conn.Exec(ctx, `TRUNCATE member_tallies, member_terms, member_nums, member_bits; ALTER SEQUENCE member_num RESTART`); err != nil {
		return false, fmt.Errorf("clear the member index: %w", err)
	}
	const reindexChunk = 2000
	after := ""
	for {
		var n int
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT id, body FROM members WHERE id > $1 ORDER BY id LIMIT $2`, after, reindexChunk)
			if err != nil {
				return err
			}
			page, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
				ID  string
				Raw []byte
			}])
			if err != nil {
				return err
			}
			t := &pgTx{ctx: ctx, tx: tx, s: s, write: true}
			for _, r := range page {
				var m bot.Member
				if err := json.Unmarshal(r.Raw, &m); err != nil {
					return fmt.Errorf("decode member %s: %w", r.ID, err)
				}
				if err := applyIndexDelta(t, r.ID, bot.IndexMember(&m), bot.MemberIndex{}); err != nil {
					return err
				}
				after = r.ID
			}
			n = len(page)
			if n < reindexChunk {
				_, err = tx.Exec(ctx, `UPDATE counters SET n = $1 WHERE name = 'member_index_version' AND slot = 0`, int64(bot.MemberIndexVersion))
			}
			return err
		})
		if err != nil {
			return false, fmt.Errorf("build the member index: %w", err)
		}
		if n < reindexChunk {
			return true, nil
		}
	}
}
