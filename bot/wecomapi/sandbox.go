package wecomapi

import (
	"context"
	"slices"
	"sync"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
)

// Sandbox is the bot.Sender used when no WECOM_SECRET is set: it logs each
// action and keeps it in memory instead of calling WeCom, and always succeeds.
type Sandbox struct {
	log  zerolog.Logger
	mu   sync.Mutex
	sent []bot.Action
}

// NewSandbox returns an empty Sandbox logging to log.
func NewSandbox(log zerolog.Logger) *Sandbox {
	return &Sandbox{log: log.With().Str("component", "sandbox").Logger()}
}

// Send records a and logs what would have been sent.
func (s *Sandbox) Send(_ context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	cp := *a
	cp.Payload = slices.Clone(a.Payload)
	s.mu.Lock()
	s.sent = append(s.sent, cp)
	s.mu.Unlock()
	s.log.Info().Str("kind", string(a.Kind)).Uint64("action", a.ID).Str("member", a.MemberID).
		Str("summary", Summary(a)).Msg("sandbox: recorded instead of sending to WeCom")
	return bot.SendResult{Detail: "sandbox"}, false, nil
}

// Sent returns a copy of the recorded actions, oldest first.
func (s *Sandbox) Sent() []bot.Action {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}
