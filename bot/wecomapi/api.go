package wecomapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/silenceper/wechat/v2/work/externalcontact"
	"github.com/silenceper/wechat/v2/work/kf"

	"github.com/wecombot/wecombot/bot"
)

// KfMsg is a text message a WeChat user sent to a 微信客服 account, or
// (Event set) a system event about the session.
type KfMsg struct {
	MsgID          string
	OpenKfID       string
	ExternalUserID string
	Text           string
	SendTime       time.Time
	// Event is set for origin-4 system events (enter_session, msg_send_fail,
	// session_status_change).
	Event *KfEvent
}

// KfEvent is a 微信客服 system event as kf/sync_msg returns it.
type KfEvent struct {
	Type string `json:"event_type"`
	// enter_session: the link's scene and scene_param, and a welcome_code
	// (usable once, 20 s) when WeCom lets the bot greet.
	Scene       string `json:"scene"`
	SceneParam  string `json:"scene_param"`
	WelcomeCode string `json:"welcome_code"`
	// msg_send_fail: which message failed and why (fail_type 4: past 48 h,
	// 5: session closed, 6: over 5 messages, 10: refused by the user …).
	FailMsgID string `json:"fail_msgid"`
	FailType  int    `json:"fail_type"`
	// session_status_change: 1 taken from the queue, 2 transferred, 3
	// ended, 4 reopened; the servicers; a msg_code for send_msg_on_event.
	ChangeType        int    `json:"change_type"`
	OldServicerUserID string `json:"old_servicer_userid"`
	NewServicerUserID string `json:"new_servicer_userid"`
	MsgCode           string `json:"msg_code"`
	OpenKfID          string `json:"open_kfid"`
	ExternalUserID    string `json:"external_userid"`
}

// kfOriginEvent marks 微信客服 system events.
const kfOriginEvent = 4

// kfOriginCustomer marks messages the WeChat user sent (4 is system events,
// 5 messages sent by staff or by us).
const kfOriginCustomer = 3

// KfSyncMsg pulls 微信客服 messages after cursor (kf/sync_msg), using the
// token from the kf_msg_or_event callback. It returns the customers' text
// messages and the system events (origin 4) — servicers' messages and other
// types are skipped, but nextCursor moves past them. Keep nextCursor durably
// and call again while hasMore.
func (c *Client) KfSyncMsg(ctx context.Context, token, openKfID, cursor string) (msgs []KfMsg, nextCursor string, hasMore bool, err error) {
	var res kf.SyncMsgSchema
	err = c.call(ctx, apiKfSyncMsg, func() (err error) {
		res, err = c.kf.SyncMsg(kf.SyncMsgOptions{Cursor: cursor, Token: token, Limit: 1000, OpenKfID: openKfID})
		return err
	})
	if err != nil {
		return nil, "", false, err
	}
	for _, m := range res.MsgList {
		if m.MsgType == "event" && m.Origin == kfOriginEvent {
			var raw struct {
				Event KfEvent `json:"event"`
			}
			if err := json.Unmarshal(m.OriginData, &raw); err != nil || raw.Event.Type == "" {
				c.log.Warn().Str("msgid", m.MsgID).Msg("kf/sync_msg: unreadable event skipped")
				continue
			}
			ev := raw.Event
			msgs = append(msgs, KfMsg{MsgID: m.MsgID, OpenKfID: ev.OpenKfID, ExternalUserID: ev.ExternalUserID,
				SendTime: time.Unix(int64(m.SendTime), 0), Event: &ev})
			continue
		}
		if m.MsgType != "text" || m.Origin != kfOriginCustomer {
			continue
		}
		text, terr := m.GetTextMessage()
		if terr != nil {
			c.log.Warn().Str("msgid", m.MsgID).Err(terr).Msg("kf/sync_msg: unreadable text message skipped")
			continue
		}
		msgs = append(msgs, KfMsg{
			MsgID:          m.MsgID,
			OpenKfID:       m.OpenKFID,
			ExternalUserID: m.ExternalUserID,
			Text:           text.Text.Content,
			SendTime:       time.Unix(int64(m.SendTime), 0),
		})
	}
	return msgs, res.NextCursor, res.HasMore == 1, nil
}

// CreateContactWay creates a 联系我 QR code (add_contact_way, scene 2) for
// one staff member (type 1) or several (type 2). state (≤ 30 chars) comes
// back in the add_external_contact event: use it for channel attribution.
func (c *Client) CreateContactWay(ctx context.Context, state string, staff []string) (configID, qrCode string, err error) {
	return c.createContactWay(ctx, bot.ContactWay{State: state, Staff: staff})
}

func (c *Client) createContactWay(ctx context.Context, cw bot.ContactWay) (configID, qrCode string, err error) {
	state, staff := cw.State, cw.Staff
	staff = uniqueNonEmpty(staff)
	if len(staff) == 0 {
		return "", "", invalid("contact way needs at least one staff member")
	}
	if utf8.RuneCountInString(state) > 30 {
		return "", "", invalid("contact way state %q is longer than 30 characters", state)
	}
	typ := 1
	if len(staff) > 1 {
		typ = 2
	}
	// The library sends every field; skip_verify must be set to keep WeCom's
	// default (customers are added without the staff approving).
	req := &externalcontact.AddContactWayRequest{Type: typ, Scene: 2, State: state, User: staff, SkipVerify: !cw.Verify, Remark: cw.Remark}
	var resp *externalcontact.AddContactWayResponse
	err = c.call(ctx, apiAddContactWay, func() (err error) {
		resp, err = c.contact.AddContactWay(req)
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("create contact way %q: %w", state, err)
	}
	return resp.ConfigID, resp.QrCode, nil
}

// contactProfile reads a customer's profile (externalcontact/get) and hands
// it back to the engine as the action's result.
func (c *Client) contactProfile(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.ContactProfile
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	if p.ExternalUserID == "" {
		return bot.SendResult{}, invalid("contact_profile without external_user_id")
	}
	var resp *externalcontact.ExternalUserDetailResponse
	err := c.call(ctx, apiGetExternalContact, func() (err error) {
		resp, err = c.contact.GetExternalUserDetail(url.QueryEscape(p.ExternalUserID))
		return err
	})
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Code == CodeInvalidExternalUser {
		// Not (or no longer) this corp's customer: nothing to learn; a read
		// that can't succeed is not a failed delivery.
		return bot.SendResult{Detail: "no profile: " + apiErr.Hint()}, nil
	}
	if err != nil {
		return bot.SendResult{}, err
	}
	prof := bot.ContactProfileData{ExternalUserID: p.ExternalUserID, Name: resp.ExternalContact.Name,
		Gender: int(resp.ExternalContact.Gender), UnionID: resp.ExternalContact.UnionID}
	for _, f := range resp.FollowUser {
		pf := bot.ContactProfileFollow{StaffID: f.UserID, State: f.State, Remark: f.Remark}
		for _, t := range f.Tags {
			if t.Type == 1 { // corp tags; personal tags are the staff member's own
				pf.Tags = append(pf.Tags, t.TagName)
			}
		}
		prof.Follows = append(prof.Follows, pf)
	}
	raw, err := json.Marshal(prof)
	if err != nil {
		return bot.SendResult{}, err
	}
	return bot.SendResult{Detail: fmt.Sprintf("profile of %s (%d staff)", p.ExternalUserID, len(prof.Follows)),
		Data: map[string]string{"external_user_id": p.ExternalUserID, "profile": string(raw)}}, nil
}

// GetExternalContact returns a customer's WeChat name (externalcontact/get).
func (c *Client) GetExternalContact(ctx context.Context, externalUserID string) (name string, err error) {
	if externalUserID == "" {
		return "", invalid("empty external_userid")
	}
	var resp *externalcontact.ExternalUserDetailResponse
	err = c.call(ctx, apiGetExternalContact, func() (err error) {
		// The library puts the id into the URL unescaped.
		resp, err = c.contact.GetExternalUserDetail(url.QueryEscape(externalUserID))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("get external contact %s: %w", externalUserID, err)
	}
	return resp.ExternalContact.Name, nil
}
