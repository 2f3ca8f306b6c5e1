package ai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/ai/state"
	"github.com/wecombot/wecombot/scenarios"
)

// DefaultRateLimitRetries is how often a 429 is retried (with the outbox's
// backoff) before the member gets the offline answer or the fallback.
const DefaultRateLimitRetries = 3

// SenderOptions configure a Sender.
type SenderOptions struct {
	Store    bot.Store
	Replier  *Replier
	Scenario func() *scenarios.Scenario
	// Streams receives AI bot answers as they stream (nil: no AI bot).
	Streams *Streams
	// Facts adds other features' facts (open coupons, streak) to a member's profile.
	Facts FactSource
	// Tools, when set, gives the model tools bound to the person asking.
	Tools func(p *bot.AIReply) Tools
	// WakeEvents nudges the pipeline after the sender appended its answer
	// (pipeline.NotifyEvent).
	WakeEvents func()
	Log        zerolog.Logger
	Now        func() time.Time
	// Registerer, when set, gets the AI metrics.
	Registerer prometheus.Registerer
	// RateLimitRetries: see DefaultRateLimitRetries.
	RateLimitRetries int
	// OnAnswer, when set, sees every answer produced (for `wecombot ask --prompt` and tests).
	OnAnswer func(p *bot.AIReply, ans Answer)
	// MaxConcurrent bounds replies produced at once (default 4). The outbox
	// shares its senders between all action kinds; a slow model holding
	// every one of them would starve welcome messages (valid 20 s), so past
	// this bound an ai_reply is handed back to the outbox to retry later.
	MaxConcurrent int
}

// maxBusyBounces is how often an ai_reply goes back to the outbox for lack
// of a slot before it is answered offline (the outbox gives up after 12).
const maxBusyBounces = 6

// DefaultMaxConcurrent: half of the outbox's default 8 senders.
const DefaultMaxConcurrent = 4

// ErrBusy is returned (with retry) when MaxConcurrent replies are being produced.
var ErrBusy = errors.New("ai: all reply slots busy (slow model?); will retry")

// Sender delivers ai_reply actions: it produces the answer (model or
// offline, guarded) outside any transaction and hands it back as an
// ai.answer event; the engine then marks the message answered, remembers
// the exchange, counts failures, hands off and enqueues the reply
// (kf_message, staff_message, aibot_response) or stores the finished AI bot
// stream. The sender writes no domain state. A retried or replayed action
// finds the message answered (or its answer event already in the log) and
// sends nothing more.
type Sender struct {
	o   SenderOptions
	log zerolog.Logger
	m   *Metrics

	global limiter
	slots  chan struct{}
}

// NewSender returns an AI sender.
func NewSender(o SenderOptions) *Sender {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RateLimitRetries <= 0 {
		o.RateLimitRetries = DefaultRateLimitRetries
	}
	if o.WakeEvents == nil {
		o.WakeEvents = func() {}
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	return &Sender{o: o, log: o.Log.With().Str("component", "ai").Logger(), m: NewMetrics(o.Registerer),
		slots: make(chan struct{}, o.MaxConcurrent)}
}

// Metrics counts what the AI does.
type Metrics struct {
	Replies     *prometheus.CounterVec
	ModelErrors *prometheus.CounterVec
	Guard       *prometheus.CounterVec
	Guarded     *prometheus.CounterVec
	Latency     prometheus.Histogram
}

// NewMetrics creates the AI metrics, registered on reg when not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Replies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wecombot_ai_replies_total",
			Help: "AI replies by source (model, offline, fallback) and surface."}, []string{"source", "surface"}),
		ModelErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wecombot_ai_model_errors_total",
			Help: "Model calls that failed, by kind (rate_limited, unavailable, rejected, breaker_open)."}, []string{"kind"}),
		Guard: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wecombot_ai_guard_total",
			Help: "Replies the output guard changed or refused, by issue."}, []string{"issue"}),
		Guarded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wecombot_ai_input_guarded_total",
			Help: "Messages answered without the model by the input guard, by verdict (handoff, negative, banned, injection, rate_limited)."}, []string{"verdict"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wecombot_ai_reply_seconds",
			Help: "Time to produce an AI reply.", Buckets: []float64{.01, .1, .5, 1, 2, 5, 10, 20, 40}}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Replies, m.ModelErrors, m.Guard, m.Guarded, m.Latency} {
			_ = reg.Register(c)
		}
	}
	return m
}

// Send produces and delivers the reply for one ai_reply action (bot.Sender).
func (s *Sender) Send(ctx context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	if a.Kind != bot.ActionAIReply {
		return bot.SendResult{}, false, fmt.Errorf("ai sender: unexpected action kind %q", a.Kind)
	}
	var p bot.AIReply
	if err := a.Decode(&p); err != nil {
		return bot.SendResult{}, false, err
	}
	offlineOnly := false
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		s.m.ModelErrors.WithLabelValues("busy").Inc()
		if a.Attempts+1 < maxBusyBounces {
			return bot.SendResult{}, true, ErrBusy
		}
		// Bounced long enough: answer from the FAQ now rather than let the
		// outbox give up on the member.
		offlineOnly = true
	}
	if p.Ref == "" || (p.Surface == bot.AISurfaceKf && (p.MemberID == "" || p.OpenKfID == "")) ||
		(p.Surface == bot.AISurfaceAIBot && p.StreamID == "") {
		return bot.SendResult{}, false, fmt.Errorf("ai_reply action %d: incomplete payload", a.ID)
	}
	sc := s.o.Scenario()
	if (sc == nil || sc.AI == nil) && p.Answer == "" {
		if p.Surface != bot.AISurfaceAIBot {
			return bot.SendResult{Detail: "ai section removed from the scenario; not answered"}, false, nil
		}
		p.Answer = "AI 回复未开启。"
	}
	scope := state.Scope(&p)

	asker, err := s.readAsker(ctx, &p, scope)
	if err != nil {
		return bot.SendResult{}, true, fmt.Errorf("ai_reply %s: read store: %w", p.Ref, err)
	}
	if asker.done {
		return bot.SendResult{Detail: "already answered"}, false, nil
	}
	member, mem := asker.member, asker.memory

	profile := Profile{Staff: p.MemberID == ""}
	if member != nil {
		profile = MemberProfile(sc, member)
		profile.Facts = append(profile.Facts, asker.facts...)
	}
	data := sc.DataFor(member)
	if p.StaffID != "" && member == nil {
		data.Staff = p.StaffID
	}
	started := s.o.Now()
	var ans Answer
	switch {
	case p.Answer != "":
		ans = Answer{Text: p.Answer, Source: SourceFixed}
		if p.Verdict != "" {
			s.m.Guarded.WithLabelValues(p.Verdict).Inc()
		}
	case offlineOnly:
		ans = s.o.Replier.offlineFor(s.o.Replier.Index(sc), sc, p.Text, data)
	case s.o.Replier.Model != nil && !s.allowGlobal(ctx, sc.AI.GlobalPerMinute, started):
		s.m.ModelErrors.WithLabelValues("global_limit").Inc()
		if a.Attempts+1 < s.o.RateLimitRetries {
			return bot.SendResult{}, true, errors.New("ai: ai.global_per_minute reached; retrying later")
		}
		ans = s.o.Replier.offlineFor(s.o.Replier.Index(sc), sc, p.Text, data)
	default:
		q := Question{Scenario: sc, Profile: profile, Memory: mem.Window(sc.AI.MemoryTurns, sc.AI.MemoryTokens), Text: p.Text, Data: data}
		if p.Surface == bot.AISurfaceAIBot && s.o.Streams != nil {
			s.o.Streams.Open(p.StreamID)
			q.OnText = func(sofar string) { s.o.Streams.Update(p.StreamID, sofar, false) }
		}
		if s.o.Tools != nil {
			q.Tools = s.o.Tools(&p)
		}
		ans = s.o.Replier.Reply(ctx, q)
	}
	if s.o.OnAnswer != nil {
		s.o.OnAnswer(&p, ans)
	}
	for _, issue := range ans.Issues {
		s.m.Guard.WithLabelValues(issue).Inc()
	}
	if ans.Err != nil {
		s.m.ModelErrors.WithLabelValues(modelErrorKind(&ans)).Inc()
		if ans.RateLimited && a.Attempts+1 < s.o.RateLimitRetries {
			// The outbox retries with its jittered backoff; the member gets an
			// answer (at worst the fallback) after RateLimitRetries tries.
			return bot.SendResult{}, true, fmt.Errorf("ai_reply %s: %w", p.Ref, ans.Err)
		}
		s.log.Warn().Str("ref", p.Ref).Str("source", ans.Source).Str("error", ans.Err.Error()).Msg("model failed; answered without it")
	}
	return s.handBack(ctx, a, &p, ans, started)
}

// asker is what the prompt may use about the person asking: their record,
// other features' facts and their memory only; done when the message was
// answered already.
type asker struct {
	done   bool
	member *bot.Member
	memory state.Memory
	facts  []Fact
}

func (s *Sender) readAsker(ctx context.Context, p *bot.AIReply, scope string) (asker, error) {
	var who asker
	err := s.o.Store.View(ctx, func(tx bot.Tx) error {
		var err error
		if who.done, err = state.Answered(tx, p.Ref); err != nil || who.done {
			return err
		}
		if p.MemberID != "" {
			who.member, err = tx.Member(p.MemberID)
			if errors.Is(err, bot.ErrNotFound) {
				who.member, err = nil, nil
			}
			if err != nil {
				return err
			}
			if s.o.Facts != nil {
				if who.facts, err = s.o.Facts(tx, p.MemberID); err != nil {
					return err
				}
			}
		}
		who.memory, err = state.LoadMemory(tx, scope)
		return err
	})
	return who, err
}

// modelErrorKind labels a failed model call for wecombot_ai_model_errors_total.
func modelErrorKind(ans *Answer) string {
	switch {
	case ans.RateLimited:
		return "rate_limited"
	case errors.Is(ans.Err, ErrRejected):
		return "rejected"
	case !errors.Is(ans.Err, ErrUnavailable):
		return "breaker_open"
	}
	return "unavailable"
}

// handBack hands the answer back to the engine, which decides the reply,
// memory, failure count and hand-off inside the event's transaction (only
// the engine writes domain state). The dedupe key makes a retried action's
// second answer a no-op; the engine's done marker keeps one reply.
func (s *Sender) handBack(ctx context.Context, a *bot.Action, p *bot.AIReply, ans Answer, started time.Time) (bot.SendResult, bool, error) {
	now := s.o.Now()
	res := bot.AIAnswer{Reply: *p, Text: ans.Text, Source: ans.Source, Failed: ans.Err != nil && p.Answer == "",
		Unanswered: ans.Source == SourceFallback && p.Answer == "", AskedAt: a.CreatedAt, EventSeq: a.EventSeq}
	raw, err := json.Marshal(res)
	if err != nil {
		return bot.SendResult{}, false, fmt.Errorf("ai_reply %s: encode answer: %w", p.Ref, err)
	}
	ev := &bot.Event{Type: bot.EventAIAnswer, Source: bot.SourceAI, DedupeKey: "aianswer|" + p.Ref,
		At: now, ReceivedAt: now, ExternalUserID: p.MemberID, StaffID: p.StaffID, OpenKfID: p.OpenKfID,
		Content: p.Text, Data: map[string]string{bot.AIAnswerKey: string(raw)}}
	if _, err := s.o.Store.AppendEvent(ctx, ev); err != nil {
		return bot.SendResult{}, true, fmt.Errorf("ai_reply %s: hand the answer to the engine: %w", p.Ref, err)
	}
	s.o.WakeEvents()
	if p.Surface == bot.AISurfaceAIBot && s.o.Streams != nil {
		s.o.Streams.Update(p.StreamID, ans.Text, true)
	}
	s.m.Replies.WithLabelValues(ans.Source, p.Surface).Inc()
	s.m.Latency.Observe(s.o.Now().Sub(started).Seconds())
	return bot.SendResult{Detail: ans.Source}, false, nil
}

// offlineFor answers q from retrieval alone (no model call).
func (r *Replier) offlineFor(ix *Index, sc *scenarios.Scenario, text string, data scenarios.TemplateData) Answer {
	return r.offline(Question{Scenario: sc, Text: text, Data: data}, Answer{Hits: ix.Search(text, snippets)})
}

// limiter is a process-wide cap on model calls per minute (a sliding window).
// allowGlobal applies ai.global_per_minute: in-process for a store one
// process owns, in the store when several nodes share it (so N nodes
// together stay under the limit). The shared count is a sliding estimate
// over fixed minutes: the previous minute's calls weighted by how much of
// it the last 60 s still cover, plus this minute's.
func (s *Sender) allowGlobal(ctx context.Context, perMinute int, now time.Time) bool {
	if perMinute <= 0 {
		return true
	}
	if _, shared := s.o.Store.(bot.Cluster); !shared {
		return s.global.allow(perMinute, now)
	}
	minute := now.Unix() / 60
	key := func(m int64) string { return strconv.FormatInt(m, 10) }
	count := func(tx bot.Tx, m int64) (int, error) {
		v, err := tx.Get(bot.BucketAIGlobalRate, key(m))
		if errors.Is(err, bot.ErrNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(string(v))
	}
	allowed := false
	err := s.o.Store.Update(ctx, func(tx bot.Tx) error {
		allowed = false
		cur, err := count(tx, minute)
		if err != nil {
			return err
		}
		prev, err := count(tx, minute-1)
		if err != nil {
			return err
		}
		covered := 1 - float64(now.UnixNano()%int64(time.Minute))/float64(time.Minute)
		if float64(prev)*covered+float64(cur) >= float64(perMinute) {
			return nil
		}
		allowed = true
		if err := tx.Delete(bot.BucketAIGlobalRate, key(minute-2)); err != nil {
			return err
		}
		return tx.Put(bot.BucketAIGlobalRate, key(minute), []byte(strconv.Itoa(cur+1)))
	})
	if err != nil {
		s.log.Warn().Err(err).Msg("shared ai.global_per_minute count unavailable; counting on this node only")
		return s.global.allow(perMinute, now)
	}
	return allowed
}

type limiter struct {
	mu    sync.Mutex
	calls []time.Time
}

func (l *limiter) allow(perMinute int, now time.Time) bool {
	if perMinute <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cutoff := now.Add(-time.Minute)
	kept := l.calls[:0]
	for _, t := range l.calls {
		if t.After(cutoff) {
			kept = append(kept, t)
		}
	}
	l.calls = kept
	if len(kept) >= perMinute {
		return false
	}
	l.calls = append(l.calls, now)
	return true
}
