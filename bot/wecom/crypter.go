// Package wecom speaks WeCom's (企业微信) callback protocol: it checks the
// signature of a callback, decrypts it, and turns the decrypted XML into a
// normalized bot.Event. It also seals messages the same way, for encrypted
// passive replies, tests and the bench load generator.
//
// The scheme is WeCom's "WXBizMsgCrypt", shared by self-built app, customer
// contact (客户联系), 微信客服 (kf) and AI bot (智能机器人) callbacks:
//
//	signature  = hex(sha1(sort(token, timestamp, nonce, encrypt) joined))
//	key        = base64(EncodingAESKey + "="), 32 bytes; IV = key[:16]
//	encrypt    = base64(AES-256-CBC(pkcs7_32(random16 ‖ len_be32(msg) ‖ msg ‖ receiveid)))
//
// The receive id is the CorpID for app, contact and kf callbacks and the empty
// string for the AI bot.
package wecom

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them, so callers can map them with errors.Is (the server answers
// ErrBadSignature with 403 and the others with 400).
var (
	// ErrBadSignature: msg_signature does not match the token, timestamp,
	// nonce and ciphertext (wrong WECOM_TOKEN, or a forged request).
	ErrBadSignature = errors.New("wecom: signature mismatch")
	// ErrReceiveID: the message decrypted but was sealed for another receive id
	// (another CorpID, or an AI bot message sent to the app endpoint).
	ErrReceiveID = errors.New("wecom: receive id mismatch")
	// ErrMalformed: the request or the decrypted message is not structurally
	// valid (bad base64, bad padding, bad length field, not XML/JSON, missing
	// fields). The wrapped message says what exactly.
	ErrMalformed = errors.New("wecom: malformed callback")
)

const (
	// encodingAESKeyLen is the length of the EncodingAESKey the admin console shows.
	encodingAESKeyLen = 43
	// padBlock is WeCom's PKCS#7 block size: 32 bytes, not AES's 16.
	padBlock = 32
	// randomLen and lenFieldLen frame the plaintext: 16 random bytes, then
	// the message length as a 4-byte big-endian integer.
	randomLen   = 16
	lenFieldLen = 4
	headerLen   = randomLen + lenFieldLen
)

// Crypter signs, verifies, encrypts and decrypts callbacks for one WeCom
// receiver (one Token/EncodingAESKey/receive id triple). It holds no mutable
// state and is safe for concurrent use.
type Crypter struct {
	token     string
	receiveID string
	key       []byte // 32 bytes; key[:16] is the IV
	block     cipher.Block
	// decrypters are CBC decrypters set back to the IV for each message:
	// a new one copies the AES key schedule (~500 bytes) every time.
	decrypters sync.Pool
}

// ivSetter is what crypto/cipher's CBC decrypters implement to be used again.
type ivSetter interface{ SetIV(iv []byte) }

// NewCrypter returns a Crypter for the callback settings shown in the WeCom
// admin console (接收消息服务器配置): the Token, the 43-character
// EncodingAESKey, and the receive id the messages are sealed for — the CorpID
// for app, contact and kf callbacks, "" for the AI bot (智能机器人).
func NewCrypter(token, encodingAESKey, receiveID string) (*Crypter, error) {
	if token == "" {
		return nil, errors.New("wecom: Token is empty: copy it from the callback settings (接收消息 → Token)")
	}
	if len(encodingAESKey) != encodingAESKeyLen {
		return nil, fmt.Errorf("wecom: EncodingAESKey must be %d characters, got %d: copy it from the callback settings (接收消息 → EncodingAESKey)", encodingAESKeyLen, len(encodingAESKey))
	}
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		// The key itself is a secret: never echo it.
		return nil, errors.New("wecom: EncodingAESKey is not valid base64 (43 characters of A-Z, a-z, 0-9, + and /)")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("wecom: AES key: %w", err)
	}
	return &Crypter{token: token, receiveID: receiveID, key: key, block: block}, nil
}

// cbcDecrypt decrypts buf in place (whole AES blocks) with the IV key[:16].
func (c *Crypter) cbcDecrypt(buf []byte) {
	d, _ := c.decrypters.Get().(cipher.BlockMode)
	if d == nil {
		d = cipher.NewCBCDecrypter(c.block, c.key[:aes.BlockSize])
	} else {
		d.(ivSetter).SetIV(c.key[:aes.BlockSize])
	}
	d.CryptBlocks(buf, buf)
	if _, ok := d.(ivSetter); ok {
		c.decrypters.Put(d)
	}
}

// ReceiveID returns the receive id the Crypter checks and seals for.
func (c *Crypter) ReceiveID() string { return c.receiveID }

// Sign returns WeCom's msg_signature for a ciphertext: the lowercase hex
// SHA-1 of the token, timestamp, nonce and ciphertext, sorted and joined.
func (c *Crypter) Sign(timestamp, nonce, encrypt string) string {
	sum := c.signature(timestamp, nonce, encrypt)
	return hex.EncodeToString(sum[:])
}

// signature hashes the four strings in sorted order as one run of bytes
// (for encrypt a []byte when it is a slice of the request body), so that
// verifying a callback copies nothing to the heap.
func signature[T string | []byte](token, timestamp, nonce string, encrypt T) [sha1.Size]byte {
	parts := [3]string{token, timestamp, nonce}
	sort.Strings(parts[:])
	var stack [2048]byte
	b := stack[:0]
	placed := false
	for _, p := range parts {
		if !placed && string(encrypt) <= p {
			b, placed = append(b, encrypt...), true
		}
		b = append(b, p...)
	}
	if !placed {
		b = append(b, encrypt...)
	}
	return sha1.Sum(b)
}

func (c *Crypter) signature(timestamp, nonce, encrypt string) [sha1.Size]byte {
	return signature(c.token, timestamp, nonce, encrypt)
}

// Verify reports whether signature is the msg_signature of the ciphertext,
// comparing in constant time. WeCom sends lowercase hex; uppercase is
// rejected, as the official libraries do.
func (c *Crypter) Verify(signature, timestamp, nonce, encrypt string) bool {
	return verify(c, signature, timestamp, nonce, encrypt)
}

func verify[T string | []byte](c *Crypter, sig, timestamp, nonce string, encrypt T) bool {
	sum := signature(c.token, timestamp, nonce, encrypt)
	var want [2 * sha1.Size]byte
	hex.Encode(want[:], sum[:])
	return subtle.ConstantTimeCompare(want[:], []byte(sig)) == 1
}

// Decrypt opens a base64 ciphertext and returns the message it carries,
// after checking that it was sealed for this Crypter's receive id
// (ErrReceiveID otherwise). Any structural problem — bad base64, a length
// that is not a whole number of AES blocks, PKCS#7 padding outside 1..32 or
// inconsistent, a length field past the end — is ErrMalformed. It never
// panics.
//
// Decrypt does not authenticate: the ciphertext has no MAC, only the
// signature does that. Call Verify first (VerifyURL, OpenXML and OpenJSON do).
func (c *Crypter) Decrypt(encrypt string) ([]byte, error) {
	return c.decryptBytes([]byte(encrypt)) // what DecodeString does: one copy
}

// decryptBytes is Decrypt of a ciphertext in a []byte (a slice of the
// request body, not kept).
func (c *Crypter) decryptBytes(encrypt []byte) ([]byte, error) {
	buf := make([]byte, base64.StdEncoding.DecodedLen(len(encrypt)))
	n, err := base64.StdEncoding.Decode(buf, encrypt)
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext is not base64: %v", ErrMalformed, err)
	}
	return c.open(buf[:n])
}

// open decrypts a decoded ciphertext in place and returns its message.
func (c *Crypter) open(buf []byte) ([]byte, error) {
	if len(buf) == 0 || len(buf)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: ciphertext is %d bytes, not a positive multiple of %d", ErrMalformed, len(buf), aes.BlockSize)
	}
	c.cbcDecrypt(buf)

	pad := int(buf[len(buf)-1])
	if pad < 1 || pad > padBlock || pad > len(buf) {
		return nil, fmt.Errorf("%w: bad padding (pad byte %d)", ErrMalformed, pad)
	}
	for _, b := range buf[len(buf)-pad:] {
		if int(b) != pad {
			return nil, fmt.Errorf("%w: bad padding (inconsistent pad bytes)", ErrMalformed)
		}
	}
	content := buf[:len(buf)-pad]
	if len(content) < headerLen {
		return nil, fmt.Errorf("%w: plaintext is %d bytes, shorter than its %d-byte header", ErrMalformed, len(content), headerLen)
	}
	msgLen := uint64(binary.BigEndian.Uint32(content[randomLen:headerLen]))
	if msgLen > uint64(len(content)-headerLen) {
		return nil, fmt.Errorf("%w: length field %d runs past the %d bytes that follow it", ErrMalformed, msgLen, len(content)-headerLen)
	}
	end := headerLen + int(msgLen)
	if got := content[end:]; string(got) != c.receiveID {
		return nil, fmt.Errorf("%w: sealed for %q", ErrReceiveID, truncate(string(got), 64))
	}
	// The full slice expression keeps an append by the caller from
	// overwriting the receive id behind the message.
	return content[headerLen:end:end], nil
}

// Encrypt seals msg for this Crypter's receive id with 16 fresh random bytes
// (crypto/rand) and returns the base64 ciphertext.
func (c *Crypter) Encrypt(msg []byte) (string, error) {
	if uint64(len(msg)) > math.MaxUint32 {
		return "", fmt.Errorf("wecom: message of %d bytes is too long to seal", len(msg))
	}
	n := headerLen + len(msg) + len(c.receiveID)
	pad := padBlock - n%padBlock // 1..32: a full block when n is aligned
	buf := make([]byte, n+pad)
	if _, err := rand.Read(buf[:randomLen]); err != nil {
		return "", fmt.Errorf("wecom: random bytes: %w", err)
	}
	binary.BigEndian.PutUint32(buf[randomLen:headerLen], uint32(len(msg)))
	copy(buf[headerLen:], msg)
	copy(buf[headerLen+len(msg):], c.receiveID)
	for i := n; i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(c.block, c.key[:aes.BlockSize]).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf), nil
}

// truncate shortens s for error messages, so a hostile value cannot flood logs.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
