package server

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/wecom"
)

const endpointCallback = "wecom"

// callbackEndpoint is one URL WeCom calls with signed, encrypted requests:
// the app/customer-contact callback (XML) or the AI bot (JSON). Both share
// verification, body limits, decryption, the replay window and rejection.
type callbackEndpoint struct {
	// name labels metrics and log lines.
	name    string
	crypter *wecom.Crypter
	// what names the endpoint to people; settings the variables that
	// configure it and token the one a bad signature points at.
	what, settings, token string
	// open verifies and decrypts a POST body (OpenXML or OpenJSON).
	open func(c *wecom.Crypter, sig, ts, nonce string, body []byte) ([]byte, error)
}

// wecomEndpoint is /wecom/callback (built once, in New).
func (s *Server) wecomEndpoint() *callbackEndpoint { return s.wecom }

func newWeComEndpoint(c *wecom.Crypter) *callbackEndpoint {
	return &callbackEndpoint{name: endpointCallback, crypter: c, what: "callback",
		settings: "WECOM_TOKEN and WECOM_AES_KEY", token: "WECOM_TOKEN", open: (*wecom.Crypter).OpenXML}
}

// verifyURL answers WeCom's URL verification (GET) for ep: check the
// signature, decrypt echostr and return it exactly, with no newline.
func (s *Server) verifyURL(ep *callbackEndpoint, w http.ResponseWriter, r *http.Request) bool {
	start := time.Now()
	if ep.crypter == nil {
		s.rejectAt(ep, w, r, start, http.StatusServiceUnavailable, "not_configured", ep.what+" is not configured: set "+ep.settings)
		return false
	}
	q := r.URL.Query()
	sig, ts, nonce, echo := q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), q.Get("echostr")
	if sig == "" || ts == "" || nonce == "" || echo == "" {
		s.rejectAt(ep, w, r, start, http.StatusBadRequest, "bad_request", "missing msg_signature, timestamp, nonce or echostr")
		return false
	}
	plain, err := ep.crypter.VerifyURL(sig, ts, nonce, echo)
	if err != nil {
		s.rejectCrypto(ep, w, r, start, err)
		return false
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(plain)
	s.o.Metrics.Callback(ep.name, "verified", time.Since(start))
	return true
}

// openCallback is the front half of every signed POST: configured, query
// params present, body within MaxBodyBytes, signature and decryption, and
// (the signature covers the timestamp) the replay window. It answers the
// request itself and returns ok=false when any of them fails.
func (s *Server) openCallback(ep *callbackEndpoint, w http.ResponseWriter, r *http.Request, start time.Time) (plain []byte, ok bool) {
	if ep.crypter == nil {
		s.rejectAt(ep, w, r, start, http.StatusServiceUnavailable, "not_configured", ep.what+" is not configured: set "+ep.settings)
		return nil, false
	}
	sig, ts, nonce := callbackQuery(r.URL.RawQuery)
	if sig == "" || ts == "" || nonce == "" {
		s.rejectAt(ep, w, r, start, http.StatusBadRequest, "bad_request", "missing msg_signature, timestamp or nonce")
		return nil, false
	}
	buf := bodyBuffers.Get().(*[]byte)
	body, err := readBodyInto(w, r, *buf)
	if err != nil {
		bodyBuffers.Put(buf)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.rejectAt(ep, w, r, start, http.StatusRequestEntityTooLarge, "too_large", "body over 1 MiB")
			return nil, false
		}
		s.rejectAt(ep, w, r, start, http.StatusBadRequest, "bad_request", "cannot read body")
		return nil, false
	}
	plain, err = ep.open(ep.crypter, sig, ts, nonce, body)
	// OpenXML and OpenJSON keep nothing of the body (their plaintext and
	// errors are copies): its buffer serves the next request.
	if cap(body) <= maxPooledBody {
		*buf = body[:0]
	}
	bodyBuffers.Put(buf)
	if err != nil {
		s.rejectCrypto(ep, w, r, start, err)
		return nil, false
	}
	// Checked after verification, so it rejects replays of genuine old requests.
	if s.o.CallbackMaxAge > 0 {
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			s.rejectAt(ep, w, r, start, http.StatusBadRequest, "bad_request", "timestamp is not a number")
			return nil, false
		}
		if age := s.o.Now().Sub(time.Unix(sec, 0)); age > s.o.CallbackMaxAge || age < -s.o.CallbackMaxAge {
			s.rejectAt(ep, w, r, start, http.StatusForbidden, "stale", "timestamp outside WECOMBOT_CALLBACK_MAX_AGE (replay?)")
			return nil, false
		}
	}
	return plain, true
}

// bodyBuffers are callback body buffers (*[]byte) between requests: a
// body is garbage as soon as it is verified and decrypted.
var bodyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBody is the largest body buffer kept for another request
// (WeCom's callbacks are a few KiB).
const maxPooledBody = 64 << 10

// readBody reads a request body of at most MaxBodyBytes (a
// *http.MaxBytesError beyond): into one buffer of its Content-Length when
// the request gives one, rather than io.ReadAll's growing copies.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return readBodyInto(w, r, nil)
}

// readBodyInto is readBody into buf when its capacity holds the body's
// Content-Length.
func readBodyInto(w http.ResponseWriter, r *http.Request, buf []byte) ([]byte, error) {
	if n := r.ContentLength; n > 0 && n <= MaxBodyBytes {
		// net/http ends the body at Content-Length: a shorter one is
		// io.ErrUnexpectedEOF, a longer one is never read (so no
		// MaxBytesReader is needed to stop it).
		if int64(cap(buf)) >= n {
			buf = buf[:n]
		} else {
			buf = make([]byte, n)
		}
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
}

// callbackQuery is r.URL.Query()'s msg_signature, timestamp and nonce
// (the first value of each) without building url.Values, for the short
// queries WeCom sends; others go to url.ParseQuery (TestCallbackQuery).
func callbackQuery(raw string) (sig, ts, nonce string) {
	if strings.Count(raw, "&") >= 16 || strings.Contains(raw, ";") {
		q, _ := url.ParseQuery(raw)
		return q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce")
	}
	var haveSig, haveTS, haveNonce bool
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		key, ok := queryUnescape(key)
		if !ok {
			continue
		}
		if value, ok = queryUnescape(value); !ok {
			continue // url.ParseQuery drops the pair
		}
		switch {
		case key == "msg_signature" && !haveSig:
			sig, haveSig = value, true
		case key == "timestamp" && !haveTS:
			ts, haveTS = value, true
		case key == "nonce" && !haveNonce:
			nonce, haveNonce = value, true
		}
	}
	return sig, ts, nonce
}

// queryUnescape is url.QueryUnescape, without its copy when there is
// nothing to unescape.
func queryUnescape(s string) (string, bool) {
	if !strings.ContainsAny(s, "%+") {
		return s, true
	}
	u, err := url.QueryUnescape(s)
	return u, err == nil
}

// callbackVerify answers the callback's URL verification (GET).
func (s *Server) callbackVerify(w http.ResponseWriter, r *http.Request) {
	if s.verifyURL(s.wecomEndpoint(), w, r) {
		s.log.Info().Msg("callback URL verified by WeCom")
	}
}

// callbackEvent takes a POSTed event: verify, decrypt, parse, append to the
// durable log (deduplicating retries), and only then answer 200. The engine
// runs later, from the log.
func (s *Server) callbackEvent(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	plain, ok := s.openCallback(s.wecomEndpoint(), w, r, start)
	if !ok {
		return
	}
	ev, err := wecom.ParseMessage(plain, s.o.Now())
	if err != nil {
		s.reject(w, r, start, http.StatusBadRequest, "bad_request", "cannot parse decrypted message: "+err.Error())
		return
	}
	dup, err := s.ingest(r.Context(), ev)
	s.observeAppend(dup, err)
	var fe *bot.FieldError
	if errors.As(err, &fe) {
		// Out of bounds: a retry would fail the same way, so not a 500.
		s.reject(w, r, start, http.StatusBadRequest, "bad_request", fe.Error())
		return
	}
	if err != nil {
		// Not stored: a 500 makes WeCom retry, which is what we want.
		s.log.Error().Err(err).Str("type", string(ev.Type)).Msg("cannot store callback event")
		s.reject(w, r, start, http.StatusInternalServerError, "error", "cannot store event")
		return
	}
	result := "accepted"
	if dup {
		result = "duplicate"
	} else if s.o.Pipeline != nil {
		s.o.Pipeline.NotifyEvent()
	}
	w.WriteHeader(http.StatusOK)
	s.o.Metrics.Callback(endpointCallback, result, time.Since(start))
	s.log.Debug().Str("type", string(ev.Type)).Uint64("seq", ev.Seq).Bool("duplicate", dup).Msg("callback")
}

func (s *Server) rejectCrypto(ep *callbackEndpoint, w http.ResponseWriter, r *http.Request, start time.Time, err error) {
	switch {
	case errors.Is(err, wecom.ErrBadSignature):
		s.rejectAt(ep, w, r, start, http.StatusForbidden, "bad_signature", "signature does not match (check "+ep.token+")")
	case errors.Is(err, wecom.ErrReceiveID):
		s.rejectAt(ep, w, r, start, http.StatusForbidden, "bad_receive_id", "message is for another corp (check WECOM_CORP_ID)")
	default:
		s.rejectAt(ep, w, r, start, http.StatusBadRequest, "bad_request", "cannot decrypt: "+err.Error())
	}
}

// reject answers an unusable /wecom/callback request.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, start time.Time, code int, result, reason string) {
	s.rejectAt(s.wecomEndpoint(), w, r, start, code, result, reason)
}

// rejectAt answers an unusable callback with a short reason, logs it without
// secrets (the query and body are never logged) and counts it.
func (s *Server) rejectAt(ep *callbackEndpoint, w http.ResponseWriter, r *http.Request, start time.Time, code int, result, reason string) {
	http.Error(w, reason, code)
	s.o.Metrics.Callback(ep.name, result, time.Since(start))
	s.log.Warn().Str("endpoint", ep.name).Int("status", code).Str("remote", r.RemoteAddr).Str("reason", reason).Msg("callback rejected")
}
