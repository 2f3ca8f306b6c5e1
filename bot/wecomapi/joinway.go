package wecomapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/silenceper/wechat/v2/work/externalcontact"

	"github.com/wecombot/wecombot/bot"
)

const (
	apiAddJoinWay = "externalcontact/groupchat/add_join_way"
	apiGetJoinWay = "externalcontact/groupchat/get_join_way"
)

// CreateJoinWay creates a 加入群聊 QR code (groupchat/add_join_way, scene 2)
// leading to up to 5 customer groups, and reads its qr_code (get_join_way).
// state (≤ 30 chars) comes back in groupchat/get for members who joined
// through it.
func (c *Client) CreateJoinWay(ctx context.Context, jw bot.GroupJoinWay) (configID, qrCode string, err error) {
	chats := uniqueNonEmpty(jw.ChatIDs)
	if len(chats) == 0 || len(chats) > 5 {
		return "", "", invalid("a group QR code leads to 1-5 customer groups, not %d", len(chats))
	}
	if utf8.RuneCountInString(jw.State) > 30 {
		return "", "", invalid("group QR code state %q is longer than 30 characters", jw.State)
	}
	req := &externalcontact.AddJoinWayRequest{Scene: 2, Remark: truncateRunes(jw.Remark, 30), ChatIDList: chats, State: jw.State}
	if jw.AutoCreate {
		req.AutoCreateRoom, req.RoomBaseName, req.RoomBaseID = 1, truncateRunes(jw.RoomBaseName, 40), jw.RoomBaseID
	}
	var added *externalcontact.AddJoinWayResponse
	if err := c.call(ctx, apiAddJoinWay, func() (err error) { added, err = c.contact.AddJoinWay(req); return err }); err != nil {
		return "", "", fmt.Errorf("create group QR code %q: %w", jw.State, err)
	}
	var got *externalcontact.GetJoinWayResponse
	err = c.call(ctx, apiGetJoinWay, func() (err error) {
		got, err = c.contact.GetJoinWay(&externalcontact.JoinWayConfigRequest{ConfigID: added.ConfigID})
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("read group QR code %q (config %s): %w", jw.State, added.ConfigID, err)
	}
	return added.ConfigID, got.JoinWay.QrCode, nil
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

func (c *Client) groupJoinWay(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.GroupJoinWay
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	configID, qr, err := c.CreateJoinWay(ctx, p)
	if err != nil {
		return bot.SendResult{}, err
	}
	return bot.SendResult{Detail: "group QR code " + configID,
		Data: map[string]string{"state": p.State, "config_id": configID, "qr_code": qr}}, nil
}

func (c *Client) groupDetail(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.GroupDetail
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	g, err := c.GroupChat(ctx, p.ChatID)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Code == CodeInvalidChatID {
		// Not a customer group this app may read (dismissed, another
		// corp's): nothing to learn, not a failed action — but answered
		// (the group's next read waits for this one).
		return bot.SendResult{Detail: "no group: " + apiErr.Msg, Data: map[string]string{"chat_id": p.ChatID}}, nil
	}
	if err != nil {
		return bot.SendResult{}, err
	}
	raw, err := json.Marshal(g.Members)
	if err != nil {
		return bot.SendResult{}, err
	}
	return bot.SendResult{Detail: fmt.Sprintf("group %s: owner %s, %d members", p.ChatID, g.Owner, len(g.Members)),
		Data: map[string]string{"chat_id": p.ChatID, "owner": g.Owner, "name": g.Name, bot.DataGroupMembers: string(raw)}}, nil
}
