package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/wecombot/wecombot/bot"
)

// The member index (bot.MemberIndex): tallies in member_tallies (key →
// int64 BE, zero counts deleted) and the search index in member_terms
// (term NUL external_userid → nil) and the member bitmaps (memberbits.go),
// changed by PutMember in the member's transaction. Open rebuilds both when the file's index was built by
// another bot.MemberIndexVersion (or by a wecombot without an index).

// termSep ends the term in a member_terms key (terms never hold NUL).
const termSep = 0

func termKey(term, member string) []byte {
	k := make([]byte, 0, len(term)+1+len(member))
	k = append(k, term...)
	k = append(k, termSep)
	return append(k, member...)
}

// memberIndex returns the stored member's index entries: from the
// transaction's cache when fn read the member before (the engine always
// does), else by decoding the stored record.
func (t *boltTx) memberIndex(id string, raw []byte) (bot.MemberIndex, error) {
	if ix, ok := t.indexed[id]; ok {
		return ix, nil
	}
	if raw == nil {
		return bot.MemberIndex{}, nil
	}
	var m bot.Member
	if err := json.Unmarshal(raw, &m); err != nil {
		return bot.MemberIndex{}, fmt.Errorf("decode member %s: %w", id, err)
	}
	return bot.IndexMember(&m), nil
}

// remember caches a member's index entries for a later PutMember in this
// (writable) transaction.
func (t *boltTx) remember(m *bot.Member) {
	if !t.tx.Writable() {
		return
	}
	if t.indexed == nil {
		t.indexed = map[string]bot.MemberIndex{}
	}
	t.indexed[m.ExternalUserID] = bot.IndexMember(m)
}

// reindexMember applies the change from the stored member (raw, nil when
// new) to m to the tallies and terms.
func (t *boltTx) reindexMember(m *bot.Member, raw []byte) error {
	old, err := t.memberIndex(m.ExternalUserID, raw)
	if err != nil {
		return err
	}
	ix := bot.IndexMember(m)
	if t.tallies == nil {
		t.tallies = tallyDeltas{}
	}
	if err := applyIndexDelta(t.tx, t.bits, t.tallies, m.ExternalUserID, ix, old); err != nil {
		return err
	}
	if t.indexed == nil {
		t.indexed = map[string]bot.MemberIndex{}
	}
	t.indexed[m.ExternalUserID] = ix
	return nil
}

func applyIndexDelta(tx *bbolt.Tx, bits bitChunks, tallies tallyDeltas, id string, ix, old bot.MemberIndex) error {
	removed, added := ix.AddDiff(old, tallies)
	terms := tx.Bucket(bucketTerms)
	for _, term := range removed {
		if err := terms.Delete(termKey(term, id)); err != nil {
			return err
		}
	}
	for _, term := range added {
		if err := terms.Put(termKey(term, id), nil); err != nil {
			return err
		}
	}
	removed, added = bot.SortedDiff(old.Bits, ix.Bits)
	return bits.applyBits(tx, id, removed, added)
}

// tallyDeltas are the tally changes of a writing transaction's member
// writes, summed until flush stores them: a batch of new members in one
// channel and stage changes each of their dozen or so tallies once, not a
// read and a write per member.
type tallyDeltas map[string]int64

// flush adds the deltas to the stored tallies (a zero count is deleted)
// and forgets them.
func (td tallyDeltas) flush(tx *bbolt.Tx) error {
	if len(td) == 0 {
		return nil
	}
	tb := tx.Bucket(bucketTallies)
	for k, d := range td {
		delete(td, k)
		if d == 0 {
			continue
		}
		key := []byte(k)
		n := d
		if v := tb.Get(key); len(v) == 8 {
			n += int64(binary.BigEndian.Uint64(v))
		}
		var err error
		if n == 0 {
			err = tb.Delete(key)
		} else {
			err = tb.Put(key, i64(n))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (t *boltTx) Tallies(prefix string, fn func(key string, n int64) bool) error {
	if err := t.tallies.flush(t.tx); err != nil {
		return err
	}
	c := t.tx.Bucket(bucketTallies).Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if len(v) != 8 {
			continue
		}
		if !fn(string(k), int64(binary.BigEndian.Uint64(v))) {
			return nil
		}
	}
	return nil
}

func (t *boltTx) TermMembers(term, after string, fn func(member string) bool) error {
	c := t.tx.Bucket(bucketTerms).Cursor()
	p := termKey(term, "")
	k, _ := c.Seek(termKey(term, after))
	if after != "" && k != nil && string(k[len(p):]) == after {
		k, _ = c.Next()
	}
	for ; k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		if !fn(string(k[len(p):])) {
			return nil
		}
	}
	return nil
}

func (t *boltTx) ScanTerms(prefix string, fn func(term, member string) bool) error {
	c := t.tx.Bucket(bucketTerms).Cursor()
	p := []byte(prefix)
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		i := bytes.IndexByte(k, termSep)
		if i < 0 {
			continue
		}
		if !fn(string(k[:i]), string(k[i+1:])) {
			return nil
		}
	}
	return nil
}

// reindex rebuilds the member index (returning how many members it
// indexed) when the file's was built by another
// bot.MemberIndexVersion: it clears the index, then adds the members in
// transactions of migrateChunk members, and records the version in the
// last one (a crash mid-way starts over at the next open).
func (s *Store) reindex() (members int, err error) {
	var have uint64
	if err := s.db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(metaIndexVersion); len(v) == 8 {
			have = binary.BigEndian.Uint64(v)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	if have == bot.MemberIndexVersion {
		return 0, nil
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketTallies, bucketTerms, bucketNums, bucketNumIDs, bucketBits} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("clear the member index: %w", err)
	}
	var after []byte
	for done := false; !done; {
		if err := s.db.Update(func(tx *bbolt.Tx) error {
			bits, tallies := bitChunks{}, tallyDeltas{}
			c := tx.Bucket(bucketMembers).Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for n := 0; k != nil && n < migrateChunk; k, v = c.Next() {
				n++
				var m bot.Member
				if err := json.Unmarshal(v, &m); err != nil {
					return fmt.Errorf("decode member %s: %w", k, err)
				}
				if err := applyIndexDelta(tx, bits, tallies, m.ExternalUserID, bot.IndexMember(&m), bot.MemberIndex{}); err != nil {
					return err
				}
				after = bytes.Clone(k)
				members++
			}
			if err := bits.flush(tx); err != nil {
				return err
			}
			if err := tallies.flush(tx); err != nil {
				return err
			}
			if k != nil {
				return nil
			}
			done = true
			return tx.Bucket(bucketMeta).Put(metaIndexVersion, u64(bot.MemberIndexVersion))
		}); err != nil {
			return members, fmt.Errorf("build the member index: %w", err)
		}
	}
	return members, nil
}
