package wecom_test

import (
	"fmt"
	"time"

	"github.com/wecombot/wecombot/bot/wecom"
)

// The official WXBizMsgCrypt sample values (testdata/wecom-callback-vectors.json).
const (
	token          = "QDG6eK"
	encodingAESKey = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
	corpID         = "wx5823bf96d3bd56c7"
)

// A callback handler's two paths: the GET URL verification and the POSTed
// event.
func Example() {
	c, err := wecom.NewCrypter(token, encodingAESKey, corpID)
	if err != nil {
		panic(err)
	}

	// GET ?msg_signature&timestamp&nonce&echostr: answer with the plaintext.
	echo, err := c.VerifyURL("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780",
		"P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==")
	if err != nil {
		panic(err)
	}
	fmt.Printf("GET answer: %s\n", echo)

	// POST ?msg_signature&timestamp&nonce with an encrypted body: here made
	// by SealXML, as the bench client and tests do.
	body, sig, err := c.SealXML([]byte(`<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>
<FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1718000000</CreateTime>
<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event>
<ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID>
<ExternalUserID><![CDATA[wmAbc]]></ExternalUserID><State><![CDATA[poster]]></State>
<WelcomeCode><![CDATA[WC123]]></WelcomeCode></xml>`), "1718000000", "42")
	if err != nil {
		panic(err)
	}
	plain, err := c.OpenXML(sig, "1718000000", "42", body)
	if err != nil {
		panic(err) // errors.Is(err, wecom.ErrBadSignature) → 403, else 400
	}
	ev, err := wecom.ParseMessage(plain, time.Now())
	if err != nil {
		panic(err)
	}
	fmt.Println(ev.Type, ev.StaffID, ev.ExternalUserID, ev.State, ev.WelcomeCode, ev.At.Unix())
	fmt.Println(ev.DedupeKey)
	// Output:
	// GET answer: 1616140317555161061
	// contact.add zhangsan wmAbc poster WC123 1718000000
	// evt:event=change_external_contact|change=add_external_contact|time=1718000000|from=sys|user=zhangsan|ext=wmAbc
}
