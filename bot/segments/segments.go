// Package segments counts and lists the members of a segment over the
// member store. The segment's rules and its one evaluator are
// scenarios.Segment (Match is pure: a member and a time); this package is
// the store side: it pages through members in short read transactions, so
// counting a million members never holds a transaction long enough to
// delay callbacks' appends or the engine's writes, and it stops as soon as
// the caller's context ends (an operator typing in the console's builder
// cancels the previous count).
//
// Features that decide inside the engine's transaction (a broadcast's
// fan-out, an SOP's audience) call scenarios.Segment.Match on the members
// they load; the API and the console call Count and Page here.
package segments

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// Viewer runs read-only transactions (bot.Store).
type Viewer interface {
	View(ctx context.Context, fn func(bot.Tx) error) error
}

// PageSize is how many members one read transaction scans. Small enough
// that a transaction lasts milliseconds, large enough that the per-page
// cost (a transaction, a cursor seek) doesn't show.
var PageSize = 2000

// Result is a segment's count at a moment.
type Result struct {
	// Total is how many members match; Scanned how many were read.
	Total   int `json:"total"`
	Scanned int `json:"scanned"`
	// ByStaff splits Total by the staff member who reaches each member
	// (Segment.Sender), largest first; "" counts members with no staff.
	ByStaff []StaffCount `json:"by_staff"`
	// Sample are the first matching members in external_userid order.
	Sample []*bot.Member `json:"-"`
	// At is the moment the rules were evaluated at; Took how long it took.
	At   time.Time     `json:"at"`
	Took time.Duration `json:"-"`
}

// StaffCount is one staff member's share of a segment.
type StaffCount struct {
	StaffID string `json:"staff_id"`
	Members int    `json:"members"`
}

// scan reads the next page of seg's candidates after after in tx — the
// members holding the terms of its rarest indexed rule (bot.RarestUnion
// over Segment.IndexTerms), or every member when it has none — and calls
// keep with each that matches, until keep returns false. It returns how
// many members it read, the last one's id and whether more may follow.
func scan(tx bot.Tx, seg *scenarios.Segment, now time.Time, after string, keep func(*bot.Member) bool) (n int, last string, more bool, err error) {
	visit := func(m *bot.Member) bool {
		n++
		last = m.ExternalUserID
		if seg.Match(m, now) && !keep(m) {
			more = true
			return false
		}
		if n >= PageSize {
			more = true
			return false
		}
		return true
	}
	terms, none, err := bot.RarestUnion(tx, seg.IndexTerms())
	switch {
	case err != nil || none:
		return 0, after, false, err
	case terms == nil:
		err = tx.Members(after, visit)
		return n, last, more, err
	}
	ids, idsMore, err := bot.UnionMembers(tx, terms, after, PageSize)
	if err != nil {
		return 0, after, false, err
	}
	for _, id := range ids {
		m, err := tx.Member(id)
		if errors.Is(err, bot.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, last, false, err
		}
		if !visit(m) {
			return n, last, true, nil
		}
	}
	if len(ids) > 0 {
		last = ids[len(ids)-1]
	}
	return n, last, idsMore, nil
}

// Each calls fn for every member of seg at now, in external_userid order
// after after, one page per read transaction; fn returning false stops.
// Members handed to fn are copies the caller may keep. A segment with an
// indexed rule (stages, channels, tags, staff, levels, lost) reads only
// the members of its rarest one.
func Each(ctx context.Context, v Viewer, seg *scenarios.Segment, now time.Time, after string, fn func(*bot.Member) bool) (scanned int, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return scanned, err
		}
		var page []*bot.Member
		var n int
		var more bool
		err := v.View(ctx, func(tx bot.Tx) error {
			page = page[:0]
			var err error
			n, after, more, err = scan(tx, seg, now, after, func(m *bot.Member) bool { page = append(page, m); return true })
			return err
		})
		if err != nil {
			return scanned, err
		}
		scanned += n
		for _, m := range page {
			if !fn(m) {
				return scanned, nil
			}
		}
		if !more {
			return scanned, nil
		}
	}
}

// Bitmaps lets Count use the member bitmaps of a store that keeps them
// (false: read the members, as a store without them does; the benchmarks
// compare both in one run).
var Bitmaps = true

// Count counts seg's members at now, split by staff, keeping the first
// sample members. Over a store that keeps member bitmaps (bot.MemberBits)
// it is bitmap algebra: only the members a bitmap can't decide on (the
// cutoff day of a silent/active/added rule, a spend bucket straddling the
// minimum, a groups rule) are read, in pages; the sample is then the
// first matching members in the order they joined. Otherwise it reads
// the members of the rarest indexed rule (Each) and the sample follows
// external_userid order.
func Count(ctx context.Context, v Viewer, seg *scenarios.Segment, now time.Time, sample int) (Result, error) {
	start := time.Now()
	res, byStaff, ok, err := countBits(ctx, v, seg, now, sample)
	if err == nil && !ok {
		res, byStaff, err = countMembers(ctx, v, seg, now, sample)
	}
	if err != nil {
		return Result{}, err
	}
	res.ByStaff = make([]StaffCount, 0, len(byStaff))
	for id, n := range byStaff {
		if n > 0 {
			res.ByStaff = append(res.ByStaff, StaffCount{StaffID: id, Members: n})
		}
	}
	sort.Slice(res.ByStaff, func(i, j int) bool {
		a, b := res.ByStaff[i], res.ByStaff[j]
		if a.Members != b.Members {
			return a.Members > b.Members
		}
		return a.StaffID < b.StaffID
	})
	res.Took = time.Since(start)
	return res, nil
}

// countMembers counts by reading the candidates (Each).
func countMembers(ctx context.Context, v Viewer, seg *scenarios.Segment, now time.Time, sample int) (Result, map[string]int, error) {
	res := Result{At: now}
	byStaff := map[string]int{}
	scanned, err := Each(ctx, v, seg, now, "", func(m *bot.Member) bool {
		res.Total++
		byStaff[seg.Sender(m)]++
		if len(res.Sample) < sample {
			res.Sample = append(res.Sample, m)
		}
		return true
	})
	res.Scanned = scanned
	return res, byStaff, err
}

// numbered is a member with her number.
type numbered struct {
	num uint32
	m   *bot.Member
}

// countBits counts over the member bitmaps; ok is false when the store
// keeps none (or Bitmaps is off).
func countBits(ctx context.Context, v Viewer, seg *scenarios.Segment, now time.Time, sample int) (res Result, byStaff map[string]int, ok bool, err error) {
	if !Bitmaps {
		return res, nil, false, nil
	}
	res.At = now
	byStaff = map[string]int{}
	plan := seg.Bits(now)
	var sure, maybe *roaring.Bitmap
	var first []numbered
	err = v.View(ctx, func(tx bot.Tx) error {
		mb, is := tx.(bot.MemberBits)
		if !is {
			return nil
		}
		ok = true
		var err error
		if sure, maybe, err = planBits(mb, plan); err != nil {
			return err
		}
		if !plan.Exact {
			maybe.Or(sure)
			sure = roaring.New()
		}
		res.Total = int(sure.GetCardinality())
		read, err := splitBits(mb, seg, sure, byStaff)
		if err != nil {
			return err
		}
		res.Scanned += read
		if sample > 0 && !sure.IsEmpty() {
			nums := make([]uint32, min(uint64(sample), sure.GetCardinality()))
			sure.ManyIterator().NextMany(nums)
			return mb.MembersByNum(roaring.BitmapOf(nums...), func(num uint32, m *bot.Member) bool {
				first = append(first, numbered{num, m})
				return true
			})
		}
		return nil
	})
	if err != nil || !ok {
		return res, nil, ok, err
	}
	// The members the bitmaps left undecided, a page per read transaction.
	var matched []numbered
	it := maybe.ManyIterator()
	buf := make([]uint32, PageSize)
	for {
		n := it.NextMany(buf)
		if n == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return res, nil, true, err
		}
		page := roaring.BitmapOf(buf[:n]...)
		if err := v.View(ctx, func(tx bot.Tx) error {
			return tx.(bot.MemberBits).MembersByNum(page, func(num uint32, m *bot.Member) bool {
				res.Scanned++
				if seg.Match(m, now) {
					res.Total++
					byStaff[seg.Sender(m)]++
					if len(matched) < sample {
						matched = append(matched, numbered{num, m})
					}
				}
				return true
			})
		}); err != nil {
			return res, nil, true, err
		}
	}
	first = append(first, matched...)
	sort.Slice(first, func(i, j int) bool { return first[i].num < first[j].num })
	for _, f := range first[:min(len(first), sample)] {
		res.Sample = append(res.Sample, f.m)
	}
	return res, byStaff, true, nil
}

// planBits evaluates plan: sure holds the members every rule's bitmaps
// accept, maybe those only Match can decide on (a range's edge bucket).
func planBits(mb bot.MemberBits, plan scenarios.SegmentBits) (sure, maybe *roaring.Bitmap, err error) {
	if sure, err = mb.TermBits(bot.BitAll); err != nil {
		return nil, nil, err
	}
	for _, union := range plan.All {
		u, err := unionBits(mb, union)
		if err != nil {
			return nil, nil, err
		}
		sure.And(u)
	}
	for _, term := range plan.None {
		b, err := mb.TermBits(term)
		if err != nil {
			return nil, nil, err
		}
		sure.AndNot(b)
	}
	maybe = roaring.New()
	for _, r := range plan.Ranges {
		in, edge, err := rangeBits(mb, &r)
		if err != nil {
			return nil, nil, err
		}
		maybe.And(roaring.Or(in, edge))
		maybe.Or(roaring.And(sure, edge))
		sure.And(in)
	}
	return sure, maybe, nil
}

// rangeBits returns the members of r's In buckets and of its Edge ones —
// those r.Edge (when set) leaves undecided; the rest of an edge bucket
// joins in or drops out.
func rangeBits(mb bot.MemberBits, r *scenarios.BitRange) (in, edge *roaring.Bitmap, err error) {
	in, edge = roaring.New(), roaring.New()
	if err := mb.PrefixBits(r.Prefix, func(term string, b *roaring.Bitmap) bool {
		switch r.Class(strings.TrimPrefix(term, r.Prefix)) {
		case scenarios.BitIn:
			in.Or(b)
		case scenarios.BitEdge:
			edge.Or(b)
		}
		return true
	}); err != nil || r.Edge == nil || edge.IsEmpty() {
		return in, edge, err
	}
	subIn, subEdge, err := rangeBits(mb, r.Edge)
	if err != nil {
		return nil, nil, err
	}
	in.Or(roaring.And(edge, subIn))
	edge.And(subEdge)
	return in, edge, nil
}

func unionBits(mb bot.MemberBits, terms []string) (*roaring.Bitmap, error) {
	parts := make([]*roaring.Bitmap, 0, len(terms))
	for _, t := range terms {
		b, err := mb.TermBits(t)
		if err != nil {
			return nil, err
		}
		parts = append(parts, b)
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return roaring.FastOr(parts...), nil
}

// splitBits adds the members of sure to byStaff by the staff member who
// reaches each (Segment.Sender): without a staff rule her primary staff
// (bitmaps); with one, the one of its staff she follows — only members
// following several of them are read (the most recently added decides).
// It returns how many members it read.
func splitBits(mb bot.MemberBits, seg *scenarios.Segment, sure *roaring.Bitmap, byStaff map[string]int) (int, error) {
	if sure.IsEmpty() {
		return 0, nil
	}
	staff := seg.Rules().Staff
	if len(staff) == 0 {
		left := int(sure.GetCardinality())
		err := mb.PrefixBits(bot.IndexKey(bot.BitPrimaryStaff, ""), func(term string, b *roaring.Bitmap) bool {
			n := int(sure.AndCardinality(b))
			byStaff[strings.TrimPrefix(term, bot.IndexKey(bot.BitPrimaryStaff, ""))] += n
			left -= n
			return true
		})
		byStaff[""] += left
		return 0, err
	}
	seen, multi := roaring.New(), roaring.New()
	mine := make([]*roaring.Bitmap, len(staff))
	for i, id := range staff {
		b, err := mb.TermBits(bot.IndexKey(bot.TermStaff, id))
		if err != nil {
			return 0, err
		}
		b.And(sure)
		multi.Or(roaring.And(seen, b))
		seen.Or(b)
		mine[i] = b
	}
	for i, id := range staff {
		byStaff[id] += int(roaring.AndNot(mine[i], multi).GetCardinality())
	}
	read := 0
	err := mb.MembersByNum(multi, func(_ uint32, m *bot.Member) bool {
		read++
		byStaff[seg.Sender(m)]++
		return true
	})
	return read, err
}

// Page lists up to limit members of seg after cursor, reading at most
// maxScan members (so a rare segment answers a short page instead of
// scanning the whole store in one request); next is the cursor to go on
// with, "" at the end.
func Page(ctx context.Context, v Viewer, seg *scenarios.Segment, now time.Time, cursor string, limit, maxScan int) (members []*bot.Member, next string, err error) {
	last := cursor
	for {
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
		var n int
		var more bool
		err := v.View(ctx, func(tx bot.Tx) error {
			var err error
			n, last, more, err = scan(tx, seg, now, last, func(m *bot.Member) bool {
				members = append(members, m)
				return len(members) < limit
			})
			return err
		})
		if err != nil {
			return nil, "", err
		}
		maxScan -= n
		if !more {
			return members, "", nil
		}
		if len(members) >= limit || maxScan <= 0 {
			return members, last, nil
		}
	}
}
