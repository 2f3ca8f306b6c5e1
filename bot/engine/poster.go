package engine

// 任务宝 posters (referral.poster): in 微信客服 the poster keywords send the
// member a personal picture — the scenario's background, her name and her
// referral code as the QR — followed by the poster's text. Invitees who
// scan it add staff through her code's state, so they are credited,
// held and rewarded exactly as referral.go does for the invite code.
//
// The picture is an image kf message whose attachment names the poster
// ("poster:<member>"); the media library renders and uploads it when the
// action is sent (bot/poster, bot/media): the engine does no I/O.

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/scenarios"
)

// Poster links and media.
const (
	// PosterPurpose is the signed link purpose of a member's poster page; its subject is her id.
	PosterPurpose = "poster"
	// PathPoster is the poster page's path; PathPosterPNG its picture (bot/server serves both).
	PathPoster    = "/poster"
	PathPosterPNG = "/poster.png"
	// PosterSourcePrefix starts a poster's media source ("poster:<member>").
	PosterSourcePrefix = "poster:"
	// posterLinkTTL is how long a poster page link lasts.
	posterLinkTTL = 30 * 24 * time.Hour
)

// PosterMedia is the image attachment of member's poster.
func PosterMedia(member, name, qrCode string) bot.Attachment {
	return bot.Attachment{Type: "image", Media: &bot.MediaRef{Source: PosterSourcePrefix + member, Name: "poster.png", Kind: "image",
		Poster: &bot.PosterRef{Member: member, Name: name, QRCode: qrCode}}}
}

// posterCommand answers the poster keywords in 微信客服.
func (r *run) posterCommand(ms *memberState, surface, text string) (bool, error) {
	ref := r.sc.Referral
	if ref == nil || ref.Poster == nil || ms == nil || surface != scenarios.SurfaceKf || !ref.Poster.IsKeyword(text) {
		return false, nil
	}
	rec, qr, ask, err := r.inviteCode(ref, ms)
	if err != nil || (qr == "" && ask == nil) {
		return true, err
	}
	if qr == "" {
		rec.PosterOwed = true
		if err := r.putJSON(bucketReferralMembers, ms.m.ExternalUserID, rec); err != nil {
			return true, err
		}
		reply := r.render(ref.Pending, r.sc.DataFor(ms.m))
		if reply == "" {
			reply = "你的专属海报正在生成，马上发给你～"
		}
		if err := r.kfReply(ms, reply, r.ev.OpenKfID, false); err != nil {
			return true, err
		}
		return true, r.askInviteCode(ms.m, ask)
	}
	return true, r.sendPoster(ms, &rec, qr, r.ev.OpenKfID, r.ref)
}

// sendPoster enqueues her poster picture and its text in 微信客服 (keyed by
// ref) and counts it.
func (r *run) sendPoster(ms *memberState, rec *ReferrerRecord, qr, openKfID, ref string) error {
	m := ms.m
	data := r.sc.DataFor(m)
	data.PosterLink = r.posterLink(m.ExternalUserID)
	img := PosterMedia(m.ExternalUserID, data.Name, qr)
	key := "poster|" + ref
	pic := bot.KfMessage{OpenKfID: openKfID, ExternalUserID: m.ExternalUserID, Image: &img, MsgID: kfMsgID(key)}
	if err := r.enqueue(bot.ActionKfMessage, key, m.ExternalUserID, pic, time.Time{}, time.Time{}); err != nil {
		return err
	}
	text := r.render(r.sc.Referral.Poster.Text, data)
	if text != "" {
		key := "poster_text|" + ref
		msg := bot.KfMessage{OpenKfID: openKfID, ExternalUserID: m.ExternalUserID, Text: text, MsgID: kfMsgID(key)}
		if err := r.enqueue(bot.ActionKfMessage, key, m.ExternalUserID, msg, time.Time{}, time.Time{}); err != nil {
			return err
		}
	}
	rec.Posters++
	rec.PosterOwed = false
	if rec.PosterAt.IsZero() {
		rec.PosterAt = r.at
	}
	r.log.Info().Int("posters", rec.Posters).Msg("任务宝 poster sent")
	return r.putJSON(bucketReferralMembers, m.ExternalUserID, *rec)
}

// posterReady sends the poster she asked for once WeCom made her code: in
// 微信客服 while her conversation is recent, else a message with her poster
// page's link (mass send by her staff member).
func (r *run) posterReady(ms *memberState, rec *ReferrerRecord, qr string) error {
	var seen kfSeen
	found, err := r.getJSON(bucketKfSeen, ms.m.ExternalUserID, &seen)
	if err != nil {
		return err
	}
	if found && r.at.Sub(seen.At) < KfReplyWindow {
		return r.sendPoster(ms, rec, qr, seen.OpenKfID, "ready|"+rec.State)
	}
	link := r.posterLink(ms.m.ExternalUserID)
	if link == "" {
		r.log.Info().Msg("poster ready but her 微信客服 window is closed and links are not configured; she gets it when she asks again")
		return nil
	}
	rec.PosterOwed = false
	if err := r.putJSON(bucketReferralMembers, ms.m.ExternalUserID, *rec); err != nil {
		return err
	}
	data := r.sc.DataFor(ms.m)
	data.PosterLink = link
	text := r.render(r.sc.Referral.Poster.Text, data)
	if !strings.Contains(text, link) {
		text = joinText(text, "你的专属海报："+link)
	}
	return r.deliverCoupon(ms, "poster_ready|"+rec.State, text)
}

// posterLink is her signed poster page, or "" without links.
func (r *run) posterLink(member string) string {
	return r.link(PathPoster, PosterPurpose, member, posterLinkTTL)
}

// PosterFunnel is the 任务宝 campaign's funnel for the console.
type PosterFunnel struct {
	// Posters are the members who got a poster, PostersSent the posters sent.
	Posters     int `json:"posters"`
	PostersSent int `json:"posters_sent"`
	// Invitees are the new friends who added staff through a poster
	// maker's code; Held those still inside the hold, Counted those who
	// stayed, Void those who left within it.
	Invitees int `json:"invitees"`
	Held     int `json:"held"`
	Counted  int `json:"counted"`
	Void     int `json:"void"`
	// Rewards are the threshold rewards given to poster makers.
	Rewards int `json:"rewards"`
}

// BuildPosterFunnel counts the funnel over the poster makers (members who
// got at least one poster); one scan of the referrer records.
func BuildPosterFunnel(tx bot.Tx) (PosterFunnel, error) {
	var f PosterFunnel
	var bad error
	err := tx.Scan(bucketReferralMembers, "", func(k string, v []byte) bool {
		var rec ReferrerRecord
		if bad = json.Unmarshal(v, &rec); bad != nil {
			bad = fmt.Errorf("referrer %s: %w", k, bad)
			return false
		}
		if rec.Posters == 0 {
			return true
		}
		f.Posters++
		f.PostersSent += rec.Posters
		f.Held += rec.Pending
		f.Counted += rec.Counted
		f.Void += rec.Void
		f.Invitees += rec.Pending + rec.Counted + rec.Void
		f.Rewards += len(rec.Rewarded)
		return true
	})
	return f, errors.Join(err, bad)
}
