// Package server is wecombot's HTTP face: the WeCom callback, health,
// metrics, the admin API and the dashboard. Every route is listed in
// routes.go.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/logging"
	"github.com/wecombot/wecombot/bot/metrics"
	"github.com/wecombot/wecombot/bot/pipeline"
	"github.com/wecombot/wecombot/bot/signlink"
	"github.com/wecombot/wecombot/bot/wecom"
	"github.com/wecombot/wecombot/scenarios"
)

// MaxBodyBytes caps every request body; WeCom callbacks are a few KiB.
const MaxBodyBytes = 1 << 20

// Options are the server's dependencies.
type Options struct {
	Store    bot.Store
	Pipeline *pipeline.Pipeline
	// Crypter verifies and decrypts /wecom/callback; nil answers 503.
	Crypter *wecom.Crypter
	Log     zerolog.Logger
	Metrics *metrics.Metrics
	// Version is the build's version, for /api/v1/openapi.json.
	Version string
	Now     func() time.Time
	// CallbackMaxAge rejects callbacks whose timestamp is further than this
	// from now (replays); 0 turns the check off.
	CallbackMaxAge time.Duration
	// AdminToken protects /api/v1; empty allows admin requests from loopback only.
	AdminToken string
	// Status adds facts (version, scenario, sandbox) to /api/v1/status.
	Status func() map[string]any
	// Links verifies members' signed H5 links (check-in, coupon claim).
	Links *signlink.Signer
	// ShopSecret authenticates POST /hooks/orders (empty: the webhook
	// answers 503); ShopMaxAge is its replay window (0: DefaultShopMaxAge).
	ShopSecret string
	ShopMaxAge time.Duration
	// Scenario returns the scenario in force (hot reloaded); nil in tests
	// that don't need it.
	Scenario func() *scenarios.Scenario

	// Sandbox turns on the console's "simulate a member" events (403 otherwise).
	Sandbox bool
	// Scenarios lets the console show, validate, reload and simulate the
	// scenarios; nil answers 501.
	Scenarios ScenarioControl
	// Campaigns and Coupons are read functions the check-in and coupon
	// features expose; nil shows an empty state.
	Campaigns CampaignReader
	Coupons   CouponReader
	// MemberSections add feature sections (points ledger, coupons) to a
	// member's detail.
	MemberSections []MemberSection
	// FunnelTTL is how long the funnel aggregate is reused before a
	// background refresh (default 30 s).
	FunnelTTL time.Duration
	// AIBotCrypter verifies and decrypts /wecom/aibot (receive id ""); nil answers 503.
	AIBotCrypter *wecom.Crypter
	// AIStreams serves the AI bot's streamed answers.
	AIStreams AIStreams
	// Redact scrubs secrets from stored texts the API serves (last_error);
	// nil serves them as stored.
	Redact *logging.Redactor
}

// Server serves wecombot's routes.
type Server struct {
	o   Options
	log zerolog.Logger
	mux *http.ServeMux
	// agg caches the member aggregate behind /api/v1/funnel and the overview.
	agg *aggregateCache
}

// New builds the server and its routes.
func New(o Options) *Server {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FunnelTTL <= 0 {
		o.FunnelTTL = 30 * time.Second
	}
	s := &Server{o: o, log: o.Log.With().Str("component", "http").Logger(), mux: http.NewServeMux()}
	s.agg = newAggregateCache(o.FunnelTTL, o.Now, s.computeAggregate)
	s.routes()
	return s
}

// ServeHTTP recovers from panics in handlers: one bad request never takes the process down.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v) // a deliberate abort: net/http cuts the connection
			}
			s.log.Error().Interface("panic", v).Str("path", r.URL.Path).Msg("handler panicked")
			if isAPI(r) {
				writeProblem(w, errorBody{Status: http.StatusInternalServerError, Code: "internal", Error: "internal error", Instance: r.URL.Path})
				return
			}
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	}()
	if isAPI(r) {
		if _, pattern := s.mux.Handler(r); pattern == "" {
			apiNoRoute(s.mux, w, r)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// isAPI reports whether r is for the admin API, whose errors are all
// application/problem+json.
func isAPI(r *http.Request) bool {
	return r.URL.Path == "/api" || strings.HasPrefix(r.URL.Path, "/api/")
}

// HTTPServer wraps the handler with the timeouts a public endpoint needs.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
}

// healthz answers 200 when storage answers and the pipeline runs.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	st, err := s.o.Store.EventStats(ctx)
	body := map[string]any{"status": "ok"}
	code := http.StatusOK
	switch {
	case err != nil:
		code, body["status"], body["error"] = http.StatusServiceUnavailable, "storage unavailable", err.Error()
	case s.o.Pipeline != nil && !s.o.Pipeline.Running():
		code, body["status"] = http.StatusServiceUnavailable, "workers not running"
	default:
		body["event_lag"] = st.Pending
	}
	writeJSON(w, code, body)
}

// requireAdmin guards admin routes: a bearer token when configured, else loopback only.
func (s *Server) requireAdmin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.o.AdminToken == "" {
			if !isLoopback(r.RemoteAddr) || proxied(r) {
				s.fail(w, r, errLoopbackOnly)
				return
			}
			next(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// Digests, so the comparison doesn't reveal the token's length either.
		gotSum, wantSum := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(s.o.AdminToken))
		if !ok || subtle.ConstantTimeCompare(gotSum[:], wantSum[:]) != 1 {
			s.fail(w, r, errUnauthorized)
			return
		}
		next(w, r)
	}
}

// proxied reports whether a request came through a proxy (a reverse proxy
// on this host connects from loopback): such requests never count as local.
// Every line of each header counts, even an empty first one: a proxy that
// appends its own X-Forwarded-For line after a client's empty one is still
// a proxy.
func proxied(r *http.Request) bool {
	for _, h := range []string{"X-Forwarded-For", "X-Real-Ip", "Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto", "Via"} {
		if len(r.Header.Values(h)) > 0 {
			return true
		}
	}
	return false
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}
