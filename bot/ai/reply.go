// Package ai answers members' and staff members' questions: BM25 retrieval
// over the scenario's FAQ and knowledge files (Chinese-aware tokens, no
// vector database), per-scope memory in the store, prompts built from the
// persona, the asker's own profile and the retrieved snippets, guardrails on
// the way in and out, an OpenAI-compatible model behind a timeout and a
// circuit breaker, and an offline model that answers from retrieval alone.
//
// Nothing here runs inside a callback: the engine enqueues an ai_reply
// action, and Sender (an outbox sender) produces and delivers the answer.
package ai

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/wecombot/wecombot/bot/ai/guard"
	"github.com/wecombot/wecombot/bot/ai/state"
	"github.com/wecombot/wecombot/scenarios"
)

// Reply sources.
const (
	SourceModel    = "model"
	SourceOffline  = "offline"
	SourceFallback = "fallback"
	// SourceFixed: the engine chose the answer (refusal, fallback for a banned word).
	SourceFixed = "fixed"
)

// Defaults of a Replier.
const (
	DefaultTimeout     = 20 * time.Second
	DefaultMinCoverage = 0.34
	maxToolRounds      = 3
	snippets           = 3
)

// Tools runs the tool calls a model may make on behalf of the person asking.
// The sender binds it to that person: a tool can't name anyone else.
type Tools interface {
	Specs() []ToolSpec
	Run(ctx context.Context, call ToolCall) (string, error)
}

// Replier turns a question into a reply. It is safe for concurrent use.
type Replier struct {
	// Model is the online model; nil answers offline (retrieval only).
	Model   Model
	Breaker *Breaker
	// Timeout bounds each model call (default 20 s).
	Timeout time.Duration
	// MinCoverage is how much of a question an FAQ entry must cover for the
	// offline model to answer with it (default 0.34).
	MinCoverage float64

	mu sync.Mutex
	sc *scenarios.Scenario
	ix *Index
}

// Question is one question with everything the reply may use.
type Question struct {
	Scenario *scenarios.Scenario
	Profile  Profile
	Memory   []state.Turn
	Text     string
	// Data renders the fallback and refusal templates for the asker.
	Data scenarios.TemplateData
	// OnText, when set, streams the reply: it gets the guarded text so far.
	OnText func(sofar string)
	Tools  Tools
}

// Answer is the reply and how it came about.
type Answer struct {
	Text   string
	Source string
	Hits   []Hit
	// Prompt is what the model was sent (nil offline), for tests and debugging.
	Prompt []Message
	// OfflinePrompt is, offline only, the prompt a configured model would
	// have been sent (`wecombot ask --prompt` shows it).
	OfflinePrompt []Message
	// Issues are what the output guard changed or refused.
	Issues []string
	// Err is the model's error, if it failed; RateLimited says it was a 429
	// (the sender may retry later instead of falling back).
	Err         error
	RateLimited bool
}

// Index returns the retrieval index of sc, built once per scenario version.
func (r *Replier) Index(sc *scenarios.Scenario) *Index {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sc != sc || r.ix == nil {
		var docs []Doc
		if sc != nil && sc.AI != nil {
			docs = make([]Doc, 0, len(sc.AI.FAQ))
			for _, f := range sc.AI.FAQ {
				docs = append(docs, Doc{Q: f.Q, A: f.A, Keywords: f.Keywords, Source: f.Source})
			}
		}
		r.sc, r.ix = sc, NewIndex(docs)
	}
	return r.ix
}

// ModelName is the online model's name, or "offline".
func (r *Replier) ModelName() string {
	if r.Model == nil {
		return "offline"
	}
	return r.Model.Name()
}

// Reply answers q. It never fails: a model problem yields the offline
// answer or the scenario's fallback, with Err set.
func (r *Replier) Reply(ctx context.Context, q Question) Answer {
	a := q.Scenario.AI
	hits := r.Index(q.Scenario).Search(q.Text, snippets)
	ans := Answer{Hits: hits}
	if r.Model == nil {
		ans.OfflinePrompt = BuildPrompt(a, q.Profile, hits, q.Memory, q.Text)
		return r.offline(q, ans)
	}
	if !r.Breaker.Allow() {
		ans.Err = errors.New("circuit breaker open: the model failed repeatedly")
		return r.offline(q, ans)
	}
	msgs := BuildPrompt(a, q.Profile, hits, q.Memory, q.Text)
	ans.Prompt = msgs
	allowed := q.Profile.Text()
	var tools []ToolSpec
	if q.Tools != nil {
		tools = q.Tools.Specs()
	}
	for round := 0; ; round++ {
		req := Request{Messages: msgs}
		if round < maxToolRounds {
			req.Tools = tools
		}
		if q.OnText != nil {
			var sofar strings.Builder
			req.OnDelta = func(d string) {
				sofar.WriteString(d)
				if out, _, ok := GuardReply(a, sofar.String(), hits, allowed); ok {
					q.OnText(out)
				}
			}
		}
		timeout := r.Timeout
		if timeout <= 0 {
			timeout = DefaultTimeout
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		c, err := r.Model.Complete(cctx, req)
		cancel()
		if err != nil {
			ans.Err = err
			if errors.Is(err, ErrRateLimited) {
				ans.RateLimited = true
				// A 429 is the provider pacing us, not the model failing.
				r.Breaker.Record(true)
			} else {
				r.Breaker.Record(false)
			}
			return r.offline(q, ans)
		}
		r.Breaker.Record(true)
		if len(c.ToolCalls) == 0 || round >= maxToolRounds || q.Tools == nil {
			out, issues, ok := GuardReply(a, c.Text, hits, allowed)
			ans.Issues = issues
			if !ok {
				return r.offline(q, ans)
			}
			ans.Text, ans.Source = out, SourceModel
			if q.OnText != nil {
				q.OnText(out)
			}
			return ans
		}
		msgs = append(msgs, Message{Role: "assistant", Content: c.Text, ToolCalls: c.ToolCalls})
		for _, call := range c.ToolCalls {
			res, err := q.Tools.Run(ctx, call)
			if err != nil {
				res = "error: " + err.Error()
			}
			// Tool results are about the asker; the price guard may repeat them.
			allowed += "\n" + res
			msgs = append(msgs, Message{Role: "tool", Content: res, ToolCallID: call.ID})
		}
		ans.Prompt = msgs
	}
}

// offline answers from the best FAQ entry when it covers enough of the
// question, else with the scenario's fallback text.
func (r *Replier) offline(q Question, ans Answer) Answer {
	min := r.MinCoverage
	if min <= 0 {
		min = DefaultMinCoverage
	}
	if len(ans.Hits) > 0 && ans.Hits[0].Coverage >= min {
		ans.Text, ans.Source = strings.TrimSpace(ans.Hits[0].Doc.A), SourceOffline
	} else {
		ans.Text, ans.Source = guard.FallbackText(q.Scenario, q.Data), SourceFallback
	}
	if q.OnText != nil {
		q.OnText(ans.Text)
	}
	return ans
}
