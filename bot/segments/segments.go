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
	"time"

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

// Count counts seg's members at now, split by staff, keeping the first
// sample members.
func Count(ctx context.Context, v Viewer, seg *scenarios.Segment, now time.Time, sample int) (Result, error) {
	start := time.Now()
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
	if err != nil {
		return Result{}, err
	}
	res.Scanned = scanned
	res.ByStaff = make([]StaffCount, 0, len(byStaff))
	for id, n := range byStaff {
		res.ByStaff = append(res.ByStaff, StaffCount{StaffID: id, Members: n})
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
