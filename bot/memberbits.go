package bot

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
)

// Member bitmaps: every member gets a dense number (1, 2, 3, … in the
// order the store first wrote her; a rebuilt index numbers in
// external_userid order), and each bit term (MemberBitTerms) has a
// roaring bitmap of the numbers of the members holding it. Stores keep the
// bitmaps in the member's transaction, from the same diff as the tallies
// and terms (MemberIndex), so a segment count is bitmap algebra over a few
// compressed bitmaps instead of a read of each candidate member: at a
// million members "loyal members from 小红书" intersects two bitmaps of
// ~150k and ~250k members in milliseconds, where reading the 150k members
// took tens of seconds.

// Bit-only term prefixes (the search-index terms of MemberTerms, except the
// leaderboard's, have bitmaps too).
const (
	// BitAll: every member.
	BitAll = "all"
	// BitChannelName ‖ channel name: her first channel (Member.Channel)
	// exactly — TermChannel also holds her raw state.
	BitChannelName = "chname"
	// BitPrimaryStaff ‖ userid: Member.PrimaryStaff (a segment's per-staff split).
	BitPrimaryStaff = "pstaff"
	// BitActiveDay ‖ UTC day (20060102) of Member.LastActivity.
	BitActiveDay = "active"
	// BitAddedDay ‖ UTC day of Member.AddedAt.
	BitAddedDay = "added"
	// BitActiveHour and BitAddedHour ‖ UTC hour of the day (00–23) of the
	// same instants: on a rule's cutoff day they leave only the members of
	// the cutoff hour to be read.
	BitActiveHour = "activeh"
	BitAddedHour  = "addedh"
	// BitSpend ‖ SpendBucket(SpendFen): her net spend, in buckets of two
	// significant digits (so round thresholds such as 100 yuan are exact).
	BitSpend = "spend"
	// BitOrders ‖ min(orders, BitOrdersCap) as two digits.
	BitOrders = "orders"
	// BitGram ‖ a character or two consecutive characters of her name,
	// lower-cased (NameGrams): the name search's candidates.
	BitGram = "gram"
)

// gramRunes bounds the name characters indexed; members with a longer name
// also hold BitGramLong, so a search looks at them whatever it asks.
const gramRunes = 64

// BitGramLong is the term of the members whose names are longer than the grams index.
var BitGramLong = IndexKey(BitGram, "\u2026long")

// NameGrams are the BitGram terms of a name: each character and each pair
// of consecutive characters of the lower-cased name (unique, unsorted).
func NameGrams(name string) []string {
	rs := []rune(strings.ToLower(name))
	long := len(rs) > gramRunes
	rs = rs[:min(len(rs), gramRunes)]
	seen := make(map[string]bool, 2*len(rs))
	out := make([]string, 0, 2*len(rs)+1)
	add := func(g []rune) {
		for _, r := range g {
			if r < 0x20 {
				return // never a separator in a key
			}
		}
		if t := IndexKey(BitGram, string(g)); !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for i := range rs {
		add(rs[i : i+1])
		if i+1 < len(rs) {
			add(rs[i : i+2])
		}
	}
	if long {
		out = append(out, BitGramLong)
	}
	return out
}

// QueryGrams are the BitGram terms every name containing q (lower-cased)
// holds: its pairs of consecutive characters (its one character when it
// has one); nil when q is empty or holds a control character. A member
// whose name contains q holds all of them, or BitGramLong.
func QueryGrams(q string) []string {
	rs := []rune(strings.ToLower(q))
	if len(rs) == 0 || len(rs) > gramRunes {
		return nil
	}
	for _, r := range rs {
		if r < 0x20 {
			return nil
		}
	}
	if len(rs) == 1 {
		return []string{IndexKey(BitGram, string(rs))}
	}
	out := make([]string, 0, len(rs)-1)
	for i := 0; i+1 < len(rs); i++ {
		out = append(out, IndexKey(BitGram, string(rs[i:i+2])))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// BitOrdersCap is the last BitOrders bucket: members with this many orders or more.
const BitOrdersCap = 20

// BitDayLayout is the day field of BitActiveDay and BitAddedDay terms.
const BitDayLayout = "20060102"

// BitDay is the day field of t (UTC).
func BitDay(t time.Time) string { return t.UTC().Format(BitDayLayout) }

// BitHour is the hour field of t (UTC).
func BitHour(t time.Time) string { return t.UTC().Format("15") }

// SpendBucket is the lower bound of fen's spend bucket, as the term's
// sortable field: -1 (negative), 0, 1…99, then two significant digits
// (100, 110, …, 990, 1000, 1100, …). Every bucket holds the amounts from
// its bound to the next one's.
func SpendBucket(fen int64) string { return fmt.Sprintf("%019d", SpendFloor(fen)) }

// SpendFloor is the lower bound of fen's spend bucket; every negative
// amount (refunds beyond orders) is in bucket -1.
func SpendFloor(fen int64) int64 {
	if fen < 0 {
		return -1
	}
	p := spendStep(fen)
	return fen / p * p
}

// spendStep is the width of the bucket holding fen ≥ 0.
func spendStep(fen int64) int64 {
	p := int64(1)
	for fen/p >= 100 {
		p *= 10
	}
	return p
}

// SpendCeil is the lower bound of the bucket after the one whose floor is
// given: that bucket holds the amounts in [floor, SpendCeil(floor)).
func SpendCeil(floor int64) int64 {
	if floor < 0 {
		return 0
	}
	return floor + spendStep(floor)
}

// OrdersBucket is the BitOrders field of n orders.
func OrdersBucket(n int) string { return fmt.Sprintf("%02d", min(max(n, 0), BitOrdersCap)) }

// IsBitTerm reports whether a MemberTerms term has a bitmap (all but the leaderboard's).
func IsBitTerm(term string) bool {
	return len(term) < len(TermLeaders) || term[:len(TermLeaders)] != TermLeaders
}

// MemberBitTerms returns the terms whose bitmaps hold m, sorted and unique
// (nil m: none): her MemberTerms but the leaderboard's, and the bit-only terms.
func MemberBitTerms(m *Member) []string {
	if m == nil {
		return nil
	}
	return memberBitTerms(m, MemberTerms(m))
}

// memberBitTerms is MemberBitTerms given m's MemberTerms.
func memberBitTerms(m *Member, terms []string) []string {
	out := make([]string, 0, len(terms)+8)
	for _, t := range terms {
		if IsBitTerm(t) {
			out = append(out, t)
		}
	}
	out = append(out, BitAll,
		IndexKey(BitActiveDay, BitDay(m.LastActivity())),
		IndexKey(BitAddedDay, BitDay(m.AddedAt())),
		IndexKey(BitActiveHour, BitHour(m.LastActivity())),
		IndexKey(BitAddedHour, BitHour(m.AddedAt())),
		IndexKey(BitSpend, SpendBucket(m.SpendFen)),
		IndexKey(BitOrders, OrdersBucket(m.Orders)))
	if m.Channel != "" {
		out = append(out, IndexKey(BitChannelName, m.Channel))
	}
	if s := m.PrimaryStaff(); s != "" {
		out = append(out, IndexKey(BitPrimaryStaff, s))
	}
	out = append(out, NameGrams(m.Name)...)
	slices.Sort(out)
	return slices.Compact(out)
}

// SortedDiff returns the entries of sorted old missing from sorted now
// (removed) and those of now missing from old (added).
func SortedDiff(old, now []string) (removed, added []string) {
	i, j := 0, 0
	for i < len(old) || j < len(now) {
		switch {
		case j == len(now) || (i < len(old) && old[i] < now[j]):
			removed = append(removed, old[i])
			i++
		case i == len(old) || now[j] < old[i]:
			added = append(added, now[j])
			j++
		default:
			i++
			j++
		}
	}
	return removed, added
}

// MemberBits is implemented by the transactions of stores that keep the
// member bitmaps (storage/bolt, storage/postgres). Readers type-assert a
// bot.Tx; without it they read members.
type MemberBits interface {
	// TermBits returns the numbers of the members holding term (a copy the
	// caller owns; empty when nobody does).
	TermBits(term string) (*roaring.Bitmap, error)
	// PrefixBits calls fn with each bit term starting with prefix and its
	// members, in term order; returning false stops.
	PrefixBits(prefix string, fn func(term string, members *roaring.Bitmap) bool) error
	// MembersByNum calls fn with each stored member whose number is in
	// nums, in number order; returning false stops.
	MembersByNum(nums *roaring.Bitmap, fn func(num uint32, m *Member) bool) error
}
