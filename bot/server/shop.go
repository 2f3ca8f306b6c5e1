package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
)

// The shop's order webhook, POST /hooks/orders (docs/shop-webhook.md).
//
//	X-Wecombot-Timestamp: unix seconds when the shop signed the request
//	X-Wecombot-Signature: sha256=hex(HMAC-SHA256(WECOMBOT_SHOP_SECRET, timestamp + "." + body))
//
// A valid request is appended to the event log (deduplicated by order id,
// and refund id for refunds) and answered 200 once it is durable; the
// engine applies it later (funnel, pending orders, refunds, coupon
// redemption). A bad signature or a timestamp outside ShopMaxAge is 401 and
// nothing is stored.
const (
	HeaderShopTimestamp = "X-Wecombot-Timestamp"
	HeaderShopSignature = "X-Wecombot-Signature"
	// MaxShopBodyBytes caps an order notification.
	MaxShopBodyBytes = 64 << 10
	// DefaultShopMaxAge is the replay window when Options.ShopMaxAge is 0.
	DefaultShopMaxAge = 5 * time.Minute
	endpointShop      = "shop"
)

// ShopOrder is the webhook's JSON body.
type ShopOrder struct {
	// Event is "order.paid" or "order.refunded".
	Event   string `json:"event"`
	OrderID string `json:"order_id"`
	// ExternalUserID is the member (WeCom external_userid). UnionID sent
	// with it is remembered, so later orders may name the member by
	// unionid alone.
	ExternalUserID string `json:"external_userid"`
	UnionID        string `json:"unionid,omitempty"`
	// AmountFen is the paid amount (order.paid, required) or the refunded
	// amount (order.refunded; omitted: the rest of the order), in fen (分).
	AmountFen *int64 `json:"amount_fen"`
	// CouponCode is the wecombot coupon the order used, if any.
	CouponCode string `json:"coupon_code,omitempty"`
	// RefundID tells partial refunds of one order apart.
	RefundID string `json:"refund_id,omitempty"`
	// At is when it happened (RFC 3339); omitted: when wecombot received it.
	At string `json:"at,omitempty"`
}

// SignShopRequest returns the signature header value for body at ts: what
// the shop sends and what tests and `wecombot` tools use.
func SignShopRequest(secret []byte, ts string, body []byte) string {
	return "sha256=" + hex.EncodeToString(shopMAC(secret, ts, body))
}

func shopMAC(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// shopOrders takes an order notification from the shop.
func (s *Server) shopOrders(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reject := func(code int, result, msg string) {
		writeError(w, code, msg)
		s.o.Metrics.Callback(endpointShop, result, time.Since(start))
		s.log.Warn().Int("status", code).Str("remote", r.RemoteAddr).Str("reason", msg).Msg("shop webhook rejected")
	}
	if s.o.ShopSecret == "" {
		reject(http.StatusServiceUnavailable, "not_configured", "the shop webhook is off: set WECOMBOT_SHOP_SECRET (and give the shop the same secret)")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxShopBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			reject(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over %d bytes", MaxShopBodyBytes))
			return
		}
		reject(http.StatusBadRequest, "bad_request", "cannot read body")
		return
	}
	ts, sig := r.Header.Get(HeaderShopTimestamp), r.Header.Get(HeaderShopSignature)
	got, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
	if ts == "" || sig == "" || err != nil || !hmac.Equal(got, shopMAC([]byte(s.o.ShopSecret), ts, body)) {
		reject(http.StatusUnauthorized, "bad_signature", "missing or wrong "+HeaderShopSignature+" (HMAC-SHA256 of timestamp + \".\" + body with WECOMBOT_SHOP_SECRET)")
		return
	}
	// The signature covers the timestamp, so a replayed genuine request
	// can't move it into the window.
	sec, err := strconv.ParseInt(ts, 10, 64)
	maxAge := s.o.ShopMaxAge
	if maxAge <= 0 {
		maxAge = DefaultShopMaxAge
	}
	if err != nil {
		reject(http.StatusUnauthorized, "stale", HeaderShopTimestamp+" must be unix seconds")
		return
	}
	if age := s.o.Now().Sub(time.Unix(sec, 0)); age > maxAge || age < -maxAge {
		reject(http.StatusUnauthorized, "stale", fmt.Sprintf("%s is more than %s from the server's clock (replay, or a skewed clock)", HeaderShopTimestamp, maxAge))
		return
	}
	ev, err := s.shopEvent(body)
	var fe *bot.FieldError
	if errors.As(err, &fe) {
		reject(http.StatusUnprocessableEntity, "bad_request", fe.Error())
		return
	}
	if err != nil {
		reject(http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if ev.ExternalUserID == "" {
		// Named by unionid alone: use the member an earlier order paired it with.
		var member string
		err := s.o.Store.View(r.Context(), func(tx bot.Tx) (err error) {
			member, err = engine.MemberByUnionID(tx, ev.Data[bot.DataUnionID])
			return err
		})
		if err != nil {
			reject(http.StatusInternalServerError, "error", "cannot look up the unionid; retry later")
			return
		}
		if member == "" {
			reject(http.StatusUnprocessableEntity, "unknown_member", "unknown unionid: send external_userid with it once (wecombot learns the pair), or external_userid alone")
			return
		}
		ev.ExternalUserID = member
	}
	dup, err := s.o.Store.AppendEvent(r.Context(), ev)
	s.observeAppend(dup, err)
	if errors.As(err, &fe) {
		reject(http.StatusUnprocessableEntity, "bad_request", fe.Error())
		return
	}
	if err != nil {
		s.log.Error().Err(err).Str("order", ev.Data[bot.DataOrderID]).Msg("cannot store shop order event")
		reject(http.StatusInternalServerError, "error", "cannot store the order; retry later")
		return
	}
	result := "accepted"
	if dup {
		result = "duplicate"
	} else if s.o.Pipeline != nil {
		s.o.Pipeline.NotifyEvent()
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "seq": ev.Seq, "duplicate": dup})
	s.o.Metrics.Callback(endpointShop, result, time.Since(start))
	s.log.Info().Str("type", string(ev.Type)).Str("order", ev.Data[bot.DataOrderID]).Bool("duplicate", dup).Msg("shop order")
}

// shopEvent validates the body and turns it into an order event whose
// dedupe key is the order id (plus the refund id for refunds).
func (s *Server) shopEvent(body []byte) (*bot.Event, error) {
	var o ShopOrder
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return nil, fmt.Errorf("body is not an order: %v", err)
	}
	o.OrderID = strings.TrimSpace(o.OrderID)
	switch {
	case o.OrderID == "" || len(o.OrderID) > 128:
		return nil, errors.New("order_id is required (at most 128 characters)")
	case o.ExternalUserID == "" && o.UnionID == "":
		return nil, errors.New("external_userid (the member's WeCom external_userid) or a unionid wecombot has seen with one is required")
	case o.AmountFen != nil && *o.AmountFen < 0:
		return nil, errors.New("amount_fen must not be negative")
	}
	// Out of range (not malformed) is 422 naming the field: amounts beyond
	// bot.MaxAmountFen, ids too long to be real.
	if o.AmountFen != nil {
		if err := bot.CheckAmountFen("amount_fen", *o.AmountFen); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct{ name, v string }{{"external_userid", o.ExternalUserID}, {"unionid", o.UnionID},
		{"coupon_code", o.CouponCode}, {"refund_id", o.RefundID}} {
		if err := bot.CheckID(f.name, f.v); err != nil {
			return nil, err
		}
	}
	now := s.o.Now()
	ev := &bot.Event{Source: bot.SourceShop, ExternalUserID: o.ExternalUserID, At: now, ReceivedAt: now,
		Data: map[string]string{bot.DataOrderID: o.OrderID}}
	if o.At != "" {
		at, err := time.Parse(time.RFC3339, o.At)
		if err != nil {
			return nil, fmt.Errorf("at must be an RFC 3339 time such as 2025-03-04T12:20:00+08:00, got %q", o.At)
		}
		ev.At = at
	}
	if o.AmountFen != nil {
		ev.Data[bot.DataAmountFen] = strconv.FormatInt(*o.AmountFen, 10)
	}
	if o.UnionID != "" {
		ev.Data[bot.DataUnionID] = o.UnionID
	}
	switch bot.EventType(o.Event) {
	case bot.EventOrderPaid:
		if o.AmountFen == nil {
			return nil, errors.New("amount_fen is required for order.paid")
		}
		ev.Type = bot.EventOrderPaid
		ev.DedupeKey = "shop|paid|" + o.OrderID
		if c := strings.TrimSpace(o.CouponCode); c != "" {
			ev.Data[bot.DataCouponCode] = c
		}
	case bot.EventOrderRefunded:
		ev.Type = bot.EventOrderRefunded
		ev.DedupeKey = "shop|refund|" + o.OrderID + "|" + o.RefundID
		if o.RefundID != "" {
			ev.Data[bot.DataRefundID] = o.RefundID
		}
	default:
		return nil, fmt.Errorf("event must be order.paid or order.refunded, got %q", o.Event)
	}
	return ev, nil
}
