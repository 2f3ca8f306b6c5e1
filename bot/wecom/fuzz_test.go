package wecom

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Seeds come from the official vectors and testdata/messages; inputs the
// fuzzer finds go to testdata/fuzz/<FuzzName>/ as usual.

func samplePlaintexts(tb testing.TB) [][]byte {
	tb.Helper()
	entries, err := os.ReadDir(filepath.Join("testdata", "messages"))
	if err != nil {
		tb.Fatal(err)
	}
	plains := [][]byte{[]byte(loadVectors(tb).Message.ExpectPlaintext)}
	for _, e := range entries {
		plains = append(plains, readSample(tb, e.Name()))
	}
	return plains
}

// isSentinel reports whether err wraps exactly one of the package's sentinels.
func isSentinel(err error) bool {
	n := 0
	for _, s := range []error{ErrBadSignature, ErrReceiveID, ErrMalformed} {
		if errors.Is(err, s) {
			n++
		}
	}
	return n == 1
}

func FuzzDecrypt(f *testing.F) {
	v := loadVectors(f)
	c := vectorCrypter(f, v.Config.CorpID)
	f.Add(v.VerifyURL.Query.Echostr)
	f.Add(vectorEncrypt(f))
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAA==")
	for _, p := range samplePlaintexts(f)[:3] {
		enc, err := c.Encrypt(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, encrypt string) {
		msg, err := c.Decrypt(encrypt)
		if err != nil {
			if msg != nil || !isSentinel(err) {
				t.Fatalf("Decrypt = %q, %v", msg, err)
			}
			return
		}
		// Whatever decrypts must survive a round trip.
		enc, err := c.Encrypt(msg)
		if err != nil {
			t.Fatal(err)
		}
		again, err := c.Decrypt(enc)
		if err != nil || !bytes.Equal(again, msg) {
			t.Fatalf("round trip = %q, %v; want %q", again, err, msg)
		}
	})
}

func FuzzOpenXML(f *testing.F) {
	v := loadVectors(f)
	c := vectorCrypter(f, v.Config.CorpID)
	q := v.Message.Query
	f.Add(q.MsgSignature, q.Timestamp, q.Nonce, []byte(v.Message.Body), false)
	f.Add(q.MsgSignature, q.Timestamp, q.Nonce, []byte(v.Message.Body), true)
	f.Add("", "", "", []byte("<xml><Encrypt></Encrypt></xml>"), true)
	f.Add("", "1", "n", []byte("<xml><Encrypt>AAAA</Encrypt></xml>"), true)
	for _, p := range samplePlaintexts(f)[:4] {
		body, sig, err := c.SealXML(p, "1718000000", "nonce")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sig, "1718000000", "nonce", body, true)
	}
	f.Fuzz(func(t *testing.T, sig, ts, nonce string, body []byte, sign bool) {
		// With sign set, sign whatever Encrypt the body carries, so mutated
		// ciphertexts get past the signature into Decrypt.
		if sign {
			var env xmlEnvelope
			if xml.Unmarshal(body, &env) == nil {
				sig = c.Sign(ts, nonce, env.Encrypt)
			}
		}
		plain, err := c.OpenXML(sig, ts, nonce, body)
		if err != nil {
			if plain != nil || !isSentinel(err) {
				t.Fatalf("OpenXML = %q, %v", plain, err)
			}
			return
		}
		if !sign && sig != c.Sign(ts, nonce, extractEncrypt(t, body)) {
			t.Fatalf("opened a body whose signature does not match")
		}
		// Every plaintext that opens must parse or be cleanly malformed.
		if _, err := ParseMessage(plain, time.Unix(0, 0)); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
}

func extractEncrypt(t *testing.T, body []byte) string {
	var env xmlEnvelope
	if err := xml.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	return env.Encrypt
}

func FuzzParseMessage(f *testing.F) {
	for _, p := range samplePlaintexts(f) {
		f.Add(p)
	}
	f.Add([]byte("<xml><MemChangeList>a,b<Item>c</Item>,d</MemChangeList></xml>"))
	f.Add([]byte("<xml><CreateTime>99999999999999</CreateTime><MsgType>text</MsgType></xml>"))
	f.Add([]byte("<xml><MsgType>event</MsgType><Event>change_external_contact</Event><UserID>a|b,c%d</UserID></xml>"))
	f.Add([]byte("not xml"))
	receivedAt := time.Date(2024, 6, 10, 8, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, plaintext []byte) {
		ev, err := ParseMessage(plaintext, receivedAt)
		if err != nil {
			if ev != nil || !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseMessage = %+v, %v", ev, err)
			}
			return
		}
		if ev.Raw != string(plaintext) || ev.DedupeKey == "" || ev.Type == "" || ev.Source == "" {
			t.Fatalf("incomplete event %+v", ev)
		}
		again, err := ParseMessage(bytes.Clone(plaintext), receivedAt.Add(time.Hour))
		if err != nil || again.DedupeKey != ev.DedupeKey {
			t.Fatalf("key not stable: %q vs %q (%v)", ev.DedupeKey, again.DedupeKey, err)
		}
		// The event log stores events as JSON: every parsed event must encode.
		if _, err := json.Marshal(ev); err != nil {
			t.Fatalf("event does not marshal: %v", err)
		}
	})
}
