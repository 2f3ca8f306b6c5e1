package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot/wecom"
)

// callbackEvent describes one test callback to build as WeCom would send it.
type callbackEvent struct {
	Type         string // contact.add, contact.del_follow, contact.transfer_fail, group.join, group.leave, app.text, kf
	CorpID       string
	Staff        string
	ExternalUser string
	State        string
	WelcomeCode  string
	ChatID       string
	Text         string
	MsgID        string
	OpenKfID     string
	At           time.Time
}

// cdata writes a value the way WeCom does, inside CDATA.
func cdata(b *strings.Builder, name, v string) {
	var esc bytes.Buffer
	_ = xml.EscapeText(&esc, []byte(v)) // CDATA cannot hold "]]>"; escaped text parses the same
	fmt.Fprintf(b, "<%s>%s</%s>", name, esc.String(), name)
}

// xml renders the event's plaintext callback XML.
func (e callbackEvent) xml() ([]byte, error) {
	var b strings.Builder
	b.WriteString("<xml>")
	cdata(&b, "ToUserName", e.CorpID)
	fmt.Fprintf(&b, "<CreateTime>%d</CreateTime>", e.At.Unix())
	switch e.Type {
	case "contact.add", "contact.del_follow":
		change := map[string]string{"contact.add": "add_external_contact", "contact.del_follow": "del_follow_user"}[e.Type]
		cdata(&b, "FromUserName", "sys")
		cdata(&b, "MsgType", "event")
		cdata(&b, "Event", "change_external_contact")
		cdata(&b, "ChangeType", change)
		cdata(&b, "UserID", e.Staff)
		cdata(&b, "ExternalUserID", e.ExternalUser)
		if e.Type == "contact.add" {
			if e.State != "" {
				cdata(&b, "State", e.State)
			}
			cdata(&b, "WelcomeCode", e.WelcomeCode)
		}
	case "contact.transfer_fail":
		cdata(&b, "FromUserName", "sys")
		cdata(&b, "MsgType", "event")
		cdata(&b, "Event", "change_external_contact")
		cdata(&b, "ChangeType", "transfer_fail")
		cdata(&b, "FailReason", e.Text)
		cdata(&b, "UserID", e.Staff)
		cdata(&b, "ExternalUserID", e.ExternalUser)
	case "group.join", "group.leave":
		detail := map[string]string{"group.join": "add_member", "group.leave": "del_member"}[e.Type]
		cdata(&b, "FromUserName", "sys")
		cdata(&b, "MsgType", "event")
		cdata(&b, "Event", "change_external_chat")
		cdata(&b, "ChatId", e.ChatID)
		cdata(&b, "ChangeType", "update")
		cdata(&b, "UpdateDetail", detail)
		if detail == "add_member" {
			b.WriteString("<JoinScene>3</JoinScene>")
		} else {
			b.WriteString("<QuitScene>0</QuitScene>")
		}
		b.WriteString("<MemChangeCnt>1</MemChangeCnt><MemChangeList>")
		cdata(&b, "Item", e.ExternalUser)
		b.WriteString("</MemChangeList>")
		fmt.Fprintf(&b, "<LastMemVer>%d</LastMemVer><CurMemVer>%d</CurMemVer>", e.At.UnixNano(), e.At.UnixNano()+1)
	case "app.text":
		cdata(&b, "FromUserName", e.Staff)
		cdata(&b, "MsgType", "text")
		cdata(&b, "Content", e.Text)
		b.WriteString("<MsgId>" + e.MsgID + "</MsgId><AgentID>1000002</AgentID>")
	case "kf":
		cdata(&b, "MsgType", "event")
		cdata(&b, "Event", "kf_msg_or_event")
		cdata(&b, "Token", "kf-token-"+e.MsgID)
		cdata(&b, "OpenKfId", e.OpenKfID)
	default:
		return nil, fmt.Errorf("unknown callback type %q (use contact.add, contact.del_follow, contact.transfer_fail, group.join, group.leave, app.text or kf)", e.Type)
	}
	b.WriteString("</xml>")
	return []byte(b.String()), nil
}

// sealedCallback encrypts and signs plaintext as WeCom does, returning the
// request path+query and body for POST /wecom/callback.
func sealedCallback(c *wecom.Crypter, plaintext []byte, at time.Time) (string, []byte, error) {
	ts := strconv.FormatInt(at.Unix(), 10)
	nonce := randomHex(8)
	body, sig, err := c.SealXML(plaintext, ts, nonce)
	if err != nil {
		return "", nil, err
	}
	q := url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {nonce}}
	return "/wecom/callback?" + q.Encode(), body, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// callback sends one signed test callback to a running bot.
func callback(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cl := newCommandLine("callback", "Usage: wecombot callback TYPE [flags]\n\nSends a signed, encrypted callback to a running bot, as WeCom would.\nTYPE: contact.add, contact.del_follow, group.join, group.leave, app.text, kf\nKeys: WECOM_TOKEN/WECOM_AES_KEY/WECOM_CORP_ID, or the sandbox's generated keys in the data directory.", 1, 1)
	cl.argsHint = "TYPE (contact.add, contact.del_follow, group.join, group.leave, app.text or kf)"
	fs := cl.fs
	ev := callbackEvent{At: time.Now()}
	target := fs.String("url", "", "bot base URL (default http://127.0.0.1 on WECOMBOT_LISTEN's port)")
	fs.StringVar(&ev.ExternalUser, "external-user", "wm_demo_member", "customer external_userid")
	fs.StringVar(&ev.Staff, "staff", "zhangsan", "staff UserID")
	fs.StringVar(&ev.State, "state", "", "channel state of the contact-me code (contact.add)")
	fs.StringVar(&ev.WelcomeCode, "welcome-code", "", "welcome code (contact.add; default random)")
	fs.StringVar(&ev.ChatID, "chat", "wr_demo_group", "customer group chat id (group.join, group.leave)")
	fs.StringVar(&ev.Text, "text", "你好", "message text (app.text; kf in sandbox mode)")
	fs.StringVar(&ev.OpenKfID, "kf", "wk_demo", "open_kfid (kf)")
	times := fs.Int("times", 1, "send the same signed request this many times (WeCom retries)")
	atFlag := fs.String("at", "", "when the event happened: `HH:MM` in the brand's zone (the latest such time: today, or yesterday if it is still ahead) or RFC 3339; default now. Try 打卡 at any hour with --at 07:30")
	pos, done, err := cl.parse(args, stdout, stderr)
	if done {
		return err
	}
	ev.Type = pos[0]
	cfg, _, err := loadConfig(getenv, stderr)
	if err != nil {
		return err
	}
	keys, _, err := callbackCredentials(cfg)
	if err != nil {
		return err
	}
	crypter, err := wecom.NewCrypter(keys.Token, keys.AESKey, keys.CorpID)
	if err != nil {
		return err
	}
	if *atFlag != "" {
		sc, err := loadScenario(cfg.Scenarios)
		if err != nil {
			return err
		}
		if ev.At, err = eventTime(*atFlag, time.Now(), sc.Brand.Zone); err != nil {
			return cl.usageError(stderr, err.Error())
		}
	}
	ev.CorpID = keys.CorpID
	if ev.WelcomeCode == "" {
		ev.WelcomeCode = "WC" + randomHex(8)
	}
	ev.MsgID = strconv.FormatInt(time.Now().UnixNano(), 10)
	plain, err := ev.xml()
	if err != nil {
		return &exitError{exitUsage, err}
	}
	base := *target
	if base == "" {
		if base, err = localURL(cfg.Listen); err != nil {
			return err
		}
	}
	// The signature's timestamp is now (the bot's replay window checks it);
	// the event's own time is CreateTime.
	path, body, err := sealedCallback(crypter, plain, time.Now())
	if err != nil {
		return err
	}
	for i := 0; i < *times; i++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("send callback: %w", err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		who := ev.ExternalUser
		switch ev.Type {
		case "app.text":
			who = "from staff " + ev.Staff
		case "kf":
			who = "for " + ev.OpenKfID
		}
		fmt.Fprintf(stdout, "%s %s → %s %s\n", ev.Type, who, resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode != http.StatusOK {
			return &exitError{exitFailure, errSilent}
		}
	}
	if ev.Type == "kf" && cfg.Sandbox() {
		// WeCom's kf callback only says "messages waiting"; the bot then pulls
		// them with kf/sync_msg. A sandbox has no WeCom to pull from, so the
		// message itself goes in through the sandbox API, as sync_msg would
		// have returned it.
		api := &adminClient{base: strings.TrimRight(base, "/"), token: cfg.AdminToken}
		var out map[string]any
		req := map[string]string{"action": "kf", "member": ev.ExternalUser, "text": ev.Text}
		if *atFlag != "" {
			req["at"] = ev.At.Format(time.RFC3339)
		}
		if _, err := api.do(ctx, http.MethodPost, "/api/v1/sandbox/events", req, &out); err != nil {
			return fmt.Errorf("sandbox kf message: %w", err)
		}
		when := ""
		if *atFlag != "" {
			when = " at " + ev.At.Format("2006-01-02 15:04 MST")
		}
		fmt.Fprintf(stdout, "kf text from %s %q%s → delivered as sync_msg would (sandbox)\n", ev.ExternalUser, ev.Text, when)
	}
	return nil
}

// eventTime reads callback's --at: "HH:MM" is the latest such wall-clock time
// in zone not after now (today's, or yesterday's when today's is still
// ahead); anything else must be RFC 3339.
func eventTime(s string, now time.Time, zone *time.Location) (time.Time, error) {
	if zone == nil {
		zone = time.Local
	}
	if clock, err := time.ParseInLocation("15:04", s, zone); err == nil {
		local := now.In(zone)
		at := time.Date(local.Year(), local.Month(), local.Day(), clock.Hour(), clock.Minute(), 0, 0, zone)
		if at.After(now) {
			at = at.AddDate(0, 0, -1)
		}
		return at, nil
	}
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--at %q: want HH:MM (e.g. 07:30) or a time like 2026-12-01T07:30:00+08:00", s)
	}
	return at, nil
}
