package server

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/wecombot/wecombot/bot/wecom"
)

const endpointCallback = "wecom"

// callbackVerify answers WeCom's URL verification (GET): check the
// signature, decrypt echostr and return it exactly, with no newline.
func (s *Server) callbackVerify(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if s.o.Crypter == nil {
		s.reject(w, r, start, http.StatusServiceUnavailable, "not_configured", "callback is not configured: set WECOM_TOKEN and WECOM_AES_KEY")
		return
	}
	q := r.URL.Query()
	sig, ts, nonce, echo := q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), q.Get("echostr")
	if sig == "" || ts == "" || nonce == "" || echo == "" {
		s.reject(w, r, start, http.StatusBadRequest, "bad_request", "missing msg_signature, timestamp, nonce or echostr")
		return
	}
	plain, err := s.o.Crypter.VerifyURL(sig, ts, nonce, echo)
	if err != nil {
		s.rejectCrypto(w, r, start, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(plain)
	s.o.Metrics.Callback(endpointCallback, "verified", time.Since(start))
	s.log.Info().Msg("callback URL verified by WeCom")
}

// callbackEvent takes a POSTed event: verify, decrypt, parse, append to the
// durable log (deduplicating retries), and only then answer 200. The engine
// runs later, from the log.
func (s *Server) callbackEvent(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if s.o.Crypter == nil {
		s.reject(w, r, start, http.StatusServiceUnavailable, "not_configured", "callback is not configured: set WECOM_TOKEN and WECOM_AES_KEY")
		return
	}
	q := r.URL.Query()
	sig, ts, nonce := q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce")
	if sig == "" || ts == "" || nonce == "" {
		s.reject(w, r, start, http.StatusBadRequest, "bad_request", "missing msg_signature, timestamp or nonce")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.reject(w, r, start, http.StatusRequestEntityTooLarge, "too_large", "body over 1 MiB")
			return
		}
		s.reject(w, r, start, http.StatusBadRequest, "bad_request", "cannot read body")
		return
	}
	plain, err := s.o.Crypter.OpenXML(sig, ts, nonce, body)
	if err != nil {
		s.rejectCrypto(w, r, start, err)
		return
	}
	// The signature covers the timestamp, so checking it after verification
	// rejects replays of genuine old requests.
	if s.o.CallbackMaxAge > 0 {
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			s.reject(w, r, start, http.StatusBadRequest, "bad_request", "timestamp is not a number")
			return
		}
		if age := s.o.Now().Sub(time.Unix(sec, 0)); age > s.o.CallbackMaxAge || age < -s.o.CallbackMaxAge {
			s.reject(w, r, start, http.StatusForbidden, "stale", "timestamp outside WECOMBOT_CALLBACK_MAX_AGE (replay?)")
			return
		}
	}
	ev, err := wecom.ParseMessage(plain, s.o.Now())
	if err != nil {
		s.reject(w, r, start, http.StatusBadRequest, "bad_request", "cannot parse decrypted message: "+err.Error())
		return
	}
	dup, err := s.o.Store.AppendEvent(r.Context(), ev)
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

func (s *Server) rejectCrypto(w http.ResponseWriter, r *http.Request, start time.Time, err error) {
	switch {
	case errors.Is(err, wecom.ErrBadSignature):
		s.reject(w, r, start, http.StatusForbidden, "bad_signature", "signature does not match (check WECOM_TOKEN)")
	case errors.Is(err, wecom.ErrReceiveID):
		s.reject(w, r, start, http.StatusForbidden, "bad_receive_id", "message is for another corp (check WECOM_CORP_ID)")
	default:
		s.reject(w, r, start, http.StatusBadRequest, "bad_request", "cannot decrypt: "+err.Error())
	}
}

// reject answers an unusable callback with a short reason, logs it without
// secrets (the query and body are never logged) and counts it.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, start time.Time, code int, result, reason string) {
	http.Error(w, reason, code)
	s.o.Metrics.Callback(endpointCallback, result, time.Since(start))
	s.log.Warn().Int("status", code).Str("remote", r.RemoteAddr).Str("reason", reason).Msg("callback rejected")
}
