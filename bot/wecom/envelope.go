package wecom

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strings"
)

// VerifyURL answers WeCom's URL verification (GET with msg_signature,
// timestamp, nonce and echostr, already URL-decoded): it checks the signature
// over echostr and returns the decrypted echostr, which the handler must
// write back exactly — no quotes, no trailing newline — within 1 s.
func (c *Crypter) VerifyURL(signature, timestamp, nonce, echostr string) ([]byte, error) {
	if echostr == "" {
		return nil, fmt.Errorf("%w: echostr is empty", ErrMalformed)
	}
	if !c.Verify(signature, timestamp, nonce, echostr) {
		return nil, ErrBadSignature
	}
	return c.Decrypt(echostr)
}

// xmlEnvelope is the body WeCom POSTs:
// <xml><ToUserName/><AgentID/><Encrypt/></xml>. ToUserName and AgentID are
// not covered by the signature, so they are not trusted; the receive id
// inside the ciphertext is what Decrypt checks.
type xmlEnvelope struct {
	XMLName xml.Name
	Encrypt string `xml:"Encrypt"`
}

// flatEncrypt returns the Encrypt element of a body of flatXML's plain
// shape (what WeCom and SealXML send), a slice of body when it is one run
// of text, and reports false for anything else, which encoding/xml reads
// instead: the same rules as message.readFlat.
func flatEncrypt(body []byte) (encrypt []byte, ok bool) {
	seen := false
	root, ok := flatXML(body, func(name []byte, text flatText, kids []flatKid) bool {
		if string(name) != "Encrypt" {
			return true
		}
		if seen || len(kids) > 0 {
			return false
		}
		seen = true
		encrypt = text.Bytes(body)
		return true
	})
	if !ok || string(root) != "xml" {
		return nil, false
	}
	return encrypt, true
}

// OpenXML verifies and decrypts a POSTed callback body. It parses the
// envelope, checks msg_signature over its Encrypt element (ErrBadSignature),
// decrypts it and returns the plaintext XML for ParseMessage. It accepts
// WeCom's request bodies and what SealXML makes. The plaintext never
// shares memory with body, which the caller may use again.
func (c *Crypter) OpenXML(signature, timestamp, nonce string, body []byte) ([]byte, error) {
	encrypt, ok := flatEncrypt(body)
	if !ok {
		var env xmlEnvelope
		if err := xml.Unmarshal(body, &env); err != nil {
			return nil, fmt.Errorf("%w: body is not XML: %v", ErrMalformed, err)
		}
		if env.XMLName.Local != "xml" {
			return nil, fmt.Errorf("%w: body root is <%s>, want <xml>", ErrMalformed, truncate(env.XMLName.Local, 64))
		}
		encrypt = []byte(env.Encrypt)
	}
	if len(encrypt) == 0 {
		return nil, fmt.Errorf("%w: body has no <Encrypt>", ErrMalformed)
	}
	if !verify(c, signature, timestamp, nonce, encrypt) {
		return nil, ErrBadSignature
	}
	return c.decryptBytes(encrypt)
}

// SealXML encrypts and signs plaintext as WeCom does and returns the body in
// the format of an encrypted passive reply,
// <xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>, with the
// signature (also the msg_signature to put in a request's query string).
// OpenXML accepts it, so tests and the bench client can play WeCom with it.
func (c *Crypter) SealXML(plaintext []byte, timestamp, nonce string) (body []byte, signature string, err error) {
	encrypt, err := c.Encrypt(plaintext)
	if err != nil {
		return nil, "", err
	}
	signature = c.Sign(timestamp, nonce, encrypt)
	var b bytes.Buffer
	b.Grow(len(encrypt) + len(signature) + len(timestamp) + len(nonce) + 160)
	b.WriteString("<xml>")
	writeXMLElement(&b, "Encrypt", encrypt, true)
	writeXMLElement(&b, "MsgSignature", signature, true)
	writeXMLElement(&b, "TimeStamp", timestamp, false)
	writeXMLElement(&b, "Nonce", nonce, true)
	b.WriteString("</xml>")
	return b.Bytes(), signature, nil
}

// writeXMLElement writes <name>value</name>, as CDATA like WeCom's own
// samples when asked and possible, escaped otherwise.
func writeXMLElement(b *bytes.Buffer, name, value string, cdata bool) {
	b.WriteString("<" + name + ">")
	if cdata && !strings.Contains(value, "]]>") {
		b.WriteString("<![CDATA[" + value + "]]>")
	} else {
		_ = xml.EscapeText(b, []byte(value))
	}
	b.WriteString("</" + name + ">")
}

// jsonEnvelope is the AI bot's (智能机器人) callback body: {"encrypt": "..."}.
type jsonEnvelope struct {
	Encrypt string `json:"encrypt"`
}

// OpenJSON verifies and decrypts an AI bot callback body {"encrypt":"..."}:
// the same crypto as OpenXML, in a JSON envelope. Use a Crypter whose
// receive id is "". The plaintext is JSON.
func (c *Crypter) OpenJSON(signature, timestamp, nonce string, body []byte) ([]byte, error) {
	var env jsonEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%w: body is not a JSON object: %v", ErrMalformed, err)
	}
	if env.Encrypt == "" {
		return nil, fmt.Errorf("%w: body has no \"encrypt\"", ErrMalformed)
	}
	if !c.Verify(signature, timestamp, nonce, env.Encrypt) {
		return nil, ErrBadSignature
	}
	return c.Decrypt(env.Encrypt)
}

// sealedJSON is an AI bot passive reply as the official library writes it
// (timestamp as a string).
type sealedJSON struct {
	Encrypt      string `json:"encrypt"`
	MsgSignature string `json:"msgsignature"`
	Timestamp    string `json:"timestamp"`
	Nonce        string `json:"nonce"`
}

// SealJSON encrypts and signs plaintext (the reply JSON) for an AI bot
// passive reply: {"encrypt","msgsignature","timestamp","nonce"}. OpenJSON
// accepts it, with the msgsignature as the signature.
func (c *Crypter) SealJSON(plaintext []byte, timestamp, nonce string) ([]byte, error) {
	encrypt, err := c.Encrypt(plaintext)
	if err != nil {
		return nil, err
	}
	return json.Marshal(sealedJSON{
		Encrypt:      encrypt,
		MsgSignature: c.Sign(timestamp, nonce, encrypt),
		Timestamp:    timestamp,
		Nonce:        nonce,
	})
}
