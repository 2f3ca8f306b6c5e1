package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/ai"
	"github.com/wecombot/wecombot/bot/wecom"
)

const endpointAIBot = "aibot"

// AIStreams is what the AI bot callback needs of the stream buffer the AI
// sender fills (ai.Streams).
type AIStreams interface {
	Open(id string)
	Read(ctx context.Context, id string) (st ai.StreamState, known bool)
}

// aibotMessage is the decrypted AI bot (智能机器人) callback: a message
// (@-mention in an internal group, or 1:1) or a stream refresh poll.
type aibotMessage struct {
	MsgID       string `json:"msgid"`
	AIBotID     string `json:"aibotid"`
	ChatID      string `json:"chatid"`
	ChatType    string `json:"chattype"`
	ResponseURL string `json:"response_url"`
	MsgType     string `json:"msgtype"`
	CreateTime  int64  `json:"create_time"`
	From        struct {
		UserID string `json:"userid"`
	} `json:"from"`
	Text struct {
		Content string `json:"content"`
	} `json:"text"`
	Stream struct {
		ID string `json:"id"`
	} `json:"stream"`
	// Voice arrives as WeCom's transcript of it.
	Voice struct {
		Content string `json:"content"`
	} `json:"voice"`
	// Mixed is text with images (图文混排); its text items are the question.
	Mixed struct {
		Items []struct {
			MsgType string `json:"msgtype"`
			Text    struct {
				Content string `json:"content"`
			} `json:"text"`
		} `json:"msg_item"`
	} `json:"mixed"`
}

// text is the message's text: the text body, or a mixed message's text items.
func (m *aibotMessage) text() string {
	switch m.MsgType {
	case "text":
		return m.Text.Content
	case "voice":
		return m.Voice.Content
	}
	var parts []string
	for _, it := range m.Mixed.Items {
		if it.MsgType == "text" && strings.TrimSpace(it.Text.Content) != "" {
			parts = append(parts, strings.TrimSpace(it.Text.Content))
		}
	}
	return strings.Join(parts, "\n")
}

// aibotStreamReply is the passive reply that shows (part of) a streamed answer.
type aibotStreamReply struct {
	MsgType string `json:"msgtype"`
	Stream  struct {
		ID      string `json:"id"`
		Finish  bool   `json:"finish"`
		Content string `json:"content"`
	} `json:"stream"`
}

// mentions are the leading @-mentions of a group message ("@小山 营业时间？").
var mentions = regexp.MustCompile(`^(?:\s*@\S+)+\s*`)

// question strips the leading @-mentions; a mention glued to the text
// ("@小山几点开门") leaves the text whole rather than empty.
func question(text string) string {
	q := strings.TrimSpace(mentions.ReplaceAllString(text, ""))
	if q == "" {
		q = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(text), "@"))
	}
	return q
}

// StreamID derives an AI bot message's stream id from its msgid, so a
// retried callback answers with the same stream.
func StreamID(msgID string) string {
	sum := sha256.Sum256([]byte("aibot|" + msgID))
	return "s" + hex.EncodeToString(sum[:12])
}

// aibotVerify answers the AI bot's URL verification (GET).
func (s *Server) aibotVerify(w http.ResponseWriter, r *http.Request) {
	s.verifyURL(s.aibotEndpoint(), w, r)
}

// aibotEndpoint is /wecom/aibot: JSON envelopes, empty receive id.
func (s *Server) aibotEndpoint() *callbackEndpoint {
	return &callbackEndpoint{name: endpointAIBot, crypter: s.o.AIBotCrypter, what: "AI bot",
		settings: "WECOM_AIBOT_TOKEN and WECOM_AIBOT_AES_KEY", token: "WECOM_AIBOT_TOKEN", open: (*wecom.Crypter).OpenJSON}
}

// aibotEvent takes an AI bot callback. A text message is appended to the
// durable log (deduplicated by msgid) and answered at once with a stream id;
// WeCom then polls that stream and gets the answer as the AI sender writes
// it, until it is finished.
func (s *Server) aibotEvent(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ep := s.aibotEndpoint()
	plain, ok := s.openCallback(ep, w, r, start)
	if !ok {
		return
	}
	nonce := r.URL.Query().Get("nonce") // the reply is sealed with the request's nonce
	var m aibotMessage
	if err := json.Unmarshal(plain, &m); err != nil {
		s.rejectAt(ep, w, r, start, http.StatusBadRequest, "bad_request", "decrypted message is not JSON")
		return
	}
	switch {
	case m.MsgType == "text" || ((m.MsgType == "mixed" || m.MsgType == "voice") && strings.TrimSpace(m.text()) != ""):
		s.aibotText(ep, w, r, start, &m, nonce)
	case m.MsgType == "stream":
		if m.Stream.ID == "" {
			s.rejectAt(ep, w, r, start, http.StatusBadRequest, "bad_request", "stream refresh without stream.id")
			return
		}
		// WeCom only polls stream ids this server handed out, so an id the
		// buffer doesn't know was lost in a restart while its answer is still
		// owed (the ai_reply action survives in the outbox): keep WeCom polling.
		// If the answer comes after WeCom gave up (6 minutes), it goes to the
		// message's response_url instead.
		st := ai.StreamState{}
		if s.o.AIStreams != nil {
			st, _ = s.o.AIStreams.Read(r.Context(), m.Stream.ID)
		}
		s.aibotReply(ep, w, r, start, m.Stream.ID, st, nonce, "stream")
	default:
		// Events (enter_chat, feedback) and other message types: acknowledged, nothing to say.
		w.WriteHeader(http.StatusOK)
		s.o.Metrics.Callback(ep.name, "ignored", time.Since(start))
	}
}

func (s *Server) aibotText(ep *callbackEndpoint, w http.ResponseWriter, r *http.Request, start time.Time, m *aibotMessage, nonce string) {
	if m.MsgID == "" || m.From.UserID == "" {
		s.rejectAt(ep, w, r, start, http.StatusBadRequest, "bad_request", "message without msgid or from.userid")
		return
	}
	now := s.o.Now()
	at := now
	if m.CreateTime > 0 {
		at = time.Unix(m.CreateTime, 0)
	}
	id := StreamID(m.MsgID)
	raw, _ := json.Marshal(m)
	ev := &bot.Event{
		Type: bot.EventAIBotText, Source: bot.SourceAIBot, DedupeKey: "aibot:" + m.MsgID,
		At: at, ReceivedAt: now, StaffID: m.From.UserID, ChatID: m.ChatID, MsgID: m.MsgID,
		Content: question(m.text()),
		Data:    map[string]string{"stream_id": id, "chat_type": m.ChatType, "aibot_id": m.AIBotID},
		Raw:     string(raw),
	}
	if m.ResponseURL != "" {
		ev.Data["response_url"] = m.ResponseURL
	}
	if s.o.AIStreams != nil {
		s.o.AIStreams.Open(id)
	}
	dup, err := s.ingest(r.Context(), ev)
	var fe *bot.FieldError
	if errors.As(err, &fe) {
		s.rejectAt(ep, w, r, start, http.StatusBadRequest, "bad_request", fe.Error())
		return
	}
	if err != nil {
		s.log.Error().Err(err).Msg("cannot store AI bot message")
		s.rejectAt(ep, w, r, start, http.StatusInternalServerError, "error", "cannot store event")
		return
	}
	result := "accepted"
	if dup {
		result = "duplicate"
	} else if s.o.Pipeline != nil {
		s.o.Pipeline.NotifyEvent()
	}
	st := ai.StreamState{}
	if s.o.AIStreams != nil {
		st, _ = s.o.AIStreams.Read(r.Context(), id)
	}
	s.aibotReply(ep, w, r, start, id, st, nonce, result)
}

// aibotReply answers with the stream's current state, encrypted.
func (s *Server) aibotReply(ep *callbackEndpoint, w http.ResponseWriter, r *http.Request, start time.Time, id string, st ai.StreamState, nonce, result string) {
	var rep aibotStreamReply
	rep.MsgType = "stream"
	rep.Stream.ID, rep.Stream.Finish, rep.Stream.Content = id, st.Finished, st.Content
	plain, _ := json.Marshal(rep)
	body, err := ep.crypter.SealJSON(plain, strconv.FormatInt(s.o.Now().Unix(), 10), nonce)
	if err != nil {
		s.rejectAt(ep, w, r, start, http.StatusInternalServerError, "error", "cannot encrypt reply")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(body)
	s.o.Metrics.Callback(ep.name, result, time.Since(start))
}
