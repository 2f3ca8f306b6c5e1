// Package server is wecombot's HTTP face: the WeCom callback, health,
// metrics, the admin API and the dashboard. Every route is listed in
// routes.go.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
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
	// Posters draws a member's 任务宝 poster (bot/poster Renderer.Render);
	// nil: the poster page says it is unavailable.
	Posters func(ctx context.Context, p bot.PosterRef) ([]byte, error)
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
	// FunnelTTL is how long the check-in report (per-day counts, streaks) is reused before a
	// background refresh (default 30 s).
	FunnelTTL time.Duration
	// AIBotCrypter verifies and decrypts /wecom/aibot (receive id ""); nil answers 503.
	AIBotCrypter *wecom.Crypter
	// AIStreams serves the AI bot's streamed answers.
	AIStreams AIStreams
	// Redact scrubs secrets from stored texts the API serves (last_error);
	// nil serves them as stored.
	Redact *logging.Redactor
	// HealthMaxEventAge makes /healthz 503 while the oldest unprocessed
	// event is older than this (0: no limit).
	HealthMaxEventAge time.Duration
	// Sync starts and reports syncs from WeCom (nil: no credentials, sandbox).
	Sync SyncControl
	// Unassigned lists the customers of departed staff (nil: sandbox).
	Unassigned UnassignedLister
}

// Server serves wecombot's routes.
type Server struct {
	o   Options
	log zerolog.Logger
	mux *http.ServeMux
	// agg caches the member aggregate behind /api/v1/funnel and the overview.
	agg *aggregateCache
	// wecom is the /wecom/callback endpoint.
	wecom *callbackEndpoint
}

// New builds the server and its routes.
func New(o Options) *Server {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FunnelTTL <= 0 {
		o.FunnelTTL = 30 * time.Second
	}
	s := &Server{o: o, log: o.Log.With().Str("component", "http").Logger(), mux: http.NewServeMux(), wecom: newWeComEndpoint(o.Crypter)}
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

// healthz answers 200 when storage answers, takes writes, the pipeline runs
// and the event log is not behind; else 503 with the reason, so a load
// balancer or orchestrator stops trusting an instance whose callbacks would
// fail (disk full, read-only file system) or whose events wait too long.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	body := map[string]any{"status": "ok"}
	code := http.StatusOK
	unhealthy := func(status, reason string) {
		code, body["status"], body["reason"] = http.StatusServiceUnavailable, status, reason
	}
	if s.o.Pipeline == nil {
		st, err := s.o.Store.EventStats(ctx)
		if err != nil {
			unhealthy("storage unavailable", s.o.Redact.String(err.Error()))
		} else {
			body["event_lag"] = st.Pending
		}
		writeJSON(w, code, body)
		return
	}
	h, err := s.o.Pipeline.Health(ctx)
	body["event_lag"] = h.Pending
	body["oldest_pending_seconds"] = h.OldestPendingAge.Seconds()
	body["store_writable"] = h.Writable
	if len(h.Held) > 0 {
		body["wecom_held"] = h.Held
	}
	switch {
	case err != nil:
		unhealthy("storage unavailable", s.o.Redact.String(err.Error()))
	case !s.o.Pipeline.Running():
		unhealthy("workers not running", "the event workers and outbox relay are stopped")
	case !h.Writable:
		unhealthy("store refuses writes", fmt.Sprintf("the store refuses writes since %s: %s — free disk space or make the data directory writable; acknowledged events wait and nothing is lost",
			h.FailingSince.Format(time.RFC3339), s.o.Redact.String(h.WriteError)))
	case s.o.HealthMaxEventAge > 0 && h.OldestPendingAge > s.o.HealthMaxEventAge:
		unhealthy("event log behind", fmt.Sprintf("the oldest unprocessed event has waited %s (WECOMBOT_HEALTH_MAX_EVENT_AGE %s); %d events pending",
			h.OldestPendingAge.Round(time.Second), s.o.HealthMaxEventAge, h.Pending))
	}
	writeJSON(w, code, body)
}

// ingester is a store that acknowledges an event once it is durable,
// before the event log's readers see it (storage/bolt's ingest log).
type ingester interface {
	IngestEvent(ctx context.Context, ev *bot.Event) (bool, error)
}

// ingest stores a callback's event durably before its 200: through the
// store's ingest path when it has one (the pipeline is woken when the
// event reaches the log), else AppendEvent.
func (s *Server) ingest(ctx context.Context, ev *bot.Event) (bool, error) {
	if in, ok := s.o.Store.(ingester); ok {
		return in.IngestEvent(ctx, ev)
	}
	return s.o.Store.AppendEvent(ctx, ev)
}

// observeAppend tells the pipeline's health how a callback's append went.
// A failure always counts. A success counts only where the append was a
// write of the store's own (AppendEvent; a duplicate answered from a read
// proves nothing about writes): an ingest log's append goes to
// a preallocated file beside the database and says nothing of whether the
// database takes writes — with the disk full, acks went on succeeding
// there while bbolt refused, and each one marked the store writable again
// and kept /healthz from probing (TestBinaryDiskFullLosesNoAcknowledgedEvent).
func (s *Server) observeAppend(dup bool, err error) {
	if s.o.Pipeline == nil {
		return
	}
	if err != nil {
		s.o.Pipeline.ObserveWrite(err)
		return
	}
	if _, ingests := s.o.Store.(ingester); !ingests && !dup {
		s.o.Pipeline.ObserveWrite(nil)
	}
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

// appendEvent appends ev to the event log and, when it is new, wakes the
// pipeline to apply it (a retry already in the log wakes nothing).
func (s *Server) appendEvent(ctx context.Context, ev *bot.Event) (dup bool, err error) {
	dup, err = s.o.Store.AppendEvent(ctx, ev)
	if err == nil && !dup && s.o.Pipeline != nil {
		s.o.Pipeline.NotifyEvent()
	}
	return dup, err
}
