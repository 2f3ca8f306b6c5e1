package engine

import (
	"context"
	"encoding/json"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/wecombot/wecombot/bot"
)

// memStore is a small in-memory bot.Store for tests: Update runs on a copy
// of the state and swaps it in only when fn succeeds, like a transaction.
type memStore struct {
	mu sync.Mutex
	st *memState
}

type memState struct {
	events     []bot.Event
	processed  map[uint64]string
	dedupe     map[string]bool
	members    map[string][]byte
	actions    []bot.Action
	actionKeys map[string]uint64
	kv         map[string]map[string][]byte
}

func newMemStore() *memStore {
	return &memStore{st: &memState{processed: map[uint64]string{}, dedupe: map[string]bool{}, members: map[string][]byte{},
		actionKeys: map[string]uint64{}, kv: map[string]map[string][]byte{}}}
}

func (s *memState) clone() *memState {
	c := &memState{
		events:     append([]bot.Event(nil), s.events...),
		processed:  maps.Clone(s.processed),
		dedupe:     maps.Clone(s.dedupe),
		members:    maps.Clone(s.members),
		actions:    append([]bot.Action(nil), s.actions...),
		actionKeys: maps.Clone(s.actionKeys),
		kv:         map[string]map[string][]byte{},
	}
	for b, m := range s.kv {
		c.kv[b] = maps.Clone(m)
	}
	return c
}

func (s *memStore) Update(ctx context.Context, fn func(bot.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.st.clone()
	if err := fn(&memTx{c}); err != nil {
		return err
	}
	s.st = c
	return nil
}

func (s *memStore) View(ctx context.Context, fn func(bot.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fn(&memTx{s.st.clone()})
}

func (s *memStore) Close() error { return nil }

func (s *memStore) AppendEvent(ctx context.Context, ev *bot.Event) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev.DedupeKey != "" {
		if s.st.dedupe[ev.DedupeKey] {
			return true, nil
		}
		s.st.dedupe[ev.DedupeKey] = true
	}
	ev.Seq = uint64(len(s.st.events) + 1)
	s.st.events = append(s.st.events, *ev)
	return false, nil
}

func (s *memStore) PendingEvents(ctx context.Context, after uint64, limit int) ([]bot.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bot.Event
	for _, ev := range s.st.events {
		if _, done := s.st.processed[ev.Seq]; ev.Seq > after && !done && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (s *memStore) Events(ctx context.Context, after uint64, limit int) ([]bot.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bot.Event
	for _, ev := range s.st.events {
		if ev.Seq > after && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (s *memStore) EventStats(ctx context.Context) (bot.EventStats, error) {
	return bot.EventStats{LastSeq: uint64(len(s.st.events))}, nil
}

func (s *memStore) PruneDedupe(ctx context.Context, cutoff time.Time) (int, error) { return 0, nil }

func (s *memStore) due(now time.Time) []bot.Action {
	var out []bot.Action
	for _, a := range s.st.actions {
		if a.Status == bot.ActionPending && !a.DueAt.After(now) {
			out = append(out, a)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].DueAt.Equal(out[j].DueAt) {
			return out[i].DueAt.Before(out[j].DueAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (s *memStore) DueActions(ctx context.Context, now time.Time, limit int) ([]bot.Action, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.due(now)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *memStore) NextDue(ctx context.Context) (time.Time, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next time.Time
	ok := false
	for _, a := range s.st.actions {
		if a.Status == bot.ActionPending && (!ok || a.DueAt.Before(next)) {
			next, ok = a.DueAt, true
		}
	}
	return next, ok, nil
}

func (s *memStore) mark(id uint64, f func(a *bot.Action)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.st.actions {
		if s.st.actions[i].ID == id {
			f(&s.st.actions[i])
			return nil
		}
	}
	return bot.ErrNotFound
}

func (s *memStore) MarkSent(ctx context.Context, id uint64, at time.Time, detail string) error {
	return s.mark(id, func(a *bot.Action) { a.Status, a.SentAt = bot.ActionSent, at })
}

func (s *memStore) MarkRetry(ctx context.Context, id uint64, next time.Time, msg string) error {
	return s.mark(id, func(a *bot.Action) { a.DueAt, a.Attempts, a.LastError = next, a.Attempts+1, msg })
}

func (s *memStore) MarkFailed(ctx context.Context, id uint64, at time.Time, msg string) error {
	return s.mark(id, func(a *bot.Action) { a.Status, a.LastError = bot.ActionFailed, msg })
}

func (s *memStore) Action(ctx context.Context, id uint64) (*bot.Action, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.st.actions {
		if a.ID == id {
			return &a, nil
		}
	}
	return nil, bot.ErrNotFound
}

func (s *memStore) Actions(ctx context.Context, after uint64, limit int) ([]bot.Action, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bot.Action
	for _, a := range s.st.actions {
		if a.ID > after && len(out) < limit {
			out = append(out, a)
		}
	}
	return out, nil
}

func (s *memStore) OutboxStats(ctx context.Context) (bot.OutboxStats, error) {
	return bot.OutboxStats{}, nil
}

type memTx struct{ st *memState }

func (t *memTx) MarkProcessed(seq uint64, errMsg string) (bool, error) {
	if _, done := t.st.processed[seq]; done {
		return false, nil
	}
	t.st.processed[seq] = errMsg
	return true, nil
}

func (t *memTx) Member(id string) (*bot.Member, error) {
	raw, ok := t.st.members[id]
	if !ok {
		return nil, bot.ErrNotFound
	}
	var m bot.Member
	return &m, json.Unmarshal(raw, &m)
}

func (t *memTx) PutMember(m *bot.Member) error {
	raw, err := json.Marshal(m)
	t.st.members[m.ExternalUserID] = raw
	return err
}

func (t *memTx) Members(after string, fn func(*bot.Member) bool) error {
	ids := make([]string, 0, len(t.st.members))
	for id := range t.st.members {
		if id > after {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		m, _ := t.Member(id)
		if !fn(m) {
			break
		}
	}
	return nil
}

func (t *memTx) MemberCount() (int, error) { return len(t.st.members), nil }

func (t *memTx) Enqueue(a *bot.Action) (bool, error) {
	if _, dup := t.st.actionKeys[a.Key]; dup {
		return true, nil
	}
	a.ID = uint64(len(t.st.actions) + 1)
	if a.Status == "" {
		a.Status = bot.ActionPending
	}
	t.st.actionKeys[a.Key] = a.ID
	t.st.actions = append(t.st.actions, *a)
	return false, nil
}

func (t *memTx) Get(bucket, key string) ([]byte, error) {
	v, ok := t.st.kv[bucket][key]
	if !ok {
		return nil, bot.ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

func (t *memTx) Put(bucket, key string, value []byte) error {
	if t.st.kv[bucket] == nil {
		t.st.kv[bucket] = map[string][]byte{}
	}
	t.st.kv[bucket][key] = append([]byte{}, value...)
	return nil
}

func (t *memTx) Delete(bucket, key string) error {
	delete(t.st.kv[bucket], key)
	return nil
}

func (t *memTx) Scan(bucket, prefix string, fn func(string, []byte) bool) error {
	keys := make([]string, 0)
	for k := range t.st.kv[bucket] {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !fn(k, t.st.kv[bucket][k]) {
			break
		}
	}
	return nil
}
