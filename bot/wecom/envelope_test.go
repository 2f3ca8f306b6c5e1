package wecom

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func xmlUnmarshalString(s string, v any) error { return xml.Unmarshal([]byte(s), v) }

// signedBody wraps encrypt in a WeCom request envelope.
func signedBody(encrypt string) []byte {
	return []byte("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[" +
		encrypt + "]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>")
}

func TestOpenXMLRejects(t *testing.T) {
	v := loadVectors(t)
	corp := v.Config.CorpID
	c := vectorCrypter(t, corp)
	q := v.Message.Query
	body := v.Message.Body
	enc := vectorEncrypt(t)
	ts, nonce := q.Timestamp, q.Nonce

	// Rows that get past the signature sign their own ciphertext.
	signed := func(encrypt string) (string, []byte) { return c.Sign(ts, nonce, encrypt), signedBody(encrypt) }
	otherCorp := vectorCrypter(t, "wwsomeoneelse")
	foreign, err := otherCorp.Encrypt([]byte("<xml/>"))
	if err != nil {
		t.Fatal(err)
	}
	msg := "<xml>hi</xml>"
	n := headerLen + len(msg) + len(corp)

	flippedChar := enc[:10] + string(enc[10]^1) + enc[11:]
	type row struct {
		name string
		sig  string
		body []byte
		want error
	}
	tests := []row{
		{"wrong signature", strings.Repeat("0", 40), []byte(body), ErrBadSignature},
		{"empty signature", "", []byte(body), ErrBadSignature},
		{"uppercase signature", strings.ToUpper(q.MsgSignature), []byte(body), ErrBadSignature},
		{"flipped ciphertext char", q.MsgSignature, []byte(strings.Replace(body, enc, flippedChar, 1)), ErrBadSignature},
		{"empty body", q.MsgSignature, nil, ErrMalformed},
		{"non-XML body", q.MsgSignature, []byte("hello"), ErrMalformed},
		{"JSON body", q.MsgSignature, []byte(`{"encrypt":"` + enc + `"}`), ErrMalformed},
		{"truncated XML", q.MsgSignature, []byte(body[:len(body)/2]), ErrMalformed},
		{"root is not xml", q.MsgSignature, []byte("<root><Encrypt>" + enc + "</Encrypt></root>"), ErrMalformed},
		{"no Encrypt", q.MsgSignature, []byte("<xml><ToUserName>x</ToUserName></xml>"), ErrMalformed},
		{"empty Encrypt", q.MsgSignature, []byte("<xml><Encrypt></Encrypt></xml>"), ErrMalformed},
		{"empty xml", q.MsgSignature, []byte("<xml/>"), ErrMalformed},
	}
	add := func(name, encrypt string, want error) {
		sig, b := signed(encrypt)
		tests = append(tests, row{name, sig, b, want})
	}
	add("signed bad base64", "@@@@", ErrMalformed)
	add("signed truncated", enc[:len(enc)-4], ErrMalformed)
	add("signed, 18 bytes short", enc[:len(enc)-24], ErrMalformed)
	add("signed bad padding 0", encryptRaw(t, c, append(frame(uint32(len(msg)), msg, corp, padTo32(n)-1, 0), 0)), ErrMalformed)
	add("signed bad padding 33", encryptRaw(t, c, append(frame(uint32(len(msg)), msg, corp, padTo32(n)+31, 33), 33)), ErrMalformed)
	add("signed inconsistent padding", encryptRaw(t, c, append(frame(uint32(len(msg)), msg, corp, padTo32(n)-1, 9), byte(padTo32(n)))), ErrMalformed)
	add("signed length field past end", encryptRaw(t, c, frame(4096, msg, corp, padTo32(n), byte(padTo32(n)))), ErrMalformed)
	add("signed for another corp", foreign, ErrReceiveID)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.OpenXML(tt.sig, ts, nonce, tt.body)
			if !errors.Is(err, tt.want) {
				t.Fatalf("OpenXML = %q, %v; want %v", got, err, tt.want)
			}
			if got != nil {
				t.Errorf("plaintext returned with an error: %q", got)
			}
		})
	}
}

func TestOpenXMLNeedsTimestampAndNonce(t *testing.T) {
	v := loadVectors(t)
	c := vectorCrypter(t, v.Config.CorpID)
	q := v.Message.Query
	for _, tn := range [][2]string{{"", ""}, {"", q.Nonce}, {q.Timestamp, ""}, {q.Timestamp + "0", q.Nonce}} {
		if _, err := c.OpenXML(q.MsgSignature, tn[0], tn[1], []byte(v.Message.Body)); !errors.Is(err, ErrBadSignature) {
			t.Errorf("timestamp %q nonce %q: err = %v, want ErrBadSignature", tn[0], tn[1], err)
		}
	}

	// WeCom signs the sorted concatenation, so the signature does not bind
	// which value is the timestamp, nor where one value ends and the next
	// begins. This is the protocol, not a bug here; it means a timestamp age
	// check is only a weak freshness test and dedupe keys are the real
	// defence against replays.
	ts, nonce := q.Timestamp, q.Nonce // "1409659813", "1372623149": nonce sorts first
	for _, tn := range [][2]string{{nonce, ts}, {nonce[:5], nonce[5:] + ts}} {
		if _, err := c.OpenXML(q.MsgSignature, tn[0], tn[1], []byte(v.Message.Body)); err != nil {
			t.Errorf("timestamp %q nonce %q: err = %v; the sorted concatenation is unchanged, so it should verify", tn[0], tn[1], err)
		}
	}
}

// TestCrypterConcurrent: one Crypter serves every request (run with -race).
func TestCrypterConcurrent(t *testing.T) {
	c := vectorCrypter(t, "wx5823bf96d3bd56c7")
	plain := []byte(loadVectors(t).Message.ExpectPlaintext)
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			for j := range 50 {
				ts, nonce := fmt.Sprint(1718000000+j), fmt.Sprint(i)
				body, sig, err := c.SealXML(plain, ts, nonce)
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.OpenXML(sig, ts, nonce, body)
				if err != nil || string(got) != string(plain) {
					t.Fatalf("OpenXML = %q, %v", got, err)
				}
			}
		})
	}
}

func TestVerifyURLRejects(t *testing.T) {
	v := loadVectors(t)
	c := vectorCrypter(t, v.Config.CorpID)
	q := v.VerifyURL.Query
	tests := []struct {
		name, sig, echostr string
		want               error
	}{
		{"wrong signature", strings.Repeat("a", 40), q.Echostr, ErrBadSignature},
		{"tampered echostr", q.MsgSignature, "Q" + q.Echostr[1:], ErrBadSignature},
		{"empty echostr", q.MsgSignature, "", ErrMalformed},
		{"signed garbage", c.Sign(q.Timestamp, q.Nonce, "garbage"), "garbage", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.VerifyURL(tt.sig, q.Timestamp, q.Nonce, tt.echostr); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	// For the AI bot (receive id ""), the official app echostr is for a corp.
	if _, err := vectorCrypter(t, "").VerifyURL(q.MsgSignature, q.Timestamp, q.Nonce, q.Echostr); !errors.Is(err, ErrReceiveID) {
		t.Errorf("AI bot crypter: err = %v, want ErrReceiveID", err)
	}
}

func TestSealOpenXML(t *testing.T) {
	c := vectorCrypter(t, "wx5823bf96d3bd56c7")
	plain := []byte(loadVectors(t).Message.ExpectPlaintext)
	tests := []struct{ name, ts, nonce string }{
		{"plain", "1718000000", "1372623149"},
		{"nonce needing escapes", "1718000000", "a]]>b<c&d"},
		{"timestamp needing escapes", "<17&18>", "n"},
		{"empty nonce", "1718000000", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, sig, err := c.SealXML(plain, tt.ts, tt.nonce)
			if err != nil {
				t.Fatal(err)
			}
			var reply struct {
				XMLName      xml.Name `xml:"xml"`
				Encrypt      string   `xml:"Encrypt"`
				MsgSignature string   `xml:"MsgSignature"`
				TimeStamp    string   `xml:"TimeStamp"`
				Nonce        string   `xml:"Nonce"`
			}
			if err := xml.Unmarshal(body, &reply); err != nil {
				t.Fatalf("SealXML made invalid XML %s: %v", body, err)
			}
			if reply.MsgSignature != sig || reply.TimeStamp != tt.ts || reply.Nonce != tt.nonce {
				t.Errorf("reply fields = %+v", reply)
			}
			got, err := c.OpenXML(sig, tt.ts, tt.nonce, body)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(plain) {
				t.Errorf("round trip = %q", got)
			}
		})
	}
}

func TestSealOpenJSON(t *testing.T) {
	bot := vectorCrypter(t, "") // the AI bot's receive id is empty
	plain := []byte(`{"msgtype":"stream","stream":{"id":"s1","finish":false,"content":"你好 <b>\"x\"</b>"}}`)
	body, err := bot.SealJSON(plain, "1718000000", "nonce-1")
	if err != nil {
		t.Fatal(err)
	}
	var reply map[string]any
	if err := json.Unmarshal(body, &reply); err != nil {
		t.Fatalf("SealJSON made invalid JSON %s: %v", body, err)
	}
	for _, k := range []string{"encrypt", "msgsignature", "timestamp", "nonce"} {
		if _, ok := reply[k].(string); !ok {
			t.Errorf("reply has no string %q: %s", k, body)
		}
	}
	sig := reply["msgsignature"].(string)
	if reply["timestamp"] != "1718000000" || reply["nonce"] != "nonce-1" {
		t.Errorf("reply = %s", body)
	}
	got, err := bot.OpenJSON(sig, "1718000000", "nonce-1", body)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(plain) {
		t.Errorf("round trip = %q", got)
	}

	// A request body as the AI bot sends it.
	enc := reply["encrypt"].(string)
	if _, err := bot.OpenJSON(sig, "1718000000", "nonce-1", []byte(`{"encrypt":"`+enc+`"}`)); err != nil {
		t.Errorf("request body: %v", err)
	}

	corp := vectorCrypter(t, "wx5823bf96d3bd56c7")
	tests := []struct {
		name string
		c    *Crypter
		sig  string
		body string
		want error
	}{
		{"wrong signature", bot, strings.Repeat("0", 40), `{"encrypt":"` + enc + `"}`, ErrBadSignature},
		{"app crypter on a bot message", corp, sig, `{"encrypt":"` + enc + `"}`, ErrReceiveID},
		{"not JSON", bot, sig, `<xml/>`, ErrMalformed},
		{"empty body", bot, sig, ``, ErrMalformed},
		{"null", bot, sig, `null`, ErrMalformed},
		{"array", bot, sig, `[]`, ErrMalformed},
		{"no encrypt", bot, sig, `{"msgsignature":"x"}`, ErrMalformed},
		{"encrypt not a string", bot, sig, `{"encrypt":42}`, ErrMalformed},
		{"signed garbage", bot, bot.Sign("1718000000", "nonce-1", "garbage"), `{"encrypt":"garbage"}`, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.c.OpenJSON(tt.sig, "1718000000", "nonce-1", []byte(tt.body)); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestOpenXMLPlaintextOwnsItsMemory: the server reads bodies into buffers
// it uses again for the next request, so the plaintext OpenXML returns
// must not be a view of the body, and every later use of the one Crypter
// (its decrypters are used again too) must leave it as it was.
func TestOpenXMLPlaintextOwnsItsMemory(t *testing.T) {
	c := vectorCrypter(t, "wx5823bf96d3bd56c7")
	plains := samplePlaintexts(t)
	var opened [][]byte
	for i, p := range plains {
		ts, nonce := fmt.Sprint(1718000000+i), fmt.Sprint("n", i)
		body, sig, err := c.SealXML(p, ts, nonce)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.OpenXML(sig, ts, nonce, body)
		if err != nil {
			t.Fatalf("OpenXML: %v", err)
		}
		for j := range body {
			body[j] = 'X' // the buffer's next request
		}
		// A failing message in between must not disturb the next one.
		if _, err := c.OpenXML(sig, ts, nonce, []byte("<xml><Encrypt>AAAAAAAAAAAAAAAAAAAAAA==</Encrypt></xml>")); err == nil {
			t.Fatal("OpenXML accepted a forged body")
		}
		opened = append(opened, got)
	}
	for i, got := range opened {
		if string(got) != string(plains[i]) {
			t.Errorf("plaintext %d = %q after its body was overwritten, want %q", i, got, plains[i])
		}
	}
}

// TestVerifyBytesIsVerify: the body's Encrypt as bytes signs as the
// string does, whatever its place among the sorted parts.
func TestVerifyBytesIsVerify(t *testing.T) {
	c := vectorCrypter(t, "wx5823bf96d3bd56c7")
	for _, enc := range []string{"", "0", "1409659813", "1409659814", "zzzz", "AAAA+/==", strings.Repeat("Q", 3000)} {
		for _, tn := range [][2]string{{"1409659813", "1372623149"}, {"", ""}, {"zzzz", "zzzz"}} {
			sig := c.Sign(tn[0], tn[1], enc)
			if !verify(c, sig, tn[0], tn[1], []byte(enc)) || !c.Verify(sig, tn[0], tn[1], enc) {
				t.Errorf("encrypt %q ts %q nonce %q: the signature does not verify", enc, tn[0], tn[1])
			}
			if verify(c, sig, tn[0], tn[1], []byte(enc+"x")) {
				t.Errorf("encrypt %q+x verifies with %q's signature", enc, enc)
			}
		}
	}
}
