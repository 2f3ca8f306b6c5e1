package wecomapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/wecombot/wecombot/bot"
)

// Staff turnover APIs (在职继承 / 离职继承).
const (
	apiTransferCustomer         = "externalcontact/transfer_customer"
	apiTransferResult           = "externalcontact/transfer_result"
	apiResignedTransferCustomer = "externalcontact/resigned/transfer_customer"
	apiResignedTransferResult   = "externalcontact/resigned/transfer_result"
	apiGroupChatOnJobTransfer   = "externalcontact/groupchat/onjob_transfer"
	apiGroupChatTransfer        = "externalcontact/groupchat/transfer"
	apiGetUnassignedList        = "externalcontact/get_unassigned_list"
)

// MaxTransferBatch is how many customers or groups one transfer call takes.
const MaxTransferBatch = 100

// transferCustomers moves up to 100 customers (transfer_customer, or
// resigned/transfer_customer for departed staff); the answer names each
// customer's errcode (0: accepted, WeCom completes it within 24 h).
func (c *Client) transferCustomers(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.TransferCustomers
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	if len(p.Customers) == 0 || len(p.Customers) > MaxTransferBatch {
		return bot.SendResult{}, invalid("a transfer moves 1-%d customers, not %d", MaxTransferBatch, len(p.Customers))
	}
	api := apiTransferCustomer
	req := map[string]any{"handover_userid": p.From, "takeover_userid": p.To, "external_userid": p.Customers}
	if p.Resigned {
		api = apiResignedTransferCustomer
	} else if p.Message != "" {
		req["transfer_success_msg"] = p.Message
	}
	var out struct {
		errorAnswer
		Customer []bot.TransferOutcome `json:"customer"`
	}
	if err := c.doJSON(ctx, api, nil, req, &out); err != nil {
		return bot.SendResult{}, fmt.Errorf("transfer %d customers %s → %s: %w", len(p.Customers), p.From, p.To, err)
	}
	raw, err := json.Marshal(out.Customer)
	if err != nil {
		return bot.SendResult{}, err
	}
	refused := 0
	for _, o := range out.Customer {
		if o.ErrCode != 0 {
			refused++
		}
	}
	return bot.SendResult{Detail: fmt.Sprintf("transfer %s: %d accepted, %d refused", p.Transfer, len(out.Customer)-refused, refused),
		Data: map[string]string{bot.DataTransfer: p.Transfer, bot.DataTransferOutcomes: string(raw)}}, nil
}

// transferResult reads where the customers moved from p.From to p.To stand
// (transfer_result or resigned/transfer_result, every page).
func (c *Client) transferResult(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.TransferPoll
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	api := apiTransferResult
	if p.Resigned {
		api = apiResignedTransferResult
	}
	var all []bot.TransferOutcome
	cursor := ""
	for page := 0; page < 1000; page++ {
		var out struct {
			errorAnswer
			Customer   []bot.TransferOutcome `json:"customer"`
			NextCursor string                `json:"next_cursor"`
		}
		req := map[string]any{"handover_userid": p.From, "takeover_userid": p.To, "cursor": cursor}
		if err := c.doJSON(ctx, api, nil, req, &out); err != nil {
			return bot.SendResult{}, fmt.Errorf("transfer result %s → %s: %w", p.From, p.To, err)
		}
		all = append(all, out.Customer...)
		if cursor = out.NextCursor; cursor == "" {
			break
		}
	}
	raw, err := json.Marshal(all)
	if err != nil {
		return bot.SendResult{}, err
	}
	return bot.SendResult{Detail: fmt.Sprintf("transfer %s: %d results", p.Transfer, len(all)),
		Data: map[string]string{bot.DataTransfer: p.Transfer, bot.DataTransferOutcomes: string(raw), "poll": fmt.Sprint(p.Poll)}}, nil
}

// transferGroups gives up to 100 customer groups a new owner
// (groupchat/onjob_transfer, or groupchat/transfer for departed owners).
func (c *Client) transferGroups(ctx context.Context, a *bot.Action) (bot.SendResult, error) {
	var p bot.TransferGroups
	if err := decode(a, &p); err != nil {
		return bot.SendResult{}, err
	}
	if len(p.ChatIDs) == 0 || len(p.ChatIDs) > MaxTransferBatch {
		return bot.SendResult{}, invalid("a group transfer moves 1-%d groups, not %d", MaxTransferBatch, len(p.ChatIDs))
	}
	api := apiGroupChatOnJobTransfer
	if p.Resigned {
		api = apiGroupChatTransfer
	}
	var out struct {
		errorAnswer
		FailedChatList []struct {
			ChatID  string `json:"chat_id"`
			ErrCode int64  `json:"errcode"`
			ErrMsg  string `json:"errmsg"`
		} `json:"failed_chat_list"`
	}
	if err := c.doJSON(ctx, api, nil, map[string]any{"chat_id_list": p.ChatIDs, "new_owner": p.To}, &out); err != nil {
		return bot.SendResult{}, fmt.Errorf("transfer %d groups to %s: %w", len(p.ChatIDs), p.To, err)
	}
	failed := map[string]string{}
	for _, f := range out.FailedChatList {
		failed[f.ChatID] = fmt.Sprintf("errcode %d: %s", f.ErrCode, redactText(f.ErrMsg))
	}
	raw, err := json.Marshal(failed)
	if err != nil {
		return bot.SendResult{}, err
	}
	return bot.SendResult{Detail: fmt.Sprintf("groups to %s: %d moved, %d failed", p.To, len(p.ChatIDs)-len(failed), len(failed)),
		Data: map[string]string{bot.DataTransfer: p.Transfer, "to": p.To, "chat_ids": strings.Join(p.ChatIDs, ","), "failed": string(raw)}}, nil
}

// Unassigned is one customer of a departed staff member waiting for a new one.
type Unassigned struct {
	HandoverUserID string `json:"handover_userid"`
	ExternalUserID string `json:"external_userid"`
	DimissionTime  int64  `json:"dimission_time"`
}

// UnassignedCustomers lists the customers of departed staff not yet
// assigned (get_unassigned_list), up to limit.
func (c *Client) UnassignedCustomers(ctx context.Context, limit int) ([]Unassigned, error) {
	var all []Unassigned
	cursor := ""
	for len(all) < limit {
		var out struct {
			errorAnswer
			Info       []Unassigned `json:"info"`
			IsLast     bool         `json:"is_last"`
			NextCursor string       `json:"next_cursor"`
		}
		if err := c.doJSON(ctx, apiGetUnassignedList, nil, map[string]any{"cursor": cursor, "page_size": 1000}, &out); err != nil {
			return nil, fmt.Errorf("list unassigned customers: %w", err)
		}
		all = append(all, out.Info...)
		if out.IsLast || out.NextCursor == "" {
			break
		}
		cursor = out.NextCursor
	}
	if len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}
