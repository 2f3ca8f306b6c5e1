package scenarios

import (
	"sort"
	"strings"
)

// matcher finds the first keyword rule (in file order) a message matches.
//
// Every "contains" keyword of every rule goes into one Aho-Corasick automaton
// over bytes, whose states know the lowest rule index ending there, so one
// pass over the message finds the best keyword rule whatever the number of
// rules. Regex rules can't join the automaton; only those ordered before the
// best keyword hit are tried. Matching is case-insensitive for ASCII letters
// (keywords are lowered at load, the message while scanning).
type matcher struct {
	rules []*KeywordRule // in priority order
	nodes []acNode
	root  [256]int32 // dense transitions out of the root
	// regexRules are indexes into rules of rules with a regex, ascending.
	regexRules []int
}

type acNode struct {
	edges []acEdge // sorted by b
	fail  int32
	// best is the lowest rule index among keywords ending here or at any
	// suffix state (through fail links); -1 if none.
	best int32
}

type acEdge struct {
	b  byte
	to int32
}

func newMatcher(rules []*KeywordRule) *matcher {
	m := &matcher{rules: rules, nodes: []acNode{{fail: 0, best: -1}}}
	for i, r := range rules {
		if r.Regex != nil {
			m.regexRules = append(m.regexRules, i)
		}
		for _, kw := range r.Keywords {
			m.insert(lowerASCII(kw), int32(i))
		}
	}
	m.build()
	return m
}

func (m *matcher) insert(kw string, rule int32) {
	if kw == "" {
		return
	}
	cur := int32(0)
	for i := 0; i < len(kw); i++ {
		next := m.child(cur, kw[i])
		if next < 0 {
			m.nodes = append(m.nodes, acNode{best: -1})
			next = int32(len(m.nodes) - 1)
			n := &m.nodes[cur]
			at := sort.Search(len(n.edges), func(j int) bool { return n.edges[j].b >= kw[i] })
			n.edges = append(n.edges, acEdge{})
			copy(n.edges[at+1:], n.edges[at:])
			n.edges[at] = acEdge{kw[i], next}
		}
		cur = next
	}
	if b := m.nodes[cur].best; b < 0 || rule < b {
		m.nodes[cur].best = rule
	}
}

func (m *matcher) child(state int32, b byte) int32 {
	edges := m.nodes[state].edges
	if len(edges) <= 8 {
		for _, e := range edges {
			if e.b == b {
				return e.to
			}
		}
		return -1
	}
	i := sort.Search(len(edges), func(j int) bool { return edges[j].b >= b })
	if i < len(edges) && edges[i].b == b {
		return edges[i].to
	}
	return -1
}

// build computes fail links breadth-first and folds each state's fail
// chain into best.
func (m *matcher) build() {
	queue := make([]int32, 0, len(m.nodes))
	for _, e := range m.nodes[0].edges {
		m.nodes[e.to].fail = 0
		queue = append(queue, e.to)
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, e := range m.nodes[s].edges {
			f := m.nodes[s].fail
			for {
				if next := m.child(f, e.b); next >= 0 && next != e.to {
					m.nodes[e.to].fail = next
					break
				}
				if f == 0 {
					m.nodes[e.to].fail = 0
					break
				}
				f = m.nodes[f].fail
			}
			if fb := m.nodes[m.nodes[e.to].fail].best; fb >= 0 && (m.nodes[e.to].best < 0 || fb < m.nodes[e.to].best) {
				m.nodes[e.to].best = fb
			}
			queue = append(queue, e.to)
		}
	}
	for b := 0; b < 256; b++ {
		m.root[b] = 0
		if next := m.child(0, byte(b)); next >= 0 {
			m.root[b] = next
		}
	}
}

// match returns the first rule text matches, or nil.
func (m *matcher) match(text string) *KeywordRule {
	if m == nil || len(m.rules) == 0 {
		return nil
	}
	best := int32(len(m.rules))
	state := int32(0)
	for i := 0; i < len(text); i++ {
		c := text[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		for {
			if state == 0 {
				state = m.root[c]
				break
			}
			if next := m.child(state, c); next >= 0 {
				state = next
				break
			}
			state = m.nodes[state].fail
		}
		if b := m.nodes[state].best; b >= 0 && b < best {
			best = b
			if best == 0 {
				break
			}
		}
	}
	for _, i := range m.regexRules {
		if int32(i) >= best {
			break
		}
		if m.rules[i].Regex.MatchString(text) {
			return m.rules[i]
		}
	}
	if int(best) < len(m.rules) {
		return m.rules[best]
	}
	return nil
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.Map(func(r rune) rune {
				if 'A' <= r && r <= 'Z' {
					return r + 'a' - 'A'
				}
				return r
			}, s)
		}
	}
	return s
}
