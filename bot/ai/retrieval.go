package ai

import (
	"math"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Doc is one knowledge entry: an FAQ question and answer from the scenario,
// or a section of an operator's knowledge file.
type Doc struct {
	Q, A     string
	Keywords []string
	// Source names where the entry came from (file:line), for logs.
	Source string
}

// Hit is a retrieved entry with its BM25 score and the share (0..1, by
// IDF) of the question's known terms it contains, which is what the
// offline model and the price guard judge relevance by.
type Hit struct {
	Doc      *Doc
	Score    float64
	Coverage float64
	doc      int32
}

// Tokens splits text into search terms that work for Chinese without a
// dictionary: runs of Han (and kana/hangul) characters become overlapping
// bigrams (a single character stays a unigram), runs of ASCII letters and
// digits become lower-cased words. Punctuation and spaces separate.
func Tokens(s string) []string {
	ts := tokenize(s)
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.term
	}
	return out
}

// token is a term and the query units it covers: units are runes for CJK
// and whole words for ASCII, numbered from 0.
type token struct {
	term        string
	first, last int
}

func tokenize(s string) []token {
	out := make([]token, 0, len(s)/2)
	var cjk []rune
	unit := 0 // index of the next unit
	cjkStart := 0
	flushCJK := func() {
		switch len(cjk) {
		case 0:
		case 1:
			out = append(out, token{string(cjk), cjkStart, cjkStart})
		default:
			for i := 0; i+1 < len(cjk); i++ {
				out = append(out, token{string(cjk[i : i+2]), cjkStart + i, cjkStart + i + 1})
			}
		}
		cjk = cjk[:0]
	}
	word := -1 // start of the current ASCII word in s
	for i, r := range s {
		isWord := r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))
		if !isWord && word >= 0 {
			out = append(out, token{strings.ToLower(s[word:i]), unit, unit})
			unit++
			word = -1
		}
		switch {
		case isWord:
			flushCJK()
			if word < 0 {
				word = i
			}
		case isCJK(r):
			if len(cjk) == 0 {
				cjkStart = unit
			}
			cjk = append(cjk, r)
			unit++
		default:
			flushCJK()
		}
	}
	if word >= 0 {
		out = append(out, token{strings.ToLower(s[word:]), unit, unit})
	}
	flushCJK()
	return out
}

// fillers are characters that carry no topic (particles, pronouns, "请问"),
// left out when judging how much of a question an entry covers.
const fillers = "吗呢呀吧啊哦嘛的了么我你他她它们请问是有在和就都也要想能可以怎么什么这那个一下"

func isCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

// BM25 parameters (the usual defaults).
const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

// accumulators are Search's per-document sums, zeroed again after use.
type accumulators struct {
	scores  []float64
	touched []int32
}

type posting struct {
	doc int32
	tf  float32
}

// Index is a BM25 index over knowledge entries; build it once per scenario
// (NewIndex) and share it: Search is safe for concurrent use.
type Index struct {
	docs     []Doc
	terms    map[string]int32
	postings [][]posting
	idf      []float64
	docLen   []float32
	avgLen   float64
	scratch  sync.Pool // *accumulators, one per concurrent Search
}

// NewIndex indexes docs. The question and keywords count twice: they say
// what an entry is about, the answer says more than that.
func NewIndex(docs []Doc) *Index {
	ix := &Index{docs: docs, terms: map[string]int32{}, docLen: make([]float32, len(docs))}
	var total float64
	tf := map[int32]float32{}
	for d := range docs {
		clear(tf)
		add := func(text string, w float32) {
			for _, t := range Tokens(text) {
				id, ok := ix.terms[t]
				if !ok {
					id = int32(len(ix.postings))
					ix.terms[t] = id
					ix.postings = append(ix.postings, nil)
				}
				tf[id] += w
				ix.docLen[d] += w
			}
		}
		add(docs[d].Q, 2)
		for _, k := range docs[d].Keywords {
			add(k, 2)
		}
		add(docs[d].A, 1)
		for id, f := range tf {
			ix.postings[id] = append(ix.postings[id], posting{doc: int32(d), tf: f})
		}
		total += float64(ix.docLen[d])
	}
	if len(docs) > 0 {
		ix.avgLen = total / float64(len(docs))
	}
	n := float64(len(docs))
	ix.idf = make([]float64, len(ix.postings))
	for id, ps := range ix.postings {
		df := float64(len(ps))
		ix.idf[id] = math.Log(1 + (n-df+0.5)/(df+0.5))
	}
	ix.scratch.New = func() any {
		return &accumulators{scores: make([]float64, len(docs))}
	}
	return ix
}

// Len is the number of indexed entries.
func (ix *Index) Len() int { return len(ix.docs) }

// Search returns up to k entries for query, best first; entries that share
// no term with the query are never returned.
func (ix *Index) Search(query string, k int) []Hit {
	if ix == nil || len(ix.docs) == 0 || k <= 0 {
		return nil
	}
	toks := tokenize(query)
	seen := map[int32]bool{}
	var qterms []int32
	for _, t := range toks {
		id, ok := ix.terms[t.term]
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		qterms = append(qterms, id)
	}
	if len(qterms) == 0 {
		return nil
	}
	acc := ix.scratch.Get().(*accumulators)
	scores := acc.scores
	touched := acc.touched[:0]
	for _, id := range qterms {
		idf := ix.idf[id]
		for _, p := range ix.postings[id] {
			if scores[p.doc] == 0 {
				touched = append(touched, p.doc)
			}
			tf := float64(p.tf)
			norm := tf + bm25K1*(1-bm25B+bm25B*float64(ix.docLen[p.doc])/ix.avgLen)
			scores[p.doc] += idf * tf * (bm25K1 + 1) / norm
		}
	}
	hits := make([]Hit, 0, min(k, len(touched)))
	for _, d := range touched {
		h := Hit{Doc: &ix.docs[d], Score: scores[d], doc: d}
		scores[d] = 0
		if len(hits) < k {
			hits = append(hits, h)
			if len(hits) == k {
				sortHits(hits)
			}
			continue
		}
		if h.Score > hits[k-1].Score {
			hits[k-1] = h
			sortHits(hits)
		}
	}
	acc.touched = touched
	ix.scratch.Put(acc)
	sortHits(hits)
	for i := range hits {
		hits[i].Coverage = ix.coverage(query, toks, hits[i].doc)
	}
	// An entry whose keyword the question names outright is on topic even
	// when the question's other words are noise.
	for i := range hits {
		for _, kw := range hits[i].Doc.Keywords {
			if kw != "" && strings.Contains(query, kw) && hits[i].Coverage < 0.6 {
				hits[i].Coverage = 0.6
			}
		}
	}
	return hits
}

func sortHits(h []Hit) {
	sort.SliceStable(h, func(i, j int) bool { return h[i].Score > h[j].Score })
}

// coverage is the share of the question's topical units (not fillers) that
// terms the entry contains cover.
func (ix *Index) coverage(query string, toks []token, doc int32) float64 {
	n := 0
	for _, t := range toks {
		if t.last+1 > n {
			n = t.last + 1
		}
	}
	covered := make([]bool, n)
	for _, t := range toks {
		id, ok := ix.terms[t.term]
		if !ok || !ix.contains(id, doc) {
			continue
		}
		for u := t.first; u <= t.last; u++ {
			covered[u] = true
		}
	}
	filler := fillerUnits(query, n)
	total, hit := 0, 0
	for u := 0; u < n; u++ {
		if filler[u] {
			continue
		}
		total++
		if covered[u] {
			hit++
		}
	}
	if total == 0 {
		return 0
	}
	return float64(hit) / float64(total)
}

// fillerUnits marks the query's units that are filler characters.
func fillerUnits(query string, n int) []bool {
	out := make([]bool, n)
	unit := 0
	inWord := false
	for _, r := range query {
		isWord := r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))
		if inWord && !isWord {
			unit++
		}
		inWord = isWord
		if isCJK(r) {
			if unit < n && strings.ContainsRune(fillers, r) {
				out[unit] = true
			}
			unit++
		}
	}
	return out
}

// contains reports whether doc has term id (postings are in doc order).
func (ix *Index) contains(id, doc int32) bool {
	ps := ix.postings[id]
	i := sort.Search(len(ps), func(i int) bool { return ps[i].doc >= doc })
	return i < len(ps) && ps[i].doc == doc
}
