package wecomapi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/silenceper/wechat/v2/util"
	"github.com/silenceper/wechat/v2/work/externalcontact"
	"github.com/silenceper/wechat/v2/work/kf/sendmsg"
	"github.com/silenceper/wechat/v2/work/message"
	wrobot "github.com/silenceper/wechat/v2/work/robot"

	"github.com/wecombot/wecombot/bot"
)

// ErrWelcomeExpired is returned (final) for a welcome action whose code's
// window (Action.NotAfter) has passed: WeCom would answer 41051.
var ErrWelcomeExpired = errors.New("welcome code expired before sending (valid 20 s after the customer was added)")

// ErrInvalidAction is wrapped by final errors about an action that can never
// be sent as it is (bad payload, unknown robot, unsupported attachment).
var ErrInvalidAction = errors.New("invalid action")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidAction, fmt.Sprintf(format, args...))
}

// Send delivers one outbox action (bot.Sender). retry reports whether the
// outbox should try again later (see Classify); Send itself only retries
// once after refreshing a refused access_token.
func (c *Client) Send(ctx context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	res, err := c.send(ctx, a)
	if err != nil {
		err = fmt.Errorf("%s action %d: %w", a.Kind, a.ID, err)
		return bot.SendResult{}, Classify(err), err
	}
	return res, false, nil
}

func (c *Client) send(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	switch a.Kind {
	case bot.ActionWelcome:
		return c.sendWelcome(ctx, a)
	case bot.ActionMarkTag:
		return c.markTag(ctx, a)
	case bot.ActionMassSend:
		return c.massSend(ctx, a)
	case bot.ActionGroupWelcome:
		return c.groupWelcome(ctx, a)
	case bot.ActionStaffMessage:
		return c.staffMessage(ctx, a)
	case bot.ActionKfMessage:
		return c.kfMessage(ctx, a)
	case bot.ActionRobot:
		return c.robotMessage(ctx, a)
	case bot.ActionContactWay:
		return c.contactWay(ctx, a)
	case bot.ActionGroupJoinWay:
		return c.groupJoinWay(ctx, a)
	case bot.ActionGroupDetail:
		return c.groupDetail(ctx, a)
	case bot.ActionTransferCustomers:
		return c.transferCustomers(ctx, a)
	case bot.ActionTransferPoll:
		return c.transferResult(ctx, a)
	case bot.ActionTransferGroups:
		return c.transferGroups(ctx, a)
	case bot.ActionKfEventMessage:
		return c.kfEventMessage(ctx, a)
	case bot.ActionKfTransfer:
		return c.kfTransfer(ctx, a)
	case bot.ActionMassResult:
		return c.massResult(ctx, a)
	case bot.ActionContactProfile:
		return c.contactProfile(ctx, a)
	case bot.ActionTagRefresh:
		if err := c.RefreshTags(ctx); err != nil {
			return bot.SendResult{}, err
		}
		return bot.SendResult{Detail: "tag library reloaded"}, nil
	}
	return bot.SendResult{}, invalid("unknown action kind %q", a.Kind)
}

func decode(a *bot.Action, v any) error {
	if err := a.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidAction, err)
	}
	return nil
}

func (c *Client) sendWelcome(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.WelcomeMessage
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	if !a.NotAfter.IsZero() && c.now().After(a.NotAfter) {
		return bot.SendResult{}, ErrWelcomeExpired
	}
	if p.WelcomeCode == "" {
		return bot.SendResult{}, invalid("welcome message without welcome_code")
	}
	if len(p.Attachments) > 9 {
		return bot.SendResult{}, invalid("welcome message has %d attachments; WeCom allows 9", len(p.Attachments))
	}
	atts, err := toAttachments(p.Attachments)
	if err != nil {
		return bot.SendResult{}, err
	}
	if p.Text == "" && len(atts) == 0 {
		return bot.SendResult{}, invalid("welcome message has neither text nor attachments")
	}
	req := &externalcontact.SendWelcomeMsgRequest{WelcomeCode: p.WelcomeCode, Text: externalcontact.MsgText{Content: p.Text}, Attachments: atts}
	if err := c.call(ctx, apiSendWelcome, func() error { return c.contact.SendWelcomeMsg(req) }); err != nil {
		var apiErr *APIError
		if a.PossiblyDelivered && errors.As(err, &apiErr) && apiErr.Code == CodeWelcomeCodeUsed {
			// The code is usable once: after an attempt whose answer was
			// lost, WeCom refusing it as used means that attempt delivered.
			return bot.SendResult{Inferred: true,
				Detail: "delivered by an earlier attempt whose answer was lost (WeCom answered the repeat with 41051: code already used)"}, nil
		}
		return bot.SendResult{}, err
	}
	return bot.SendResult{Detail: fmt.Sprintf("welcome sent (%d attachments)", len(atts))}, nil
}

func (c *Client) markTag(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.MarkTag
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	if p.StaffID == "" || p.ExternalUserID == "" {
		return bot.SendResult{}, invalid("mark_tag needs staff_id and external_user_id")
	}
	for attempt := 1; ; attempt++ {
		add, err := c.resolveByGroup(ctx, &p, p.Add, true)
		if err != nil {
			return bot.SendResult{}, err
		}
		// Tags to remove that don't exist are not on the customer either.
		remove, err := c.resolveByGroup(ctx, &p, p.Remove, false)
		if err != nil {
			return bot.SendResult{}, err
		}
		if len(add) == 0 && len(remove) == 0 {
			return bot.SendResult{Detail: "no tags to change"}, nil
		}
		req := externalcontact.MarkTagRequest{UserID: p.StaffID, ExternalUserID: p.ExternalUserID, AddTag: add, RemoveTag: remove}
		err = c.call(ctx, apiMarkTag, func() error { return c.contact.MarkTag(req) })
		var apiErr *APIError
		if attempt == 1 && errors.As(err, &apiErr) && apiErr.Code == CodeInvalidTag {
			// A tag was deleted in the admin console since the cache was
			// filled: reload the library (recreating what is missing) and
			// try once more.
			c.log.Info().Str("external_userid", p.ExternalUserID).Msg("mark_tag: 40068 (a tag was deleted); reloading the tag library and retrying once")
			if rerr := c.tags.refresh(ctx); rerr != nil {
				return bot.SendResult{}, rerr
			}
			continue
		}
		if err != nil {
			return bot.SendResult{}, err
		}
		return bot.SendResult{Detail: fmt.Sprintf("tags +%d -%d", len(add), len(remove))}, nil
	}
}

// RefreshTags reloads the corp tag library (after a change_external_tag
// callback: tags were created, renamed or deleted in the admin console).
func (c *Client) RefreshTags(ctx context.Context) error { return c.tags.refresh(ctx) }

// resolveByGroup resolves tag names to ids, each in the group the payload
// names for it (TagGroups), else in p.Group.
func (c *Client) resolveByGroup(ctx context.Context, p *bot.MarkTag, names []string, create bool) ([]string, error) {
	byGroup := map[string][]string{}
	var order []string
	for _, n := range names {
		g := p.TagGroups[n]
		if g == "" {
			g = p.Group
		}
		if _, seen := byGroup[g]; !seen {
			order = append(order, g)
		}
		byGroup[g] = append(byGroup[g], n)
	}
	var ids []string
	for _, g := range order {
		got, err := c.tags.resolve(ctx, g, byGroup[g], create)
		if err != nil {
			return nil, err
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

func (c *Client) massSend(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.MassSend
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	if p.ChatType == "" {
		p.ChatType = "single"
	}
	if p.ChatType != "single" && p.ChatType != "group" {
		return bot.SendResult{}, invalid("mass_send chat_type %q: want single or group", p.ChatType)
	}
	atts, err := toAttachments(p.Attachments)
	if err != nil {
		return bot.SendResult{}, err
	}
	req := &externalcontact.AddMsgTemplateRequest{
		ChatType:       p.ChatType,
		ExternalUserID: p.ExternalUserIDs,
		Sender:         p.Sender,
		Text:           externalcontact.MsgText{Content: p.Text},
		Attachments:    atts,
		ChatIDList:     p.ChatIDs,
	}
	var resp *externalcontact.AddMsgTemplateResponse
	err = c.call(ctx, apiAddMsgTemplate, func() (err error) {
		resp, err = c.contact.AddMsgTemplate(req)
		return err
	})
	if err != nil {
		return bot.SendResult{}, err
	}
	detail := "msgid=" + resp.MsgID
	if len(resp.FailList) > 0 {
		detail += fmt.Sprintf(" fail_list=%d", len(resp.FailList))
	}
	res := bot.SendResult{Detail: detail}
	if p.Batch != "" {
		// A batch's task: its customers' results return to the engine. A
		// long fail_list is cut (get_groupmsg_send_result reports them too).
		fail := resp.FailList[:min(len(resp.FailList), maxFailListData)]
		res.Data = map[string]string{bot.DataBatch: p.Batch, bot.DataMsgID: resp.MsgID, bot.DataFailList: strings.Join(fail, ",")}
	}
	return res, nil
}

// taskCall makes a reminder or stop call for a task and records "1" under
// key, or WeCom's refusal (already sent; reminded 3 times in 24 h): the
// results are read either way.
func (c *Client) taskCall(ctx context.Context, api, msgID, key string, data map[string]string, fn func() error) {
	data[key] = "1"
	if err := c.call(ctx, api, fn); err != nil {
		data[key] = err.Error()
		c.log.Info().Err(err).Str("msgid", msgID).Str("api", api).Msg("refused; reading the task's results anyway")
	}
}

// maxFailListData bounds the fail_list carried in a result event (under bot.MaxDataValueBytes).
const maxFailListData = 1000

// massResult reads a task's results back: the staff member's task status
// (get_groupmsg_task) and one page of per-customer statuses
// (get_groupmsg_send_result), after reminding the staff member when asked.
func (c *Client) massResult(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.MassResult
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	if p.MsgID == "" || p.Sender == "" {
		return bot.SendResult{}, invalid("mass_result needs msgid and sender")
	}
	data := map[string]string{bot.DataBatch: p.Batch, bot.DataMsgID: p.MsgID, bot.DataRound: strconv.Itoa(p.Round)}
	if p.Remind && p.Cursor == "" {
		c.taskCall(ctx, apiRemindGroupMsgSend, p.MsgID, bot.DataReminded, data, func() error {
			return c.contact.RemindGroupMsgSend(&externalcontact.RemindGroupMsgSendRequest{MsgID: p.MsgID})
		})
	}
	var task *externalcontact.GetGroupMsgTaskResponse
	if err := c.call(ctx, apiGroupMsgTask, func() (err error) {
		task, err = c.contact.GetGroupMsgTask(&externalcontact.GetGroupMsgTaskRequest{MsgID: p.MsgID, Limit: 1000})
		return err
	}); err != nil {
		return bot.SendResult{}, err
	}
	data[bot.DataTaskStatus] = "0"
	for _, t := range task.TaskList {
		if t.UserID == p.Sender {
			data[bot.DataTaskStatus], data[bot.DataSendTime] = strconv.Itoa(t.Status), strconv.Itoa(t.SendTime)
		}
	}
	if p.Stop && p.Cursor == "" && data[bot.DataTaskStatus] != "2" {
		// The confirmation deadline passed: stop the task, so a late
		// confirmation can't send what the timeline calls not confirmed.
		c.taskCall(ctx, apiCancelGroupMsgSend, p.MsgID, bot.DataStopped, data, func() error {
			return c.contact.CancelGroupMsgSend(&externalcontact.CancelGroupMsgSendRequest{MsgID: p.MsgID})
		})
	}
	var page *externalcontact.GetGroupMsgSendResultResponse
	if err := c.call(ctx, apiGroupMsgSendResult, func() (err error) {
		page, err = c.contact.GetGroupMsgSendResult(&externalcontact.GetGroupMsgSendResultRequest{MsgID: p.MsgID, UserID: p.Sender, Limit: 1000, Cursor: p.Cursor})
		return err
	}); err != nil {
		return bot.SendResult{}, err
	}
	pairs := make([]string, 0, len(page.SendList))
	for _, s := range page.SendList {
		id := s.ExternalUserID
		if id == "" {
			id = s.ChatID
		}
		pairs = append(pairs, id+":"+strconv.Itoa(s.Status))
	}
	data[bot.DataSendResults], data[bot.DataNextCursor] = strings.Join(pairs, ","), page.NextCursor
	return bot.SendResult{Detail: fmt.Sprintf("task %s status %s, %d results", p.MsgID, data[bot.DataTaskStatus], len(pairs)), Data: data}, nil
}

func (c *Client) groupWelcome(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.GroupWelcome
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	if len(p.Attachments) > 1 {
		return bot.SendResult{}, invalid("group welcome %q has %d attachments; WeCom allows 1", p.Name, len(p.Attachments))
	}
	var one *externalcontact.Attachment
	if len(p.Attachments) == 1 {
		atts, err := toAttachments(p.Attachments)
		if err != nil {
			return bot.SendResult{}, err
		}
		one = atts[0]
	}
	text := externalcontact.MsgText{Content: bot.Clip(p.Text, bot.MaxGroupWelcomeText)}
	if p.TemplateID != "" {
		req := &externalcontact.EditGroupWelcomeTemplateRequest{TemplateID: p.TemplateID, Text: text}
		if one != nil {
			req.Image, req.Link, req.MiniProgram, req.File, req.Video = attachmentParts(one)
		}
		if err := c.call(ctx, apiGroupWelcomeEdit, func() error { return c.contact.EditGroupWelcomeTemplate(req) }); err != nil {
			return bot.SendResult{}, err
		}
		return bot.SendResult{Detail: "template_id=" + p.TemplateID, Data: map[string]string{"template_id": p.TemplateID, "name": p.Name}}, nil
	}
	req := &externalcontact.AddGroupWelcomeTemplateRequest{Text: text}
	if one != nil {
		req.Image, req.Link, req.MiniProgram, req.File, req.Video = attachmentParts(one)
	}
	// The library's notify field is omitempty, so notify 0 would be dropped
	// and WeCom would notify (its default when the field is absent): send
	// the request ourselves with notify always present.
	body := groupWelcomeAddBody{AddGroupWelcomeTemplateRequest: req, Notify: 1}
	if p.Notify != nil && !*p.Notify {
		body.Notify = 0
	}
	var resp struct {
		errorAnswer
		TemplateID string `json:"template_id"`
	}
	if err := c.doJSON(ctx, apiGroupWelcomeAdd, nil, body, &resp); err != nil {
		return bot.SendResult{}, err
	}
	return bot.SendResult{Detail: "template_id=" + resp.TemplateID, Data: map[string]string{"template_id": resp.TemplateID, "name": p.Name}}, nil
}

func (c *Client) contactWay(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.ContactWay
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	configID, qr, err := c.createContactWay(ctx, p)
	if err != nil {
		return bot.SendResult{}, err
	}
	return bot.SendResult{Detail: "config_id=" + configID,
		Data: map[string]string{"state": p.State, "config_id": configID, "qr_code": qr, "staff": strings.Join(p.Staff, ",")}}, nil
}

func (c *Client) staffMessage(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.StaffMessage
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	to := uniqueNonEmpty(p.ToUsers)
	if len(to) == 0 {
		return bot.SendResult{}, invalid("staff_message without to_users")
	}
	if c.cfg.AgentID == "" {
		return bot.SendResult{}, invalid("staff_message needs the app's AgentId (WECOM_AGENT_ID)")
	}
	req := message.SendTextRequest{
		// The library dereferences SendRequestCommon: it must not be nil.
		SendRequestCommon: &message.SendRequestCommon{ToUser: strings.Join(to, "|"), AgentID: c.cfg.AgentID},
		Text:              message.TextField{Content: bot.Clip(p.Text, bot.MaxAppText)},
	}
	var resp *message.SendResponse
	err := c.call(ctx, apiMessageSend, func() (err error) {
		resp, err = c.message.SendText(req)
		return err
	})
	if err != nil {
		return bot.SendResult{}, err
	}
	detail := "msgid=" + resp.MsgID
	if resp.InvalidUser != "" {
		detail += " invaliduser=" + resp.InvalidUser
		c.log.Warn().Str("invaliduser", resp.InvalidUser).Msg("message/send: some staff ids are unknown or outside the app's 可见范围 (visible range)")
	}
	return bot.SendResult{Detail: detail}, nil
}

func (c *Client) kfMessage(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.KfMessage
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	if p.OpenKfID == "" || p.ExternalUserID == "" {
		return bot.SendResult{}, invalid("kf_message needs open_kfid and external_user_id")
	}
	head := sendmsg.Message{ToUser: p.ExternalUserID, OpenKFID: p.OpenKfID, MsgID: p.MsgID}
	var msg any
	if p.Image != nil {
		// A picture (a 任务宝 poster): the media library put its media_id here.
		if p.Image.MediaID == "" {
			return bot.SendResult{}, invalid("kf image message without a media_id (its media was not resolved)")
		}
		var img sendmsg.Image
		img.Message, img.MsgType, img.Image.MediaID = head, "image", p.Image.MediaID
		msg = img
	} else {
		var text sendmsg.Text
		text.Message, text.MsgType, text.Text.Content = head, "text", bot.Clip(p.Text, bot.MaxKfText)
		msg = text
	}
	var msgID string
	err := c.call(ctx, apiKfSendMsg, func() error {
		resp, err := c.kf.SendMsg(msg)
		msgID = resp.MsgID
		return err
	})
	var apiErr *APIError
	if err != nil && (a.Attempts > 0 || a.PossiblyDelivered) && p.MsgID != "" && errors.As(err, &apiErr) && apiErr.Code == CodeKfDuplicateMsgID {
		// WeCom refuses a reused msgid although the first send went out: an
		// earlier attempt whose answer was lost (or whose process died
		// before recording it) delivered it. (An action is only retried
		// after a retryable error, so the same payload was not refused as
		// invalid before.)
		return bot.SendResult{Inferred: true, Detail: "msgid=" + p.MsgID + " (delivered by an earlier attempt; WeCom refused the reused msgid)"}, nil
	}
	if err != nil {
		return bot.SendResult{}, err
	}
	return bot.SendResult{Detail: "msgid=" + msgID}, nil
}

func (c *Client) robotMessage(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.RobotMessage
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	key := c.cfg.Robots[p.Robot]
	if key == "" {
		return bot.SendResult{}, invalid("robot %q is not configured (robots in config)", p.Robot)
	}
	var opts any
	switch {
	case p.Markdown != "":
		var o wrobot.WebhookSendMarkdownOption
		o.MsgType = "markdown"
		o.Markdown.Content = p.Markdown
		opts = o
	case p.Text != "":
		var o wrobot.WebhookSendTextOption
		o.MsgType = "text"
		o.Text.Content = p.Text
		opts = o
	default:
		return bot.SendResult{}, invalid("robot message without text or markdown")
	}
	err := c.call(ctx, apiWebhookSend, func() error {
		info, err := c.robot.RobotBroadcast(tagCredential(c.id, key), opts)
		if err == nil && info.ErrCode != 0 {
			// RobotBroadcast reports WeCom's errcode only in info.
			return util.NewCommonError("RobotBroadcast", info.ErrCode, info.ErrMsg)
		}
		return err
	})
	if err != nil {
		return bot.SendResult{}, err
	}
	return bot.SendResult{Detail: "robot " + p.Robot}, nil
}

// toAttachments maps our attachments to the library's. Note the library's
// Attachment has non-pointer sub-structs, so every attachment carries empty
// objects for the other types; WeCom reads the one named by msgtype.
func toAttachments(in []bot.Attachment) ([]*externalcontact.Attachment, error) {
	var out []*externalcontact.Attachment
	for i, a := range in {
		if a.Media != nil {
			return nil, invalid("attachment %d: %s was never uploaded (the media library resolves file: and url: attachments)", i+1, a.Media.Name)
		}
		att := &externalcontact.Attachment{MsgType: a.Type}
		switch a.Type {
		case "image":
			if a.MediaID == "" && a.PicURL == "" {
				return nil, invalid("attachment %d: image needs media_id or pic_url", i+1)
			}
			att.Image = externalcontact.AttachmentImg{MediaID: a.MediaID, PicURL: a.PicURL}
		case "link":
			if a.Title == "" || a.URL == "" {
				return nil, invalid("attachment %d: link needs title and url", i+1)
			}
			att.Link = externalcontact.AttachmentLink{Title: a.Title, PicURL: a.PicURL, Desc: a.Desc, URL: a.URL}
		case "miniprogram":
			if a.AppID == "" || a.Page == "" || a.MediaID == "" || a.Title == "" {
				return nil, invalid("attachment %d: miniprogram needs title, appid, page and media_id (cover)", i+1)
			}
			att.MiniProgram = externalcontact.AttachmentMiniProgram{Title: a.Title, PicMediaID: a.MediaID, AppID: a.AppID, Page: a.Page}
		case "video":
			if a.MediaID == "" {
				return nil, invalid("attachment %d: video needs media_id", i+1)
			}
			att.Video = externalcontact.AttachmentVideo{MediaID: a.MediaID}
		case "file":
			if a.MediaID == "" {
				return nil, invalid("attachment %d: file needs media_id", i+1)
			}
			att.File = externalcontact.AttachmentFile{MediaID: a.MediaID}
		default:
			return nil, invalid("attachment %d: unsupported type %q (image, link, miniprogram, video, file)", i+1, a.Type)
		}
		out = append(out, att)
	}
	return out, nil
}

// groupWelcomeAddBody is group_welcome_template/add with notify always sent.
type groupWelcomeAddBody struct {
	*externalcontact.AddGroupWelcomeTemplateRequest
	Notify int `json:"notify"`
}

// attachmentParts splits one attachment into the group welcome template's fields.
func attachmentParts(a *externalcontact.Attachment) (img *externalcontact.AttachmentImg, link *externalcontact.AttachmentLink,
	mini *externalcontact.AttachmentMiniProgram, file *externalcontact.AttachmentFile, video *externalcontact.AttachmentVideo) {
	switch a.MsgType {
	case "image":
		img = &a.Image
	case "link":
		link = &a.Link
	case "miniprogram":
		mini = &a.MiniProgram
	case "file":
		file = &a.File
	case "video":
		video = &a.Video
	}
	return
}

// Summary is a short, secret-free description of an action for logs.
func Summary(a *bot.Action) string {
	short := func(s string) string {
		r := []rune(strings.Join(strings.Fields(s), " "))
		if len(r) > 60 {
			return string(r[:60]) + "…"
		}
		return string(r)
	}
	var s string
	var err error
	switch a.Kind {
	case bot.ActionWelcome:
		var p bot.WelcomeMessage
		if err = a.Decode(&p); err == nil {
			s = fmt.Sprintf("welcome %q +%d attachments", short(p.Text), len(p.Attachments))
		}
	case bot.ActionMarkTag:
		var p bot.MarkTag
		if err = a.Decode(&p); err == nil {
			s = fmt.Sprintf("tag %s add %q remove %q", p.ExternalUserID, p.Add, p.Remove)
		}
	case bot.ActionMassSend:
		var p bot.MassSend
		if err = a.Decode(&p); err == nil {
			s = fmt.Sprintf("mass send (%s) to %d customers %d groups: %q", p.ChatType, len(p.ExternalUserIDs), len(p.ChatIDs), short(p.Text))
		}
	case bot.ActionGroupWelcome:
		var p bot.GroupWelcome
		if err = a.Decode(&p); err == nil {
			s = fmt.Sprintf("group welcome %q: %q", p.Name, short(p.Text))
		}
	case bot.ActionStaffMessage:
		var p bot.StaffMessage
		if err = a.Decode(&p); err == nil {
			s = fmt.Sprintf("to staff %q: %q", p.ToUsers, short(p.Text))
		}
	case bot.ActionKfMessage:
		var p bot.KfMessage
		if err = a.Decode(&p); err == nil {
			s = fmt.Sprintf("kf to %s: %q", p.ExternalUserID, short(p.Text))
			if p.Image != nil {
				s = fmt.Sprintf("kf picture to %s", p.ExternalUserID)
			}
		}
	case bot.ActionRobot:
		var p bot.RobotMessage
		if err = a.Decode(&p); err == nil {
			s = fmt.Sprintf("robot %s: %q", p.Robot, short(p.Text+p.Markdown))
		}
	case bot.ActionContactWay:
		var p bot.ContactWay
		if err = a.Decode(&p); err == nil {
			s = fmt.Sprintf("contact me code state=%q for %q", p.State, p.Staff)
		}
	case bot.ActionKfSync:
		var p bot.KfSync
		if err = a.Decode(&p); err == nil {
			s = fmt.Sprintf("pull 微信客服 %s messages (kf/sync_msg); a sandbox has no WeCom to pull from: use the dashboard's simulate panel", p.OpenKfID)
		}
	case bot.ActionKfEventMessage:
		var p bot.KfEventMessage
		if err = a.Decode(&p); err == nil {
			s = fmt.Sprintf("kf greeting to %s: %q", p.ExternalUserID, short(p.Text))
		}
	case bot.ActionContactProfile:
		var p bot.ContactProfile
		if err = a.Decode(&p); err == nil {
			s = "read the profile of " + p.ExternalUserID + " (externalcontact/get)"
		}
	case bot.ActionKfTransfer:
		var p bot.KfTransfer
		if err = a.Decode(&p); err == nil {
			s = fmt.Sprintf("kf session of %s to state %d (%s)", p.ExternalUserID, p.State, p.Servicer)
		}
	case bot.ActionMassResult:
		var p bot.MassResult
		if err = a.Decode(&p); err == nil {
			s = fmt.Sprintf("read mass-send task %s's results (round %d, remind %v)", p.MsgID, p.Round, p.Remind)
		}
	case bot.ActionTimer:
		s = "timer"
	case bot.ActionTagRefresh:
		var p bot.TagRefresh
		if err = a.Decode(&p); err == nil {
			s = fmt.Sprintf("reload the corp tag library (%s %s %s changed in the admin console)", p.ChangeType, p.Type, p.ID)
		}
	case bot.ActionAIReply:
		var p bot.AIReply
		if err = a.Decode(&p); err == nil {
			s = fmt.Sprintf("AI reply on %s to %q", p.Surface, short(p.Text))
		}
	default:
		s = "unknown kind"
	}
	if err != nil {
		s = "undecodable payload"
	}
	return s
}
