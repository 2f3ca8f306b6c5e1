package wecomapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
)

// Sandbox is the bot.Sender used when no WECOM_SECRET is set: it logs each
// action and keeps it in memory instead of calling WeCom, and always succeeds.
type Sandbox struct {
	log  zerolog.Logger
	mu   sync.Mutex
	sent []bot.Action
}

// NewSandbox returns an empty Sandbox logging to log.
func NewSandbox(log zerolog.Logger) *Sandbox {
	return &Sandbox{log: log.With().Str("component", "sandbox").Logger()}
}

// Send records a and logs what would have been sent.
func (s *Sandbox) Send(_ context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	cp := *a
	cp.Payload = slices.Clone(a.Payload)
	s.mu.Lock()
	s.sent = append(s.sent, cp)
	s.mu.Unlock()
	s.log.Info().Str("kind", string(a.Kind)).Uint64("action", a.ID).Str("member", a.MemberID).
		Str("summary", Summary(a)).Msg("sandbox: recorded instead of sending to WeCom")
	data := sandboxResult(a)
	if a.Kind == bot.ActionMassResult {
		data = s.massResult(a)
	}
	return bot.SendResult{Detail: "sandbox", Data: data}, false, nil
}

// massResult answers a mass-send result poll: the sandbox's staff confirm
// every task at once and every customer of it receives it.
func (s *Sandbox) massResult(a *bot.Action) map[string]string {
	var p bot.MassResult
	if a.Decode(&p) != nil {
		return nil
	}
	var targets []string
	s.mu.Lock()
	for _, x := range s.sent {
		var t bot.MassSend
		if x.Kind == bot.ActionMassSend && x.Decode(&t) == nil && t.Batch == p.Batch {
			targets = append(append(targets, t.ExternalUserIDs...), t.ChatIDs...)
		}
	}
	s.mu.Unlock()
	pairs := make([]string, len(targets))
	for i, id := range targets {
		pairs[i] = id + ":1"
	}
	return map[string]string{bot.DataBatch: p.Batch, bot.DataMsgID: p.MsgID, bot.DataRound: strconv.Itoa(p.Round),
		bot.DataTaskStatus: "2", bot.DataSendResults: strings.Join(pairs, ",")}
}

// sandboxResult makes up what WeCom would have created, so the engine's
// follow-on state (template ids, invite QR codes) works in the sandbox too.
func sandboxResult(a *bot.Action) map[string]string {
	sum := sha256.Sum256([]byte(a.Key))
	id := "sandbox-" + hex.EncodeToString(sum[:6])
	switch a.Kind {
	case bot.ActionMassSend:
		var p bot.MassSend
		if a.Decode(&p) != nil || p.Batch == "" {
			return nil
		}
		return map[string]string{bot.DataBatch: p.Batch, bot.DataMsgID: id}
	case bot.ActionGroupWelcome:
		var p bot.GroupWelcome
		if a.Decode(&p) != nil {
			return nil
		}
		if p.TemplateID != "" {
			id = p.TemplateID
		}
		return map[string]string{"template_id": id, "name": p.Name}
	case bot.ActionContactWay:
		var p bot.ContactWay
		if a.Decode(&p) != nil {
			return nil
		}
		return map[string]string{"state": p.State, "config_id": id, "staff": strings.Join(p.Staff, ","),
			"qr_code": "https://sandbox.invalid/contact_me/" + url.PathEscape(p.State) + ".png"}
	case bot.ActionTransferCustomers:
		var p bot.TransferCustomers
		if a.Decode(&p) != nil {
			return nil
		}
		return transferOutcomes(p.Transfer, p.Customers, 0)
	case bot.ActionTransferPoll:
		// The sandbox's WeCom completes every move at the first poll.
		var p bot.TransferPoll
		if a.Decode(&p) != nil {
			return nil
		}
		return transferOutcomes(p.Transfer, p.Open, 1)
	case bot.ActionTransferGroups:
		var p bot.TransferGroups
		if a.Decode(&p) != nil {
			return nil
		}
		return map[string]string{bot.DataTransfer: p.Transfer, "to": p.To, "chat_ids": strings.Join(p.ChatIDs, ","), "failed": "{}"}
	case bot.ActionGroupJoinWay:
		var p bot.GroupJoinWay
		if a.Decode(&p) != nil {
			return nil
		}
		return map[string]string{"state": p.State, "config_id": id,
			"qr_code": "https://sandbox.invalid/join_group/" + url.PathEscape(p.State) + ".png"}
	}
	return nil
}

// Sent returns a copy of the recorded actions, oldest first.
func (s *Sandbox) Sent() []bot.Action {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

// transferOutcomes answers a sandbox transfer: every customer accepted.
func transferOutcomes(id string, customers []string, status int) map[string]string {
	outs := make([]bot.TransferOutcome, len(customers))
	for i, c := range customers {
		outs[i] = bot.TransferOutcome{ExternalUserID: c, Status: status}
	}
	raw, _ := json.Marshal(outs)
	return map[string]string{bot.DataTransfer: id, bot.DataTransferOutcomes: string(raw)}
}
