package wecomapi

import (
	"context"
	"fmt"
	"strconv"

	"github.com/wecombot/wecombot/bot"
)

// kfEventMessage sends a greeting (or another event response) with
// kf/send_msg_on_event and the event's code.
func (c *Client) kfEventMessage(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.KfEventMessage
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	if p.Code == "" || p.Text == "" {
		return bot.SendResult{}, invalid("kf_event_message needs code and text")
	}
	if !a.NotAfter.IsZero() && c.now().After(a.NotAfter) {
		return bot.SendResult{}, invalid("the event code expired before sending (valid 20 s)")
	}
	body := map[string]any{"code": p.Code, "msgtype": "text", "text": map[string]string{"content": bot.Clip(p.Text, bot.MaxKfText)}}
	if p.MsgID != "" {
		body["msgid"] = p.MsgID
	}
	var out struct {
		errorAnswer
		MsgID string `json:"msgid"`
	}
	if err := c.doJSON(ctx, apiKfSendMsgOnEvent, nil, body, &out); err != nil {
		return bot.SendResult{}, err
	}
	return bot.SendResult{Detail: "msgid=" + out.MsgID}, nil
}

// kfTransfer moves a 微信客服 session (kf/service_state/trans): to a person
// (state 3, a 接待人员 who is receiving) or the queue (state 2).
func (c *Client) kfTransfer(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.KfTransfer
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	if p.OpenKfID == "" || p.ExternalUserID == "" || (p.State == 3 && p.Servicer == "") {
		return bot.SendResult{}, invalid("kf_transfer needs open_kfid, external_user_id and, to a person, servicer")
	}
	body := map[string]any{"open_kfid": p.OpenKfID, "external_userid": p.ExternalUserID, "service_state": p.State}
	if p.Servicer != "" {
		body["servicer_userid"] = p.Servicer
	}
	var out struct {
		errorAnswer
		MsgCode string `json:"msg_code"`
	}
	if err := c.doJSON(ctx, apiKfServiceStateTrans, nil, body, &out); err != nil {
		return bot.SendResult{}, err
	}
	return bot.SendResult{Detail: fmt.Sprintf("service_state=%d servicer=%s", p.State, p.Servicer),
		Data: map[string]string{"open_kfid": p.OpenKfID, "external_user_id": p.ExternalUserID,
			"state": strconv.Itoa(p.State), "servicer": p.Servicer}}, nil
}
