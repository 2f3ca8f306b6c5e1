package bot

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The member index: what each member contributes to the console's counts
// (the funnel, the channel table, tag/level/staff lists) and to the search
// index (term → members). Stores keep both in the transaction that writes
// the member (Tx.PutMember diffs the old member's entries against the new
// one's), so the console reads counts instead of passing over every
// member, and a search reads the members of its rarest term instead of all
// of them. Both backends derive the entries from these functions; when
// they change, MemberIndexVersion goes up and a store rebuilds its index
// from the members at open.

// MemberIndexVersion is the version of MemberTallies and MemberTerms. A
// store whose index was built by another version rebuilds it at open.
const MemberIndexVersion = 4

// IndexSep separates the fields of a tally or term key (names may hold "|").
const IndexSep = "\x1f"

// Tally key prefixes (the first field of a key; fields joined by IndexSep).
const (
	TallyMembers = "members" // every member
	TallyLost    = "lost"    // members marked lost
	// TallyCurrent ‖ stage: members in the stage now ("" for none).
	TallyCurrent = "cur"
	// TallyReached ‖ stage: members who ever reached the stage (or a later one).
	TallyReached = "reach"
	// TallyChannel ‖ channel: members by first channel ("" for none).
	TallyChannel = "ch"
	// TallyChannelState ‖ channel ‖ state: which raw states a channel's members came with.
	TallyChannelState = "chstate"
	// TallyChannelCurrent / TallyChannelReached ‖ channel ‖ stage.
	TallyChannelCurrent = "chcur"
	TallyChannelReached = "chreach"
	TallyTag            = "tag"   // ‖ tag name
	TallyLevel          = "level" // ‖ level
	TallyStaff          = "staff" // ‖ primary staff userid
	// TallyEntered ‖ UTC hour (2006010215) ‖ stage: moves into the stage in
	// that hour (from the members' stage histories). Hours, not days, so
	// that weeks can be summed in any brand zone with a whole-hour offset.
	TallyEntered = "entered"
)

// Term key prefixes of the search index (term ‖ value → the members).
const (
	TermStage = "stage" // ‖ stage ("" for none)
	TermTag   = "tag"   // ‖ tag name
	// TermChannel ‖ name: the member's channel name or raw state (what the
	// members filter `channel` matches).
	TermChannel = "channel"
	TermStaff   = "staff" // ‖ staff userid of each active follow
	TermLevel   = "level" // ‖ level
	TermLost    = "lost"  // lost members
	// TermLeaders ‖ inverted check-ins ‖ inverted points: members with
	// check-ins, most first (the console's leaderboard reads the first few).
	TermLeaders = "leaders"
)

// IndexKey joins fields with IndexSep.
func IndexKey(fields ...string) string {
	n := len(fields) - 1
	for _, f := range fields {
		n += len(f)
	}
	b := make([]byte, 0, n)
	for i, f := range fields {
		if i > 0 {
			b = append(b, IndexSep...)
		}
		b = append(b, f...)
	}
	return string(b)
}

// EnteredHour is the TallyEntered hour field of t.
func EnteredHour(t time.Time) string { return t.UTC().Format("2006010215") }

// Reached is the furthest stage the member ever reached (a refund may have
// moved her back since).
func (m *Member) Reached() Stage {
	reached := m.Stage
	for _, c := range m.StageHistory {
		if c.To.Rank() > reached.Rank() {
			reached = c.To
		}
	}
	return reached
}

// MemberTallies returns what m adds to each tally key (nil m: nothing).
func MemberTallies(m *Member) map[string]int64 {
	if m == nil {
		return nil
	}
	out := make(map[string]int64, 16+len(m.Tags)+len(m.StageHistory))
	out[TallyMembers] = 1
	if m.Lost {
		out[TallyLost] = 1
	}
	st := string(m.Stage)
	out[IndexKey(TallyCurrent, st)] = 1
	out[IndexKey(TallyChannel, m.Channel)] = 1
	out[IndexKey(TallyChannelState, m.Channel, m.State)] = 1
	out[IndexKey(TallyChannelCurrent, m.Channel, st)] = 1
	reached := m.Reached().Rank()
	for _, s := range Stages {
		if reached >= s.Rank() {
			out[IndexKey(TallyReached, string(s))] = 1
			out[IndexKey(TallyChannelReached, m.Channel, string(s))] = 1
		}
	}
	for _, t := range m.Tags {
		out[IndexKey(TallyTag, t)] = 1
	}
	if m.Level != "" {
		out[IndexKey(TallyLevel, m.Level)] = 1
	}
	if staff := m.PrimaryStaff(); staff != "" {
		out[IndexKey(TallyStaff, staff)] = 1
	}
	for _, c := range m.StageHistory {
		out[IndexKey(TallyEntered, EnteredHour(c.At), string(c.To))]++
	}
	return out
}

// MemberTerms returns the search-index terms of m, sorted and unique (nil m: none).
func MemberTerms(m *Member) []string {
	if m == nil {
		return nil
	}
	out := make([]string, 0, 6+len(m.Tags)+len(m.Follows))
	out = append(out, IndexKey(TermStage, string(m.Stage)))
	for _, t := range m.Tags {
		out = append(out, IndexKey(TermTag, t))
	}
	if m.Channel != "" {
		out = append(out, IndexKey(TermChannel, m.Channel))
	}
	if m.State != "" {
		out = append(out, IndexKey(TermChannel, m.State))
	}
	for _, f := range m.Follows {
		if f.Active() {
			out = append(out, IndexKey(TermStaff, f.StaffID))
		}
	}
	if m.Level != "" {
		out = append(out, IndexKey(TermLevel, m.Level))
	}
	if m.Lost {
		out = append(out, TermLost)
	}
	if m.CheckIns > 0 {
		out = append(out, LeaderTerm(m.CheckIns, m.Points))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// LeaderTerm is the TermLeaders term of a member with checkIns and points:
// it sorts most check-ins first, then most points.
func LeaderTerm(checkIns int, points int64) string {
	return IndexKey(TermLeaders, fmt.Sprintf("%010d", math.MaxInt32-min(int64(checkIns), math.MaxInt32)),
		fmt.Sprintf("%019d", math.MaxInt64-max(points, 0)))
}

// MemberIndex is one member's entries in the index.
type MemberIndex struct {
	Tallies map[string]int64
	Terms   []string
	// Bits are her MemberBitTerms.
	Bits []string
}

// IndexMember returns m's entries (nil m: none).
func IndexMember(m *Member) MemberIndex {
	if m == nil {
		return MemberIndex{}
	}
	terms := MemberTerms(m)
	return MemberIndex{Tallies: MemberTallies(m), Terms: terms, Bits: memberBitTerms(m, terms)}
}

// Diff is what replacing old by ix changes: tally deltas (non-zero only)
// and the terms removed and added.
func (ix MemberIndex) Diff(old MemberIndex) (tallies map[string]int64, removed, added []string) {
	tallies = make(map[string]int64, len(ix.Tallies))
	removed, added = ix.AddDiff(old, tallies)
	for k, n := range tallies {
		if n == 0 {
			delete(tallies, k)
		}
	}
	return tallies, removed, added
}

// AddDiff is Diff adding the tally deltas to sums (zero sums are left in)
// instead of returning them.
func (ix MemberIndex) AddDiff(old MemberIndex, sums map[string]int64) (removed, added []string) {
	for k, n := range ix.Tallies {
		if old.Tallies[k] != n {
			sums[k] += n
		}
	}
	for k, n := range old.Tallies {
		if ix.Tallies[k] != n {
			sums[k] -= n
		}
	}
	return SortedDiff(old.Terms, ix.Terms)
}

// Members are the members an event is about, for the per-member history
// index: its ExternalUserID and the members a group change names, each once.
func (e *Event) Members() []string {
	var out []string
	if e.ExternalUserID != "" {
		out = append(out, e.ExternalUserID)
	}
	for _, m := range e.MemChangeList {
		if m != "" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// TermTally is the tally that counts the members holding term — exactly,
// or for channel and staff terms only as an estimate (a channel's members
// by state, or a member's second staff, are not in it): the member index's
// cost estimate for walking the term. "" when there is none.
func TermTally(term string) (key string, exact bool) {
	field, value, _ := strings.Cut(term, IndexSep)
	switch field {
	case TermStage:
		return IndexKey(TallyCurrent, value), true
	case TermTag:
		return IndexKey(TallyTag, value), true
	case TermChannel:
		return IndexKey(TallyChannel, value), false
	case TermStaff:
		return IndexKey(TallyStaff, value), false
	case TermLevel:
		return IndexKey(TallyLevel, value), true
	case TermLost:
		return TallyLost, true
	}
	return "", false
}

// RarestUnion picks, among conjuncts (each a list of terms a matching
// member holds at least one of), the one whose terms hold the fewest
// members by their tallies; none reports that its tallies say for certain
// that nobody holds any of its terms. No conjuncts: nil.
func RarestUnion(tx Tx, conjuncts [][]string) (terms []string, none bool, err error) {
	best := int64(-1)
	for _, union := range conjuncts {
		sum, exact := int64(0), true
		for _, term := range union {
			key, ex := TermTally(term)
			exact = exact && ex
			if key == "" {
				sum += 1 << 40 // unknown: as if everyone
				continue
			}
			if err := tx.Tallies(key, func(k string, n int64) bool {
				if k == key {
					sum += max(n, 0)
				}
				return false
			}); err != nil {
				return nil, false, err
			}
		}
		if sum == 0 && exact {
			return union, true, nil
		}
		if best < 0 || sum < best {
			best, terms = sum, union
		}
	}
	return terms, false, nil
}

// UnionMembers returns, in external_userid order after the given id, up
// to limit members holding any of terms, and whether more may follow.
func UnionMembers(tx Tx, terms []string, after string, limit int) (ids []string, more bool, err error) {
	bound := ""
	for _, term := range terms {
		var got []string
		if err := tx.TermMembers(term, after, func(id string) bool {
			got = append(got, id)
			return len(got) < limit
		}); err != nil {
			return nil, false, err
		}
		if len(got) == limit {
			// This term may hold more beyond its last: the union is only
			// complete up to the smallest such last.
			more = true
			if bound == "" || got[len(got)-1] < bound {
				bound = got[len(got)-1]
			}
		}
		ids = append(ids, got...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if bound != "" {
		n, _ := slices.BinarySearch(ids, bound)
		ids = ids[:n+1]
	}
	if len(ids) > limit {
		ids, more = ids[:limit], true
	}
	return ids, more, nil
}
