package wecom

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// vectors is testdata/wecom-callback-vectors.json: WeCom's official
// WXBizMsgCrypt sample values.
type vectors struct {
	Config struct {
		Token          string `json:"token"`
		EncodingAESKey string `json:"encoding_aes_key"`
		CorpID         string `json:"corp_id"`
	} `json:"config"`
	VerifyURL struct {
		Query struct {
			MsgSignature string `json:"msg_signature"`
			Timestamp    string `json:"timestamp"`
			Nonce        string `json:"nonce"`
			Echostr      string `json:"echostr"`
		} `json:"query"`
		ExpectBody string `json:"expect_body"`
	} `json:"verify_url"`
	Message struct {
		Query struct {
			MsgSignature string `json:"msg_signature"`
			Timestamp    string `json:"timestamp"`
			Nonce        string `json:"nonce"`
		} `json:"query"`
		Body            string `json:"body"`
		ExpectPlaintext string `json:"expect_plaintext"`
		ExpectReceiveID string `json:"expect_receive_id"`
	} `json:"message"`
}

func loadVectors(tb testing.TB) vectors {
	tb.Helper()
	b, err := os.ReadFile("testdata/wecom-callback-vectors.json")
	if err != nil {
		tb.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// vectorCrypter returns a Crypter for the official vectors, sealing for
// receiveID.
func vectorCrypter(tb testing.TB, receiveID string) *Crypter {
	tb.Helper()
	v := loadVectors(tb)
	c, err := NewCrypter(v.Config.Token, v.Config.EncodingAESKey, receiveID)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// vectorEncrypt is the Encrypt element of the official message vector.
func vectorEncrypt(tb testing.TB) string {
	tb.Helper()
	var env xmlEnvelope
	if err := xmlUnmarshalString(loadVectors(tb).Message.Body, &env); err != nil {
		tb.Fatal(err)
	}
	return env.Encrypt
}

// encryptRaw CBC-encrypts raw (already framed and padded by the test, a
// multiple of 16 bytes) with c's key, to build malformed plaintexts.
func encryptRaw(tb testing.TB, c *Crypter, raw []byte) string {
	tb.Helper()
	if len(raw)%aes.BlockSize != 0 {
		tb.Fatalf("raw is %d bytes, not a multiple of 16", len(raw))
	}
	buf := bytes.Clone(raw)
	cipher.NewCBCEncrypter(c.block, c.key[:aes.BlockSize]).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf)
}

// frame builds random16 ‖ len ‖ msg ‖ receiveID with the given length field,
// padded with pad bytes of value padValue (padCount of them).
func frame(lenField uint32, msg, receiveID string, padCount int, padValue byte) []byte {
	b := make([]byte, headerLen, headerLen+len(msg)+len(receiveID)+padCount)
	copy(b, "0123456789abcdef")
	binary.BigEndian.PutUint32(b[randomLen:], lenField)
	b = append(b, msg...)
	b = append(b, receiveID...)
	for range padCount {
		b = append(b, padValue)
	}
	return b
}

// padTo32 returns how many pad bytes make n a multiple of 32 (1..32).
func padTo32(n int) int { return padBlock - n%padBlock }

func TestOfficialVectorVerifyURL(t *testing.T) {
	v := loadVectors(t)
	c := vectorCrypter(t, v.Config.CorpID)
	q := v.VerifyURL.Query
	if got := c.Sign(q.Timestamp, q.Nonce, q.Echostr); got != q.MsgSignature {
		t.Errorf("Sign = %s, want %s", got, q.MsgSignature)
	}
	got, err := c.VerifyURL(q.MsgSignature, q.Timestamp, q.Nonce, q.Echostr)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != v.VerifyURL.ExpectBody {
		t.Errorf("VerifyURL = %q, want %q", got, v.VerifyURL.ExpectBody)
	}
}

func TestOfficialVectorMessage(t *testing.T) {
	v := loadVectors(t)
	c := vectorCrypter(t, v.Message.ExpectReceiveID)
	q := v.Message.Query
	if got := c.Sign(q.Timestamp, q.Nonce, vectorEncrypt(t)); got != q.MsgSignature {
		t.Errorf("Sign = %s, want %s", got, q.MsgSignature)
	}
	got, err := c.OpenXML(q.MsgSignature, q.Timestamp, q.Nonce, []byte(v.Message.Body))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != v.Message.ExpectPlaintext {
		t.Errorf("OpenXML = %q, want %q", got, v.Message.ExpectPlaintext)
	}

	// The receive id is checked: the same keys with another (or no) receive
	// id must refuse the message.
	for _, other := range []string{"", "wwsomeoneelse", v.Message.ExpectReceiveID + "x", v.Message.ExpectReceiveID[1:]} {
		_, err := vectorCrypter(t, other).OpenXML(q.MsgSignature, q.Timestamp, q.Nonce, []byte(v.Message.Body))
		if !errors.Is(err, ErrReceiveID) {
			t.Errorf("receive id %q: err = %v, want ErrReceiveID", other, err)
		}
	}
}

func TestNewCrypterValidates(t *testing.T) {
	v := loadVectors(t)
	key := v.Config.EncodingAESKey
	tests := []struct {
		name, token, key string
		ok               bool
	}{
		{"official", v.Config.Token, key, true},
		{"empty token", "", key, false},
		{"key too short", v.Config.Token, key[:42], false},
		{"key too long", v.Config.Token, key + "A", false},
		{"key with padding", v.Config.Token, key[:42] + "=", false},
		{"key not base64", v.Config.Token, key[:42] + "!", false},
		{"key with space", v.Config.Token, key[:21] + " " + key[22:], false},
		{"empty key", v.Config.Token, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCrypter(tt.token, tt.key, v.Config.CorpID)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && tt.key != "" && strings.Contains(err.Error(), tt.key) {
				t.Errorf("error leaks the key: %v", err)
			}
			if err == nil && c.ReceiveID() != v.Config.CorpID {
				t.Errorf("ReceiveID = %q", c.ReceiveID())
			}
		})
	}
}

func TestVerify(t *testing.T) {
	v := loadVectors(t)
	c := vectorCrypter(t, v.Config.CorpID)
	q := v.VerifyURL.Query
	tests := []struct {
		name, sig, ts, nonce, enc string
		want                      bool
	}{
		{"official", q.MsgSignature, q.Timestamp, q.Nonce, q.Echostr, true},
		{"uppercase hex", strings.ToUpper(q.MsgSignature), q.Timestamp, q.Nonce, q.Echostr, false},
		{"empty signature", "", q.Timestamp, q.Nonce, q.Echostr, false},
		{"truncated signature", q.MsgSignature[:39], q.Timestamp, q.Nonce, q.Echostr, false},
		{"signature with suffix", q.MsgSignature + "0", q.Timestamp, q.Nonce, q.Echostr, false},
		{"other timestamp", q.MsgSignature, q.Timestamp + "1", q.Nonce, q.Echostr, false},
		{"other nonce", q.MsgSignature, q.Timestamp, q.Nonce + "1", q.Echostr, false},
		{"other ciphertext", q.MsgSignature, q.Timestamp, q.Nonce, q.Echostr[1:], false},
	}
	for _, tt := range tests {
		if got := c.Verify(tt.sig, tt.ts, tt.nonce, tt.enc); got != tt.want {
			t.Errorf("%s: Verify = %v, want %v", tt.name, got, tt.want)
		}
	}
	other, err := NewCrypter("otherToken", v.Config.EncodingAESKey, v.Config.CorpID)
	if err != nil {
		t.Fatal(err)
	}
	if other.Verify(q.MsgSignature, q.Timestamp, q.Nonce, q.Echostr) {
		t.Error("a Crypter with another token accepted the signature")
	}
}

func TestDecryptRejects(t *testing.T) {
	v := loadVectors(t)
	corp := v.Config.CorpID
	c := vectorCrypter(t, corp)
	enc := vectorEncrypt(t)
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	// Flipping a bit of ciphertext block 0 flips the same bit of plaintext
	// block 1, whose first bytes are the length field's: its top byte
	// becomes 0x80, far past the end.
	flipped := bytes.Clone(raw)
	flipped[0] ^= 0x80

	msg := "<xml>hi</xml>"
	n := headerLen + len(msg) + len(corp)
	tests := []struct {
		name    string
		encrypt string
		want    error
	}{
		{"empty", "", ErrMalformed},
		{"bad base64", "not base64!", ErrMalformed},
		{"base64 with a bad tail", enc[:len(enc)-3] + "@==", ErrMalformed},
		{"truncated base64", enc[:len(enc)-4], ErrMalformed},
		{"not a multiple of 16", base64.StdEncoding.EncodeToString(raw[:len(raw)-1]), ErrMalformed},
		{"one byte", base64.StdEncoding.EncodeToString(raw[:1]), ErrMalformed},
		{"truncated by one AES block", base64.StdEncoding.EncodeToString(raw[:len(raw)-16]), ErrMalformed},
		{"truncated by one pad block", base64.StdEncoding.EncodeToString(raw[:len(raw)-32]), ErrMalformed},
		{"truncated to the first pad block", base64.StdEncoding.EncodeToString(raw[:32]), ErrMalformed},
		{"flipped byte: length field past end", base64.StdEncoding.EncodeToString(flipped), ErrMalformed},
		{"pad byte 0", encryptRaw(t, c, append(frame(uint32(len(msg)), msg, corp, padTo32(n)-1, 0), 0)), ErrMalformed},
		{"pad byte 33", encryptRaw(t, c, append(frame(uint32(len(msg)), msg, corp, padTo32(n)+31, 33), 33)), ErrMalformed},
		{"pad byte 255", encryptRaw(t, c, append(frame(uint32(len(msg)), msg, corp, padTo32(n)-1, 255), 255)), ErrMalformed},
		{"inconsistent pad bytes", encryptRaw(t, c, append(frame(uint32(len(msg)), msg, corp, padTo32(n)-1, 7), byte(padTo32(n)))), ErrMalformed},
		{"pad longer than the message", encryptRaw(t, c, bytes.Repeat([]byte{32}, 32)), ErrMalformed},
		{"shorter than the header", encryptRaw(t, c, append([]byte("0123456789abcdef\x00\x00"), bytes.Repeat([]byte{14}, 14)...)), ErrMalformed},
		{"length field past end", encryptRaw(t, c, frame(1000, msg, corp, padTo32(n), byte(padTo32(n)))), ErrMalformed},
		{"length field 2^32-1", encryptRaw(t, c, frame(0xFFFFFFFF, msg, corp, padTo32(n), byte(padTo32(n)))), ErrMalformed},
		{"length field one past end", encryptRaw(t, c, frame(uint32(len(msg)+len(corp)+1), msg, corp, padTo32(n), byte(padTo32(n)))), ErrMalformed},
		{"wrong receive id", encryptRaw(t, c, frame(uint32(len(msg)), msg, "wwother1234567890", padTo32(headerLen+len(msg)+17), byte(padTo32(headerLen+len(msg)+17)))), ErrReceiveID},
		{"no receive id", encryptRaw(t, c, frame(uint32(len(msg)), msg, "", padTo32(headerLen+len(msg)), byte(padTo32(headerLen+len(msg))))), ErrReceiveID},
		{"length field swallows the receive id", encryptRaw(t, c, frame(uint32(len(msg)+len(corp)), msg, corp, padTo32(n), byte(padTo32(n)))), ErrReceiveID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Decrypt(tt.encrypt)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decrypt = %q, %v; want %v", got, err, tt.want)
			}
			for _, other := range []error{ErrMalformed, ErrReceiveID, ErrBadSignature} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("err %v also matches %v", err, other)
				}
			}
		})
	}

	// And the well-formed frame the rows above distort does decrypt.
	good := encryptRaw(t, c, frame(uint32(len(msg)), msg, corp, padTo32(n), byte(padTo32(n))))
	if got, err := c.Decrypt(good); err != nil || string(got) != msg {
		t.Fatalf("control: Decrypt = %q, %v", got, err)
	}
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	for _, receiveID := range []string{"wx5823bf96d3bd56c7", ""} {
		c := vectorCrypter(t, receiveID)
		// Every length around the 32-byte padding boundaries, including an
		// empty message and one that needs a whole block of padding.
		for n := 0; n <= 130; n++ {
			msg := bytes.Repeat([]byte{'a' + byte(n%26)}, n)
			enc, err := c.Encrypt(msg)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := base64.StdEncoding.DecodeString(enc)
			if len(raw)%padBlock != 0 {
				t.Errorf("n=%d: ciphertext is %d bytes, not padded to 32", n, len(raw))
			}
			got, err := c.Decrypt(enc)
			if err != nil {
				t.Fatalf("receive id %q, n=%d: %v", receiveID, n, err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("n=%d: got %q", n, got)
			}
		}
	}

	c := vectorCrypter(t, "wx5823bf96d3bd56c7")
	a, _ := c.Encrypt([]byte("same"))
	b, _ := c.Encrypt([]byte("same"))
	if a == b {
		t.Error("two encryptions of one message are identical: the 16 random bytes are not random")
	}

	// Appending to a decrypted message must not reach into the buffer's
	// receive id.
	got, err := c.Decrypt(a)
	if err != nil {
		t.Fatal(err)
	}
	if cap(got) != len(got) {
		t.Errorf("cap = %d, want len %d", cap(got), len(got))
	}
}

// TestEncryptFrameLayout checks that Encrypt lays the plaintext out as
// WeCom's libraries do: random16 ‖ len ‖ msg ‖ receiveid ‖ padding.
func TestEncryptFrameLayout(t *testing.T) {
	c := vectorCrypter(t, "wx5823bf96d3bd56c7")
	enc, err := c.Encrypt([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(enc)
	cipher.NewCBCDecrypter(c.block, c.key[:16]).CryptBlocks(raw, raw)
	want := "\x00\x00\x00\x05hellowx5823bf96d3bd56c7"
	if got := string(raw[16 : 16+len(want)]); got != want {
		t.Errorf("frame = %q, want %q", got, want)
	}
	pad := int(raw[len(raw)-1])
	if headerLen+len("hello")+len("wx5823bf96d3bd56c7")+pad != len(raw) {
		t.Errorf("pad %d does not fill the frame of %d bytes", pad, len(raw))
	}
}
