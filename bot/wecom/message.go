package wecom

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// WeCom's names for the message and event kinds ParseMessage maps.
const (
	msgTypeText  = "text"
	msgTypeEvent = "event"

	eventExternalContact = "change_external_contact"
	eventExternalChat    = "change_external_chat"
	eventExternalTag     = "change_external_tag"
	eventEnterAgent      = "enter_agent"
	eventClick           = "click"
	eventKf              = "kf_msg_or_event"
)

// contactChanges maps change_external_contact ChangeTypes to event types.
var contactChanges = map[string]bot.EventType{
	"add_external_contact":      bot.EventContactAdd,
	"add_half_external_contact": bot.EventContactAddHalf,
	"edit_external_contact":     bot.EventContactEdit,
	"del_external_contact":      bot.EventContactDel,
	"del_follow_user":           bot.EventContactDelFollow,
	"transfer_fail":             bot.EventContactTransferFail,
}

// chatChanges maps change_external_chat ChangeTypes to event types.
var chatChanges = map[string]bot.EventType{
	"create":  bot.EventGroupCreate,
	"update":  bot.EventGroupUpdate,
	"dismiss": bot.EventGroupDismiss,
}

// message is a decrypted callback: the union of the fields of every kind
// ParseMessage knows. Absent elements stay empty.
type message struct {
	XMLName      xml.Name
	ToUserName   string `xml:"ToUserName"`
	FromUserName string `xml:"FromUserName"`
	CreateTime   string `xml:"CreateTime"`
	MsgType      string `xml:"MsgType"`
	Event        string `xml:"Event"`
	ChangeType   string `xml:"ChangeType"`
	AgentID      string `xml:"AgentID"`

	// App messages and menu events.
	Content  string `xml:"Content"`
	MsgID    string `xml:"MsgId"`
	EventKey string `xml:"EventKey"`

	// change_external_contact.
	UserID         string `xml:"UserID"`
	ExternalUserID string `xml:"ExternalUserID"`
	State          string `xml:"State"`
	WelcomeCode    string `xml:"WelcomeCode"`
	Source         string `xml:"Source"`
	FailReason     string `xml:"FailReason"`

	// change_external_chat.
	ChatID        string        `xml:"ChatId"`
	UpdateDetail  string        `xml:"UpdateDetail"`
	JoinScene     string        `xml:"JoinScene"`
	QuitScene     string        `xml:"QuitScene"`
	MemChangeCnt  string        `xml:"MemChangeCnt"`
	MemChangeList memChangeList `xml:"MemChangeList"`
	LastMemVer    string        `xml:"LastMemVer"`
	CurMemVer     string        `xml:"CurMemVer"`

	// change_external_tag.
	TagID      string `xml:"Id"`
	TagType    string `xml:"TagType"`
	StrategyID string `xml:"StrategyId"`

	// kf_msg_or_event.
	KfToken  string `xml:"Token"`
	OpenKfID string `xml:"OpenKfId"`
}

// readFlat fills m from a plaintext of the plain shape flatXML reads (every
// callback WeCom sends), its values substrings of raw (the plaintext as a
// string, kept as the event's Raw), and reports false — m then partly
// filled — for anything else, which encoding/xml reads instead. It gives
// what xml.Unmarshal gives (FuzzFlatXMLMatchesEncodingXML): elements with
// no field are skipped, and a field's element appearing twice, or holding
// elements, goes to encoding/xml.
func (m *message) readFlat(plaintext []byte, raw string) bool {
	var seen uint64
	root, ok := flatXML(plaintext, func(name []byte, text flatText, kids []flatKid) bool {
		f, bit := m.field(name)
		if f == nil && bit == 0 {
			return true // no field for it: skipped, as encoding/xml does
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		if f == nil { // MemChangeList
			for _, k := range kids {
				if string(k.Name) == "Item" {
					m.MemChangeList.Items = append(m.MemChangeList.Items, k.Text.In(raw))
				}
			}
			m.MemChangeList.Text = text.In(raw)
			return true
		}
		if len(kids) > 0 {
			return false
		}
		*f = text.In(raw)
		return true
	})
	if !ok || string(root) != "xml" {
		return false
	}
	m.XMLName.Local = "xml"
	return true
}

// field returns the string field for an element of a callback and its bit
// among the fields; MemChangeList has a bit and no string; an element
// with no field gives nil, 0.
func (m *message) field(name []byte) (*string, uint64) {
	switch string(name) {
	case "ToUserName":
		return &m.ToUserName, 1 << 0
	case "FromUserName":
		return &m.FromUserName, 1 << 1
	case "CreateTime":
		return &m.CreateTime, 1 << 2
	case "MsgType":
		return &m.MsgType, 1 << 3
	case "Event":
		return &m.Event, 1 << 4
	case "ChangeType":
		return &m.ChangeType, 1 << 5
	case "AgentID":
		return &m.AgentID, 1 << 6
	case "Content":
		return &m.Content, 1 << 7
	case "MsgId":
		return &m.MsgID, 1 << 8
	case "EventKey":
		return &m.EventKey, 1 << 9
	case "UserID":
		return &m.UserID, 1 << 10
	case "ExternalUserID":
		return &m.ExternalUserID, 1 << 11
	case "State":
		return &m.State, 1 << 12
	case "WelcomeCode":
		return &m.WelcomeCode, 1 << 13
	case "Source":
		return &m.Source, 1 << 14
	case "FailReason":
		return &m.FailReason, 1 << 15
	case "ChatId":
		return &m.ChatID, 1 << 16
	case "UpdateDetail":
		return &m.UpdateDetail, 1 << 17
	case "JoinScene":
		return &m.JoinScene, 1 << 18
	case "QuitScene":
		return &m.QuitScene, 1 << 19
	case "MemChangeCnt":
		return &m.MemChangeCnt, 1 << 20
	case "MemChangeList":
		return nil, 1 << 21
	case "LastMemVer":
		return &m.LastMemVer, 1 << 22
	case "CurMemVer":
		return &m.CurMemVer, 1 << 23
	case "Id":
		return &m.TagID, 1 << 24
	case "TagType":
		return &m.TagType, 1 << 25
	case "StrategyId":
		return &m.StrategyID, 1 << 26
	case "Token":
		return &m.KfToken, 1 << 27
	case "OpenKfId":
		return &m.OpenKfID, 1 << 28
	}
	return nil, 0
}

// memChangeList reads both forms WeCom has used for the members of a group
// change: <MemChangeList><Item>id</Item>…</MemChangeList> (current) and
// <MemChangeList><![CDATA[id1,id2]]></MemChangeList> (older clients).
type memChangeList struct {
	Items []string `xml:"Item"`
	Text  string   `xml:",chardata"`
}

func (l memChangeList) ids() []string {
	var ids []string
	if len(l.Items) > 0 {
		for _, it := range l.Items {
			if id := strings.TrimSpace(it); id != "" {
				ids = append(ids, id)
			}
		}
		return ids
	}
	for _, id := range strings.Split(l.Text, ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// maxUnix is the last second of year 9999: later times cannot be encoded as
// JSON (time.Time.MarshalJSON fails), so they are treated as garbage.
const maxUnix = 253402300799

// ParseMessage turns a decrypted callback (plaintext XML, as returned by
// OpenXML) into a normalized event received at receivedAt.
//
// Customer contact, customer group and tag events, app text/enter_agent/click
// and kf_msg_or_event map onto their bot.EventType; any other well-formed
// message becomes bot.EventUnknown, kept for audit, not an error. Only a
// plaintext that is not an <xml> document is ErrMalformed.
//
// At is the message's CreateTime (receivedAt when CreateTime is missing or
// not a plausible unix time), Raw the plaintext, WeComEvent and ChangeType
// WeCom's own names. Numeric fields that do not parse are left 0 rather than
// losing the event.
//
// DedupeKey is "msg:<MsgId>" for messages (app text), and for events
// "evt:event=…|change=…|time=…|from=…|…": the fields that tell one event
// from another, escaped, in a fixed order (see dedupeKey for the exact,
// stable format). A retry of the same callback gets the same key; two
// different events do not.
func ParseMessage(plaintext []byte, receivedAt time.Time) (*bot.Event, error) {
	raw := string(plaintext)
	var m message // on the stack: encoding/xml gets a copy of its own
	if !m.readFlat(plaintext, raw) {
		slow := new(message)
		if err := xml.Unmarshal(plaintext, slow); err != nil {
			return nil, fmt.Errorf("%w: decrypted message is not XML: %v", ErrMalformed, err)
		}
		m = *slow
	}
	if m.XMLName.Local != "xml" {
		return nil, fmt.Errorf("%w: decrypted message root is <%s>, want <xml>", ErrMalformed, truncate(m.XMLName.Local, 64))
	}
	m.trim()

	ev := &bot.Event{
		Type:       classify(&m),
		Source:     bot.SourceWeCom,
		At:         receivedAt,
		ReceivedAt: receivedAt,
		WeComEvent: m.Event,
		ChangeType: m.ChangeType,

		ExternalUserID: m.ExternalUserID,
		State:          m.State,
		WelcomeCode:    m.WelcomeCode,
		FailReason:     m.FailReason,

		ChatID:        m.ChatID,
		UpdateDetail:  m.UpdateDetail,
		JoinScene:     atoi(m.JoinScene),
		QuitScene:     atoi(m.QuitScene),
		MemChangeCnt:  atoi(m.MemChangeCnt),
		MemChangeList: m.MemChangeList.ids(),
		LastMemVer:    m.LastMemVer,
		CurMemVer:     m.CurMemVer,

		TagID:      m.TagID,
		TagType:    m.TagType,
		StrategyID: m.StrategyID,

		Content:  m.Content,
		MsgID:    m.MsgID,
		AgentID:  m.AgentID,
		EventKey: m.EventKey,

		KfToken:  m.KfToken,
		OpenKfID: m.OpenKfID,

		Raw: raw,
	}
	if sec := atoi64(m.CreateTime); sec > 0 && sec <= maxUnix {
		ev.At = time.Unix(sec, 0).UTC()
	}
	// del_external_contact says who deleted in Source (DELETE_BY_TRANSFER when
	// 在职继承 moved the customer); transfer_fail says why in FailReason. The
	// domain has one field for both.
	if ev.FailReason == "" {
		ev.FailReason = m.Source
	}
	// Contact events come from "sys" and name the staff member in UserID;
	// app messages and events name them in FromUserName.
	switch {
	case m.UserID != "":
		ev.StaffID = m.UserID
	case m.FromUserName != "sys":
		ev.StaffID = m.FromUserName
	}
	if ev.Type == bot.EventUnknown && m.MsgType != "" {
		ev.Data = map[string]string{"msg_type": m.MsgType}
	}
	ev.DedupeKey = dedupeKey(&m, plaintext)
	return ev, nil
}

// classify picks the normalized type of a message.
func classify(m *message) bot.EventType {
	switch m.MsgType {
	case msgTypeText:
		return bot.EventAppText
	case msgTypeEvent:
	default:
		return bot.EventUnknown
	}
	var t bot.EventType
	switch m.Event {
	case eventExternalContact:
		t = contactChanges[m.ChangeType]
	case eventExternalChat:
		t = chatChanges[m.ChangeType]
	case eventExternalTag:
		t = bot.EventTagChange // create, update, delete, shuffle
	case eventEnterAgent:
		t = bot.EventAppEnter
	case eventClick:
		t = bot.EventAppClick
	case eventKf:
		t = bot.EventKfNotify
	}
	if t == "" {
		return bot.EventUnknown
	}
	return t
}

// trim drops the indentation WeCom's pretty-printed samples put around
// values. Content is the user's text and is kept as sent.
func (m *message) trim() {
	for _, f := range []*string{
		&m.ToUserName, &m.FromUserName, &m.CreateTime, &m.MsgType, &m.Event, &m.ChangeType, &m.AgentID,
		&m.MsgID, &m.EventKey,
		&m.UserID, &m.ExternalUserID, &m.State, &m.WelcomeCode, &m.Source, &m.FailReason,
		&m.ChatID, &m.UpdateDetail, &m.JoinScene, &m.QuitScene, &m.MemChangeCnt, &m.LastMemVer, &m.CurMemVer,
		&m.TagID, &m.TagType, &m.StrategyID,
		&m.KfToken, &m.OpenKfID,
	} {
		*f = strings.TrimSpace(*f)
	}
}

// atoi parses a small non-negative count or scene code; anything else is 0.
func atoi(s string) int {
	n := atoi64(s)
	if n > math.MaxInt32 {
		return 0
	}
	return int(n)
}

// atoi64 parses a non-negative decimal; anything else is 0. It checks the
// empty string first because strconv allocates an error for it, and most
// fields are absent from most messages.
func atoi64(s string) int64 {
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// dedupeKey is how retries of one callback are recognised: WeCom retries an
// unanswered callback (3 times in total) with the same plaintext, sealed
// afresh. The key depends only on the message's fields, never on the
// ciphertext, signature, nonce or time of receipt. The format is stable
// (stored keys must keep matching after an upgrade):
//
// A message with a MsgId (app text, and any other message kind that has
// one) is keyed by it alone:
//
//	msg:<MsgId>
//
// Events are keyed by the fields that tell one event from another, in this
// fixed order, empty ones left out:
//
//	evt:event=<Event>|change=<ChangeType>|time=<CreateTime>|from=<FromUserName>
//	   |user=<UserID>|ext=<ExternalUserID>|chat=<ChatId>|detail=<UpdateDetail>
//	   |mem=<MemChangeList items joined by ",">|lastver=<LastMemVer>|curver=<CurMemVer>
//	   |tag=<Id>|tagtype=<TagType>|strategy=<StrategyId>
//	   |kf=<OpenKfId>|token=<Token>|key=<EventKey>|agent=<AgentID>
//
// (one line, no spaces). Values are escaped so they cannot forge a
// separator: '%' → %25, '|' → %7C, ',' → %2C. Two members joining the same
// group in the same second differ by mem and curver; two kf notifications
// differ by token. An event of a kind ParseMessage does not map (EventUnknown)
// may differ in fields not listed, so its key ends with
// |sum=<first 16 hex digits of SHA-256(plaintext)>.
//
// The key is not namespaced by CorpID: one wecombot serves one corp.
func dedupeKey(m *message, plaintext []byte) string {
	if m.MsgID != "" {
		return "msg:" + m.MsgID
	}
	var b strings.Builder
	b.Grow(160) // the usual key in one allocation
	b.WriteString("evt:")
	first := true
	add := func(name, value string) {
		if value == "" {
			return
		}
		if !first {
			b.WriteByte('|')
		}
		first = false
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(value)
	}
	add("event", escapeKey(m.Event))
	add("change", escapeKey(m.ChangeType))
	add("time", escapeKey(m.CreateTime))
	add("from", escapeKey(m.FromUserName))
	add("user", escapeKey(m.UserID))
	add("ext", escapeKey(m.ExternalUserID))
	add("chat", escapeKey(m.ChatID))
	add("detail", escapeKey(m.UpdateDetail))
	if ids := m.MemChangeList.ids(); len(ids) > 0 {
		for i, id := range ids {
			ids[i] = escapeKey(id)
		}
		add("mem", strings.Join(ids, ","))
	}
	add("lastver", escapeKey(m.LastMemVer))
	add("curver", escapeKey(m.CurMemVer))
	add("tag", escapeKey(m.TagID))
	add("tagtype", escapeKey(m.TagType))
	add("strategy", escapeKey(m.StrategyID))
	add("kf", escapeKey(m.OpenKfID))
	add("token", escapeKey(m.KfToken))
	add("key", escapeKey(m.EventKey))
	add("agent", escapeKey(m.AgentID))
	if classify(m) == bot.EventUnknown {
		sum := sha256.Sum256(plaintext)
		add("sum", hex.EncodeToString(sum[:8]))
	}
	return b.String()
}

// escapeKey escapes the characters DedupeKey uses as separators.
func escapeKey(s string) string {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		plain = s[i] != '%' && s[i] != '|' && s[i] != ','
	}
	if plain {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			b.WriteString("%25")
		case '|':
			b.WriteString("%7C")
		case ',':
			b.WriteString("%2C")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
