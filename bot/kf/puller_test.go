package kf

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/wecomapi"
	"github.com/wecombot/wecombot/storage/bolt"
)

// fakeSyncer answers sync_msg from pages keyed by cursor and records calls.
type fakeSyncer struct {
	mu       sync.Mutex
	pages    map[string]page
	badToken string
	calls    []string // "token|cursor"
}

type page struct {
	msgs []wecomapi.KfMsg
	next string
	more bool
}

func (f *fakeSyncer) KfSyncMsg(_ context.Context, token, openKfID, cursor string) ([]wecomapi.KfMsg, string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, token+"|"+cursor)
	if token != "" && token == f.badToken {
		return nil, "", false, errors.New("95007 invalid msg token")
	}
	p, ok := f.pages[cursor]
	if !ok {
		return nil, cursor, false, nil
	}
	return p.msgs, p.next, p.more, nil
}

func msg(id, member, text string) wecomapi.KfMsg {
	return wecomapi.KfMsg{MsgID: id, OpenKfID: "wk1", ExternalUserID: member, Text: text, SendTime: time.Unix(1700000000, 0)}
}

func newStore(t *testing.T) *bolt.Store {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "kf.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func kfEvents(t *testing.T, st bot.Store) []bot.Event {
	evs, err := st.Events(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestPullPagesAppendsOnceAndKeepsTheCursor(t *testing.T) {
	st := newStore(t)
	api := &fakeSyncer{pages: map[string]page{
		"":   {msgs: []wecomapi.KfMsg{msg("m1", "wm_a", "你好")}, next: "c1", more: true},
		"c1": {msgs: []wecomapi.KfMsg{msg("m2", "wm_b", "几点开门"), msg("m1", "wm_a", "你好")}, next: "c2"},
	}}
	woke := 0
	p := NewPuller(st, api, func() { woke++ }, zerolog.Nop(), nil)
	n, err := p.Pull(context.Background(), "wk1", "tok")
	if err != nil || n != 2 {
		t.Fatalf("Pull = %d, %v", n, err)
	}
	evs := kfEvents(t, st)
	if len(evs) != 2 || evs[0].DedupeKey != "kfmsg:m1" || evs[1].Type != bot.EventKfText || evs[1].ExternalUserID != "wm_b" || evs[1].OpenKfID != "wk1" {
		t.Fatalf("events %+v", evs)
	}
	if woke != 1 {
		t.Fatalf("wake = %d", woke)
	}
	// The next pull (a new process: a fresh puller) starts at the stored cursor.
	api.pages["c2"] = page{msgs: []wecomapi.KfMsg{msg("m3", "wm_a", "谢谢")}, next: "c3"}
	p2 := NewPuller(st, api, nil, zerolog.Nop(), nil)
	if n, err := p2.Pull(context.Background(), "wk1", ""); err != nil || n != 1 {
		t.Fatalf("second pull = %d, %v", n, err)
	}
	if last := api.calls[len(api.calls)-1]; last != "|c2" {
		t.Fatalf("second pull used %q", last)
	}
}

func TestExpiredTokenFallsBackToNoToken(t *testing.T) {
	st := newStore(t)
	api := &fakeSyncer{badToken: "old", pages: map[string]page{"": {msgs: []wecomapi.KfMsg{msg("m1", "wm_a", "hi")}, next: "c1"}}}
	p := NewPuller(st, api, nil, zerolog.Nop(), nil)
	if n, err := p.Pull(context.Background(), "wk1", "old"); err != nil || n != 1 {
		t.Fatalf("Pull = %d, %v", n, err)
	}
	if len(api.calls) != 2 || api.calls[1] != "|" {
		t.Fatalf("calls %v", api.calls)
	}
}

func TestSendDecodesTheAction(t *testing.T) {
	st := newStore(t)
	api := &fakeSyncer{pages: map[string]page{}}
	p := NewPuller(st, api, nil, zerolog.Nop(), nil)
	a, _ := bot.NewAction(bot.ActionKfSync, "k", bot.KfSync{})
	if _, retry, err := p.Send(context.Background(), a); err == nil || retry {
		t.Fatalf("no open_kfid: retry=%v err=%v", retry, err)
	}
	a, _ = bot.NewAction(bot.ActionKfSync, "k", bot.KfSync{OpenKfID: "wk1", Token: "t"})
	res, retry, err := p.Send(context.Background(), a)
	if err != nil || retry || res.Detail != "0 new messages" {
		t.Fatalf("%+v %v %v", res, retry, err)
	}
}

func TestLongBacklogContinuesInANewPull(t *testing.T) {
	old := maxPages
	maxPages = 2
	defer func() { maxPages = old }()
	st := newStore(t)
	api := &fakeSyncer{pages: map[string]page{
		"":   {msgs: []wecomapi.KfMsg{msg("m1", "wm_a", "1")}, next: "c1", more: true},
		"c1": {msgs: []wecomapi.KfMsg{msg("m2", "wm_a", "2")}, next: "c2", more: true},
		"c2": {msgs: []wecomapi.KfMsg{msg("m3", "wm_a", "3")}, next: "c3"},
	}}
	woke := 0
	p := NewPuller(st, api, nil, zerolog.Nop(), nil)
	p.WakeOutbox = func() { woke++ }
	if n, err := p.Pull(context.Background(), "wk1", ""); err != nil || n != 2 {
		t.Fatalf("first pull = %d, %v", n, err)
	}
	acts, _ := st.Actions(context.Background(), 0, 10)
	if len(acts) != 1 || acts[0].Kind != bot.ActionKfSync || acts[0].Key != "kfsync|more|wk1|c2" || woke != 1 {
		t.Fatalf("continuation %+v (woke %d)", acts, woke)
	}
	if _, _, err := p.Send(context.Background(), &acts[0]); err != nil {
		t.Fatal(err)
	}
	if evs := kfEvents(t, st); len(evs) != 3 {
		t.Fatalf("events after the continuation = %d", len(evs))
	}
}
