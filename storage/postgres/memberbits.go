package postgres

import (
	"encoding/json"
	"fmt"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/wecombot/wecombot/bot"
)

// The member bitmaps (bot.MemberBits) in member_bits: member number n is
// bit (n >> 4) & 1023 (leftmost first) of row chunk ((n >> 14) << 4) |
// (n & 15) — 16 rows (slots) share each block of 16,384 numbers, so the
// members written together, numbered one after the other, set bits in
// different rows and concurrent writers rarely collide on one.

var _ bot.MemberBits = (*pgTx)(nil)

const (
	bitsPerRow = 1024
	bitSlots   = 16
)

// addRows adds the numbers of one term's rows (in chunk order) to out, in
// number order.
func addRows(out []uint32, rows []bitRow) []uint32 {
	for i := 0; i < len(rows); {
		block := rows[i].Chunk >> 4
		var slots [bitSlots][]byte
		for ; i < len(rows) && rows[i].Chunk>>4 == block; i++ {
			slots[rows[i].Chunk&(bitSlots-1)] = rows[i].Bits.Bytes
		}
		for pos := range bitsPerRow {
			for slot, b := range slots {
				if pos/8 < len(b) && b[pos/8]&(0x80>>(pos%8)) != 0 {
					out = append(out, uint32(block)<<14|uint32(pos)<<4|uint32(slot))
				}
			}
		}
	}
	return out
}

type bitRow struct {
	Term  string
	Chunk int32
	Bits  pgtype.Bits
}

func (t *pgTx) bitRows(sql string, args ...any) ([]bitRow, error) {
	rows, err := t.tx.Query(t.ctx, sql, args...)
	if t.note(err) != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[bitRow])
	return out, t.note(err)
}

func (t *pgTx) TermBits(term string) (*roaring.Bitmap, error) {
	rows, err := t.bitRows(`SELECT term, chunk, bits FROM member_bits WHERE term = $1 ORDER BY chunk`, term)
	if err != nil {
		return nil, err
	}
	return roaring.BitmapOf(addRows(nil, rows)...), nil
}

func (t *pgTx) PrefixBits(prefix string, fn func(term string, members *roaring.Bitmap) bool) error {
	end := prefixEnd([]byte(prefix))
	var endArg any
	if end != nil {
		endArg = string(end)
	}
	rows, err := t.bitRows(`SELECT term, chunk, bits FROM member_bits WHERE term >= $1 AND ($2::text IS NULL OR term < $2) ORDER BY term, chunk`, prefix, endArg)
	if err != nil {
		return err
	}
	var nums []uint32
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && rows[j].Term == rows[i].Term {
			j++
		}
		nums = addRows(nums[:0], rows[i:j])
		if len(nums) > 0 && !fn(rows[i].Term, roaring.BitmapOf(nums...)) {
			return nil
		}
		i = j
	}
	return nil
}

func (t *pgTx) MembersByNum(nums *roaring.Bitmap, fn func(num uint32, m *bot.Member) bool) error {
	it := nums.ManyIterator()
	buf := make([]uint32, pageSize)
	for {
		n := it.NextMany(buf)
		if n == 0 {
			return nil
		}
		page := make([]int32, n)
		for i, v := range buf[:n] {
			page[i] = int32(v)
		}
		rows, err := t.tx.Query(t.ctx, `SELECT n.num, m.body FROM member_nums n JOIN members m ON m.id = n.id WHERE n.num = ANY($1) ORDER BY n.num`, page)
		if t.note(err) != nil {
			return err
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
			Num  int32
			Body []byte
		}])
		if t.note(err) != nil {
			return err
		}
		for _, r := range got {
			var m bot.Member
			if err := json.Unmarshal(r.Body, &m); err != nil {
				return fmt.Errorf("decode member number %d: %w", r.Num, err)
			}
			if !fn(uint32(r.Num), &m) {
				return nil
			}
		}
	}
}
