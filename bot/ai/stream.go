package ai

import (
	"context"
	"sync"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/ai/state"
)

// StreamState is an AI bot answer as WeCom polls it (see state.StreamState).
type StreamState = state.StreamState

// streamTTL is how long a stream is kept in memory: WeCom polls a stream
// for at most 6 minutes after the message.
const streamTTL = 10 * time.Minute

// Streams buffers AI bot answers between the AI sender, which writes them as
// the model streams, and the /wecom/aibot handler, which serves WeCom's
// polls. Finished answers are also kept in the store (state.BucketStreams), so a
// poll after a restart still gets the answer.
type Streams struct {
	store bot.Store
	now   func() time.Time

	mu sync.Mutex
	m  map[string]*StreamState
}

// NewStreams returns an empty buffer backed by store (nil: memory only).
func NewStreams(store bot.Store, now func() time.Time) *Streams {
	if now == nil {
		now = time.Now
	}
	return &Streams{store: store, now: now, m: map[string]*StreamState{}}
}

// Open registers a stream (idempotent: a retried callback keeps its state).
func (s *Streams) Open(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gcLocked()
	if _, ok := s.m[id]; !ok {
		s.m[id] = &StreamState{Updated: s.now()}
	}
}

// Update sets a stream's text so far; finished marks it complete.
func (s *Streams) Update(id, content string, finished bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.m[id]
	if !ok {
		st = &StreamState{}
		s.m[id] = st
	}
	if st.Finished {
		return
	}
	// WeCom shows at most 20480 bytes of a stream.
	st.Content, st.Finished, st.Updated = bot.Clip(content, bot.MaxAIBotText), finished, s.now()
}

// Read returns a stream's state; known is false for an id nobody opened
// and the store doesn't know.
func (s *Streams) Read(ctx context.Context, id string) (st StreamState, known bool) {
	s.mu.Lock()
	if p, ok := s.m[id]; ok {
		st = *p
		s.mu.Unlock()
		return st, true
	}
	s.mu.Unlock()
	if s.store == nil {
		return st, false
	}
	var stored bool
	err := s.store.View(ctx, func(tx bot.Tx) (err error) {
		st, stored, err = state.StoredStream(tx, id)
		return err
	})
	if err != nil || !stored {
		return StreamState{}, false
	}
	return st, true
}

func (s *Streams) gcLocked() {
	cutoff := s.now().Add(-streamTTL)
	for id, st := range s.m {
		if st.Updated.Before(cutoff) {
			delete(s.m, id)
		}
	}
}
