// Package kf pulls 微信客服 messages. The callback only says "there is
// something to pull" (kf_msg_or_event, bot.EventKfNotify); the engine owes
// a kf_sync action for it, and the Puller — an outbox sender with store
// access — runs kf/sync_msg from the cursor it keeps in the store and
// appends one kf.text event per customer message (dedupe key
// "kfmsg:<msgid>"), which the engine answers like any other message.
//
// A crash between appending and saving the cursor re-pulls the same page;
// the dedupe keys keep the log from doubling. The cursor lives in the
// store's kv space (bucket kf_cursor, key open_kfid), so restarts resume.
package kf

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/wecomapi"
)

// BucketCursor holds each 微信客服 account's sync_msg cursor.
const BucketCursor = bot.BucketKfCursor

// maxPages bounds one pull, so one busy account can't hold a sender
// forever; the rest is owed as a new kf_sync action from the saved cursor.
var maxPages = 20

// Syncer is the part of the WeCom client the puller needs.
type Syncer interface {
	KfSyncMsg(ctx context.Context, token, openKfID, cursor string) (msgs []wecomapi.KfMsg, nextCursor string, hasMore bool, err error)
}

// Puller delivers kf_sync actions.
type Puller struct {
	store bot.Store
	api   Syncer
	wake  func()
	log   zerolog.Logger
	now   func() time.Time

	mu    sync.Mutex
	locks map[string]*sync.Mutex

	// WakeOutbox, when set, is called after a continuation pull was enqueued
	// (pipeline.NotifyOutbox).
	WakeOutbox func()
}

// NewPuller returns a puller; wake is called after new events were appended
// (pipeline.NotifyEvent).
func NewPuller(store bot.Store, api Syncer, wake func(), log zerolog.Logger, now func() time.Time) *Puller {
	if now == nil {
		now = time.Now
	}
	if wake == nil {
		wake = func() {}
	}
	return &Puller{store: store, api: api, wake: wake, now: now, locks: map[string]*sync.Mutex{},
		log: log.With().Str("component", "kf").Logger()}
}

// lock serializes pulls of one account: two at once would race on the cursor.
func (p *Puller) lock(openKfID string) func() {
	p.mu.Lock()
	l, ok := p.locks[openKfID]
	if !ok {
		l = &sync.Mutex{}
		p.locks[openKfID] = l
	}
	p.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Send pulls the account's new messages (bot.Sender for kf_sync).
func (p *Puller) Send(ctx context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	if a.Kind != bot.ActionKfSync {
		return bot.SendResult{}, false, fmt.Errorf("kf puller: unexpected action kind %q", a.Kind)
	}
	var s bot.KfSync
	if err := a.Decode(&s); err != nil {
		return bot.SendResult{}, false, err
	}
	if s.OpenKfID == "" {
		return bot.SendResult{}, false, errors.New("kf_sync without open_kfid")
	}
	n, err := p.Pull(ctx, s.OpenKfID, s.Token)
	if err != nil {
		return bot.SendResult{}, wecomapi.Classify(err), err
	}
	return bot.SendResult{Detail: fmt.Sprintf("%d new messages", n)}, false, nil
}

// Pull runs sync_msg from the stored cursor until WeCom has no more (or
// maxPages), appending each customer text as a kf.text event. It returns
// how many events were new.
func (p *Puller) Pull(ctx context.Context, openKfID, token string) (int, error) {
	defer p.lock(openKfID)()
	if l, ok := p.store.(bot.Locker); ok {
		// Several nodes share the store: one pull per account across all of them.
		release, err := l.Lock(ctx, "kf_cursor:"+openKfID)
		if err != nil {
			return 0, fmt.Errorf("lock the %s cursor: %w", openKfID, err)
		}
		defer release()
	}
	cursor, err := p.cursor(ctx, openKfID)
	if err != nil {
		return 0, err
	}
	added := 0
	defer func() {
		if added > 0 {
			p.wake()
		}
	}()
	for page := 0; ; page++ {
		if page == maxPages {
			return added, p.continueLater(ctx, openKfID, cursor)
		}
		msgs, next, more, err := p.api.KfSyncMsg(ctx, token, openKfID, cursor)
		if err != nil && token != "" {
			// The callback's token lives 10 minutes; a retry after that pulls
			// without it (allowed, under a stricter rate limit).
			p.log.Debug().Err(err).Msg("kf/sync_msg with the callback token failed; trying without it")
			token = ""
			msgs, next, more, err = p.api.KfSyncMsg(ctx, token, openKfID, cursor)
		}
		if err != nil {
			return added, fmt.Errorf("kf/sync_msg %s: %w", openKfID, err)
		}
		now := p.now()
		for _, m := range msgs {
			if m.MsgID == "" || m.ExternalUserID == "" || (m.Event != nil && kfEventIgnored(m.Event)) {
				continue
			}
			at := m.SendTime
			if at.IsZero() || at.Unix() <= 0 {
				at = now
			}
			ev := &bot.Event{Type: bot.EventKfText, Source: bot.SourceKf, DedupeKey: "kfmsg:" + m.MsgID,
				At: at, ReceivedAt: now, ExternalUserID: m.ExternalUserID, OpenKfID: m.OpenKfID,
				Content: m.Text, MsgID: m.MsgID}
			if m.Event != nil {
				ev.Type, ev.Data = kfEventType(m.Event)
				ev.Content = ""
			}
			if ev.OpenKfID == "" {
				ev.OpenKfID = openKfID
			}
			dup, err := p.store.AppendEvent(ctx, ev)
			if err != nil {
				return added, fmt.Errorf("append kf message %s: %w", m.MsgID, err)
			}
			if !dup {
				added++
			}
		}
		if next != "" && next != cursor {
			if err := p.store.Update(ctx, func(tx bot.Tx) error { return tx.Put(BucketCursor, openKfID, []byte(next)) }); err != nil {
				return added, fmt.Errorf("save kf cursor: %w", err)
			}
			cursor = next
		}
		if !more {
			break
		}
	}
	p.log.Debug().Str("open_kfid", openKfID).Int("new", added).Msg("kf/sync_msg pulled")
	return added, nil
}

// kfEventType maps a 微信客服 system event to the engine's event type and data.
func kfEventType(e *wecomapi.KfEvent) (bot.EventType, map[string]string) {
	switch e.Type {
	case "enter_session":
		return bot.EventKfEnter, map[string]string{"scene": e.Scene, "scene_param": e.SceneParam, "welcome_code": e.WelcomeCode}
	case "msg_send_fail":
		return bot.EventKfSendFail, map[string]string{"fail_msgid": e.FailMsgID, "fail_type": strconv.Itoa(e.FailType)}
	}
	return bot.EventKfSession, map[string]string{"change_type": strconv.Itoa(e.ChangeType),
		"new_servicer": e.NewServicerUserID, "old_servicer": e.OldServicerUserID}
}

// kfEventIgnored: events the engine has no use for (servicer status changes).
func kfEventIgnored(e *wecomapi.KfEvent) bool {
	switch e.Type {
	case "enter_session", "msg_send_fail", "session_status_change":
		return false
	}
	return true
}

// continueLater owes another pull from cursor (one per cursor, so a
// retried pull doesn't owe two).
func (p *Puller) continueLater(ctx context.Context, openKfID, cursor string) error {
	now := p.now()
	a, err := bot.NewAction(bot.ActionKfSync, "kfsync|more|"+openKfID+"|"+cursor, bot.KfSync{OpenKfID: openKfID})
	if err != nil {
		return err
	}
	a.CreatedAt, a.DueAt = now, now
	if err := p.store.Update(ctx, func(tx bot.Tx) error { _, err := tx.Enqueue(a); return err }); err != nil {
		return fmt.Errorf("owe the rest of the kf pull: %w", err)
	}
	p.log.Info().Str("open_kfid", openKfID).Int("pages", maxPages).Msg("kf/sync_msg has more; continuing in a new pull")
	if p.WakeOutbox != nil {
		p.WakeOutbox()
	}
	return nil
}

func (p *Puller) cursor(ctx context.Context, openKfID string) (string, error) {
	var c string
	err := p.store.View(ctx, func(tx bot.Tx) error {
		raw, err := tx.Get(BucketCursor, openKfID)
		if errors.Is(err, bot.ErrNotFound) {
			return nil
		}
		c = string(raw)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read kf cursor: %w", err)
	}
	return c, nil
}
