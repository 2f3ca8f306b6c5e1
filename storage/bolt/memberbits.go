package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/RoaringBitmap/roaring/v2"
	bbolt "go.etcd.io/bbolt"

	"github.com/wecombot/wecombot/bot"
)

// The member bitmaps (bot.MemberBits), part of the member index: each
// member's number in member_nums / num_members (the members bucket's
// sequence numbers them as they are first written), and per bit term one
// key per 65,536 numbers in member_bits (term NUL high 16 bits BE → the
// portable roaring serialization of the low 16 bits), changed by PutMember
// with the tallies and terms.

var _ bot.MemberBits = (*boltTx)(nil)

func bitKey(term string, hi uint16) []byte {
	k := make([]byte, 0, len(term)+3)
	k = append(k, term...)
	k = append(k, termSep)
	return binary.BigEndian.AppendUint16(k, hi)
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// memberNum returns member id's number, numbering her when she has none.
func memberNum(tx *bbolt.Tx, id string) (uint32, error) {
	nums := tx.Bucket(bucketNums)
	if v := nums.Get([]byte(id)); len(v) == 4 {
		return binary.BigEndian.Uint32(v), nil
	}
	seq, err := nums.NextSequence()
	if err != nil {
		return 0, err
	}
	if seq > 1<<32-1 {
		return 0, fmt.Errorf("number member %s: more than 2^32 members", id)
	}
	n := uint32(seq)
	if err := nums.Put([]byte(id), u32(n)); err != nil {
		return 0, err
	}
	return n, tx.Bucket(bucketNumIDs).Put(u32(n), []byte(id))
}

// bitChunks holds the member_bits chunks a writing transaction changed,
// decoded, until flush writes them back: a batch of member writes decodes
// and encodes each chunk it touches once.
type bitChunks map[string]*roaring.Bitmap

// applyBits takes member id out of the removed terms' bitmaps and into the
// added ones' (in chunks; flush writes them).
func (bc bitChunks) applyBits(tx *bbolt.Tx, id string, removed, added []string) error {
	if len(removed) == 0 && len(added) == 0 {
		return nil
	}
	num, err := memberNum(tx, id)
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketBits)
	hi, lo := uint16(num>>16), uint32(num&0xffff)
	change := func(term string, set bool) error {
		key := string(bitKey(term, hi))
		bm := bc[key]
		if bm == nil {
			bm = roaring.New()
			if v := b.Get([]byte(key)); v != nil {
				if err := bm.UnmarshalBinary(v); err != nil {
					return fmt.Errorf("member bitmap %q: %w", term, err)
				}
			}
			bc[key] = bm
		}
		if set {
			bm.Add(lo)
		} else {
			bm.Remove(lo)
		}
		return nil
	}
	for _, t := range removed {
		if err := change(t, false); err != nil {
			return err
		}
	}
	for _, t := range added {
		if err := change(t, true); err != nil {
			return err
		}
	}
	return nil
}

// flush writes the changed chunks (an empty one is deleted) and forgets them.
func (bc bitChunks) flush(tx *bbolt.Tx) error {
	b := tx.Bucket(bucketBits)
	for key, bm := range bc {
		delete(bc, key)
		if bm.IsEmpty() {
			if err := b.Delete([]byte(key)); err != nil {
				return err
			}
			continue
		}
		bm.RunOptimize()
		raw, err := bm.ToBytes()
		if err != nil {
			return err
		}
		if err := b.Put([]byte(key), raw); err != nil {
			return err
		}
	}
	return nil
}

// chunkBits decodes one member_bits value of chunk hi into the numbers it holds.
func chunkBits(term string, hi uint16, v []byte) (*roaring.Bitmap, error) {
	bm := roaring.New()
	if err := bm.UnmarshalBinary(v); err != nil {
		return nil, fmt.Errorf("member bitmap %q: %w", term, err)
	}
	if hi == 0 {
		return bm, nil
	}
	return roaring.AddOffset64(bm, int64(hi)<<16), nil
}

// flushBits makes this transaction's changed chunks readable.
func (t *boltTx) flushBits() error {
	if len(t.bits) == 0 {
		return nil
	}
	return t.bits.flush(t.tx)
}

func (t *boltTx) TermBits(term string) (*roaring.Bitmap, error) {
	if err := t.flushBits(); err != nil {
		return nil, err
	}
	var parts []*roaring.Bitmap
	p := append([]byte(term), termSep)
	c := t.tx.Bucket(bucketBits).Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p) && len(k) == len(p)+2; k, v = c.Next() {
		bm, err := chunkBits(term, binary.BigEndian.Uint16(k[len(p):]), v)
		if err != nil {
			return nil, err
		}
		parts = append(parts, bm)
	}
	return orParts(parts), nil
}

func orParts(parts []*roaring.Bitmap) *roaring.Bitmap {
	switch len(parts) {
	case 0:
		return roaring.New()
	case 1:
		return parts[0]
	}
	return roaring.FastOr(parts...)
}

func (t *boltTx) PrefixBits(prefix string, fn func(term string, members *roaring.Bitmap) bool) error {
	if err := t.flushBits(); err != nil {
		return err
	}
	c := t.tx.Bucket(bucketBits).Cursor()
	p := []byte(prefix)
	cur := ""
	var parts []*roaring.Bitmap
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if len(k) < 3 || k[len(k)-3] != termSep {
			continue
		}
		term := string(k[:len(k)-3])
		if term != cur && len(parts) > 0 {
			if !fn(cur, orParts(parts)) {
				return nil
			}
			parts = nil
		}
		cur = term
		bm, err := chunkBits(term, binary.BigEndian.Uint16(k[len(k)-2:]), v)
		if err != nil {
			return err
		}
		parts = append(parts, bm)
	}
	if len(parts) > 0 {
		fn(cur, orParts(parts))
	}
	return nil
}

func (t *boltTx) MembersByNum(nums *roaring.Bitmap, fn func(num uint32, m *bot.Member) bool) error {
	ids, members := t.tx.Bucket(bucketNumIDs), t.tx.Bucket(bucketMembers)
	it := nums.Iterator()
	for it.HasNext() {
		n := it.Next()
		id := ids.Get(u32(n))
		if id == nil {
			continue
		}
		raw := members.Get(id)
		if raw == nil {
			continue
		}
		var m bot.Member
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("decode member %s: %w", id, err)
		}
		if !fn(n, &m) {
			return nil
		}
	}
	return nil
}
