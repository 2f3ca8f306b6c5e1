package wecom

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// flatXML reads the plain shape every WeCom callback body and plaintext
// has — <xml> holding elements whose content is text or CDATA, a few (a
// group change's MemChangeList) holding a level of such elements in turn —
// without encoding/xml's tokenizer and reflection, which were a third of
// the CPU of acknowledging a callback.
//
// It is a fast path, never a second opinion: it accepts only documents
// whose meaning is plain — no prolog, comments, attributes, namespaces,
// entity or character references, carriage returns, control characters,
// invalid UTF-8, deeper nesting or stray text — and reports false for
// anything else, which then goes to encoding/xml as before (which also
// names the errors). On every document it accepts, the values it gives
// are exactly encoding/xml's (FuzzFlatXMLMatchesEncodingXML).
//
// visit is called for each child of the root in order with its name, its
// character data (text and CDATA concatenated, as encoding/xml's chardata)
// and its own children's names and character data; returning false stops
// the scan and makes flatXML report false. root is the root's name.
func flatXML(doc []byte, visit func(name []byte, text flatText, kids []flatKid) bool) (root []byte, ok bool) {
	if !plainChars(doc) {
		return nil, false
	}
	p := flatParser{b: doc}
	p.space()
	root, ok = p.startTag()
	if !ok {
		return nil, false
	}
	var kids []flatKid
	for {
		if t, ok := p.text(); !ok || !isSpace(t.Bytes(p.b)) {
			return nil, false
		}
		if p.endTag(root) {
			break
		}
		name, ok := p.startTag()
		if !ok {
			return nil, false
		}
		text, ok := p.content()
		if !ok {
			return nil, false
		}
		kids = kids[:0]
		for !p.endTag(name) {
			kid, ok := p.startTag()
			if !ok {
				return nil, false
			}
			kt, ok := p.content()
			if !ok || !p.endTag(kid) {
				return nil, false
			}
			kids = append(kids, flatKid{Name: kid, Text: kt})
			more, ok := p.content()
			if !ok {
				return nil, false
			}
			text = p.join(text, more)
		}
		if !visit(name, text, kids) {
			return nil, false
		}
	}
	p.space()
	return root, p.i == len(p.b)
}

// flatKid is an element inside a child of the root.
type flatKid struct {
	Name []byte
	Text flatText
}

// flatText is character data: doc[Start:End] when it is one run (nearly
// always: then a string of the whole document serves every value without
// a copy), else the runs joined in Joined.
type flatText struct {
	Start, End int
	Joined     []byte
}

// In returns the text, given the document and the document as a string.
func (t flatText) In(doc string) string {
	if t.Joined != nil {
		return string(t.Joined)
	}
	return doc[t.Start:t.End]
}

// Bytes returns the text given the document.
func (t flatText) Bytes(doc []byte) []byte {
	if t.Joined != nil {
		return t.Joined
	}
	return doc[t.Start:t.End]
}

func (t flatText) empty() bool { return t.Joined == nil && t.Start == t.End }

// join appends character data run b to a.
func (p *flatParser) join(a, b flatText) flatText {
	switch {
	case b.empty():
		return a
	case a.empty():
		return b
	}
	return flatText{Joined: append(append([]byte{}, a.Bytes(p.b)...), b.Bytes(p.b)...)}
}

type flatParser struct {
	b []byte
	i int
}

func (p *flatParser) space() {
	for p.i < len(p.b) && isSpaceByte(p.b[p.i]) {
		p.i++
	}
}

// startTag reads <name> (ASCII letters, digits, _ . - only; nothing else
// inside the brackets) and returns the name.
func (p *flatParser) startTag() ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '<' {
		return nil, false
	}
	j := p.i + 1
	for j < len(p.b) && isNameByte(p.b[j], j == p.i+1) {
		j++
	}
	if j == p.i+1 || j >= len(p.b) || p.b[j] != '>' {
		return nil, false
	}
	name := p.b[p.i+1 : j]
	p.i = j + 1
	return name, true
}

// endTag reads </name> if it is next.
func (p *flatParser) endTag(name []byte) bool {
	rest := p.b[p.i:]
	if len(rest) < len(name)+3 || rest[0] != '<' || rest[1] != '/' || !bytes.Equal(rest[2:2+len(name)], name) || rest[2+len(name)] != '>' {
		return false
	}
	p.i += len(name) + 3
	return true
}

// content reads character data up to the next tag that is not CDATA:
// plain text (no '&' or '>') and CDATA sections, concatenated.
func (p *flatParser) content() (flatText, bool) {
	out := flatText{Start: p.i, End: p.i}
	for {
		t, ok := p.text()
		if !ok {
			return flatText{}, false
		}
		out = p.join(out, t)
		if !bytes.HasPrefix(p.b[p.i:], cdataOpen) {
			return out, true
		}
		p.i += len(cdataOpen)
		end := bytes.Index(p.b[p.i:], cdataClose)
		if end < 0 {
			return flatText{}, false
		}
		out = p.join(out, flatText{Start: p.i, End: p.i + end})
		p.i += end + len(cdataClose)
	}
}

// text reads plain text up to the next '<'.
func (p *flatParser) text() (flatText, bool) {
	j := bytes.IndexByte(p.b[p.i:], '<')
	if j < 0 {
		return flatText{}, false
	}
	t := p.b[p.i : p.i+j]
	if bytes.IndexByte(t, '&') >= 0 || bytes.IndexByte(t, '>') >= 0 {
		return flatText{}, false
	}
	start := p.i
	p.i += j
	return flatText{Start: start, End: p.i}, true
}

var (
	cdataOpen  = []byte("<![CDATA[")
	cdataClose = []byte("]]>")
)

// plainChars reports whether doc is valid UTF-8 of XML characters with no
// carriage return (encoding/xml rewrites \r and \r\n to \n). Runs of
// eight printable ASCII bytes — nearly all of a callback — are checked a
// word at a time (TestPlainCharsIsBytewise).
func plainChars(doc []byte) bool {
	ascii := true
	for i := 0; i < len(doc); {
		if i+8 <= len(doc) {
			w := binary.LittleEndian.Uint64(doc[i:])
			// No byte below 0x20 (which borrows into its high bit) and
			// none at or above 0x80.
			if (w-0x2020202020202020)&^w&0x8080808080808080 == 0 && w&0x8080808080808080 == 0 {
				i += 8
				continue
			}
		}
		c := doc[i]
		switch {
		case c < 0x20:
			if c != '\t' && c != '\n' {
				return false
			}
		case c >= utf8.RuneSelf:
			ascii = false
			if c == 0xEF && i+2 < len(doc) && doc[i+1] == 0xBF && (doc[i+2] == 0xBE || doc[i+2] == 0xBF) {
				return false // U+FFFE, U+FFFF are not XML characters
			}
		}
		i++
	}
	return ascii || utf8.Valid(doc)
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

func isSpace(b []byte) bool {
	for _, c := range b {
		if !isSpaceByte(c) {
			return false
		}
	}
	return true
}

func isNameByte(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		return true
	case c >= '0' && c <= '9', c == '-', c == '.':
		return !first
	}
	return false
}
