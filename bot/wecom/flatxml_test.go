package wecom

import (
	"encoding/xml"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// xmlMessage is what encoding/xml makes of a plaintext: the reference the
// fast path must equal wherever it answers.
func xmlMessage(plain []byte) (message, error) {
	var m message
	err := xml.Unmarshal(plain, &m)
	return m, err
}

// equalMessages compares two messages, treating a nil and an empty Items
// list alike (encoding/xml leaves nil; neither is ever appended to).
func equalMessages(a, b message) bool {
	if len(a.MemChangeList.Items) == 0 && len(b.MemChangeList.Items) == 0 {
		a.MemChangeList.Items, b.MemChangeList.Items = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

// TestFlatFieldsCoverMessage: every element message reads with encoding/xml
// has its field in message.field, so the fast path never drops one (a field
// added to message without it fails here).
func TestFlatFieldsCoverMessage(t *testing.T) {
	var m message
	v := reflect.ValueOf(&m).Elem()
	for i := 0; i < v.NumField(); i++ {
		sf := v.Type().Field(i)
		tag := strings.Split(sf.Tag.Get("xml"), ",")[0]
		if sf.Name == "XMLName" {
			continue
		}
		f, bit := m.field([]byte(tag))
		if sf.Name == "MemChangeList" {
			if f != nil || bit == 0 {
				t.Errorf("MemChangeList: field() = %v, %b; want nil and a bit", f, bit)
			}
			continue
		}
		if f != v.Field(i).Addr().Interface().(*string) {
			t.Errorf("element <%s> (field %s) is not read by the fast path", tag, sf.Name)
		}
	}
}

// TestFlatXMLMatchesEncodingXML: the sample callbacks all take the fast
// path and read exactly as encoding/xml reads them; documents outside its
// plain shape are left to encoding/xml.
func TestFlatXMLMatchesEncodingXML(t *testing.T) {
	for _, plain := range samplePlaintexts(t) {
		var fast message
		if !fast.readFlat(plain, string(plain)) {
			t.Errorf("sample not read by the fast path:\n%s", plain)
			continue
		}
		want, err := xmlMessage(plain)
		if err != nil || !equalMessages(fast, want) {
			t.Errorf("fast %+v\nxml  %+v (%v)\nfor %s", fast, want, err, plain)
		}
	}
	for _, doc := range []string{
		`<?xml version="1.0"?><xml><Event>a</Event></xml>`,
		`<xml><!-- c --><Event>a</Event></xml>`,
		`<xml><Event a="1">a</Event></xml>`,
		`<xml><Event>a &amp; b</Event></xml>`,
		`<xml><Event>a&#x41;</Event></xml>`,
		"<xml><Event>a\r\nb</Event></xml>",
		"<xml><Event>\x01</Event></xml>",
		"<xml><Event>\xff</Event></xml>",
		"<xml><Event>\uffff</Event></xml>",
		`<xml><Event>a</Event><Event>b</Event></xml>`,
		`<xml><Event><b>x</b></Event></xml>`,
		`<xml><X><Y><Z>deep</Z></Y></X></xml>`,
		`<xml>stray<Event>a</Event></xml>`,
		`<xml><Event/></xml>`,
		`<xml><x:Event>a</x:Event></xml>`,
		`<xml><Event>a</Event></xml>trailing`,
		`<xml><Event>a</Event>`,
		`<xml><Event>a</Eventx></xml>`,
		`<xml><Event><![CDATA[a]]</Event></xml>`,
		`<xml><Event>a > b</Event></xml>`,
	} {
		var m message
		if m.readFlat([]byte(doc), doc) {
			t.Errorf("fast path took %q, which encoding/xml must read", doc)
		}
	}
	// Plain documents it takes, beyond the samples: mixed runs, unknown
	// elements with children, empty values, whitespace.
	for _, doc := range []string{
		"<xml>\n  <Content>  a <![CDATA[<b>]]> c  </Content>\n</xml>\n",
		`<xml><Unknown><Any>1</Any><Other/></Unknown><Event>e</Event></xml>`,
		`<xml><Unknown><Any>1</Any><More>2</More></Unknown><Event></Event></xml>`,
		`<xml><MemChangeList> x <Item>a</Item>,<Item><![CDATA[b]]></Item><Other>o</Other></MemChangeList></xml>`,
		`<other><Event>e</Event></other>`,
	} {
		var fast message
		ok := fast.readFlat([]byte(doc), doc)
		want, err := xmlMessage([]byte(doc))
		if ok && (err != nil || !equalMessages(fast, want)) {
			t.Errorf("%q: fast %+v, xml %+v (%v)", doc, fast, want, err)
		}
	}
}

// FuzzFlatXMLMatchesEncodingXML: on every input the fast path takes, the
// message and the envelope read exactly as encoding/xml reads them.
func FuzzFlatXMLMatchesEncodingXML(f *testing.F) {
	for _, p := range samplePlaintexts(f) {
		f.Add(p)
	}
	f.Add([]byte(`<xml><MemChangeList><Item>a</Item></MemChangeList><Encrypt>e</Encrypt></xml>`))
	f.Add([]byte("<xml>\n<Content> a <![CDATA[b]]> </Content><U><V>1</V></U></xml>"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var fast message
		if fast.readFlat(doc, string(doc)) {
			want, err := xmlMessage(doc)
			if err != nil || !equalMessages(fast, want) {
				t.Fatalf("message: fast %+v\nxml  %+v (%v)", fast, want, err)
			}
		}
		if encrypt, ok := flatEncrypt(doc); ok {
			var want xmlEnvelope
			if err := xml.Unmarshal(doc, &want); err != nil || want.XMLName != (xml.Name{Local: "xml"}) || string(encrypt) != want.Encrypt {
				t.Fatalf("envelope: fast %q, xml %+v (%v)", encrypt, want, err)
			}
		}
	})
}

// plainCharsBytewise is plainChars one byte at a time, as it was written
// first.
func plainCharsBytewise(doc []byte) bool {
	for i := 0; i < len(doc); i++ {
		c := doc[i]
		switch {
		case c < 0x20:
			if c != '\t' && c != '\n' {
				return false
			}
		case c == 0xEF && i+2 < len(doc) && doc[i+1] == 0xBF && (doc[i+2] == 0xBE || doc[i+2] == 0xBF):
			return false
		}
	}
	return utf8.Valid(doc)
}

// TestPlainCharsIsBytewise: the word-at-a-time check answers as the
// bytewise one for every byte at every position of a word.
func TestPlainCharsIsBytewise(t *testing.T) {
	base := []byte("<xml><A><![CDATA[abcdefghijklmnopqrstuvwxyz0123456789]]></A></xml>")
	for _, p := range samplePlaintexts(t) {
		if plainChars(p) != plainCharsBytewise(p) {
			t.Errorf("sample %.40q: plainChars %v", p, plainChars(p))
		}
	}
	for pos := 0; pos < 24; pos++ {
		for c := 0; c < 256; c++ {
			doc := append([]byte{}, base...)
			doc[pos] = byte(c)
			for _, d := range [][]byte{doc, append(append([]byte{}, doc[:pos+1]...), "\xbf\xbe"...), append(append([]byte{}, doc[:pos+1]...), "\xbf\xbdtail"...)} {
				if got, want := plainChars(d), plainCharsBytewise(d); got != want {
					t.Fatalf("%q: plainChars %v, bytewise %v", d, got, want)
				}
			}
		}
	}
}

func FuzzPlainChars(f *testing.F) {
	f.Add([]byte("<xml>\t\n\r\x00\x7f\xef\xbf\xbe\xef\xbf\xbd 你好</xml>"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if got, want := plainChars(doc), plainCharsBytewise(doc); got != want {
			t.Fatalf("%q: plainChars %v, bytewise %v", doc, got, want)
		}
	})
}
