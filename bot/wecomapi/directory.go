package wecomapi

import (
	"context"
	"fmt"
	"net/url"
	"sort"

	"github.com/wecombot/wecombot/bot"
)

// API names of the directory calls (sync of existing customers and groups).
const (
	apiGetFollowUserList = "externalcontact/get_follow_user_list"
	apiBatchGetByUser    = "externalcontact/batch/get_by_user"
	apiContactList       = "externalcontact/list"
	apiGroupChatList     = "externalcontact/groupchat/list"
)

// Page sizes WeCom allows.
const (
	// MaxBatchStaff is how many staff one batch/get_by_user call may name.
	MaxBatchStaff = 100
	// MaxBatchLimit is the most customers one batch/get_by_user page returns.
	MaxBatchLimit = 100
	// MaxGroupListLimit is the most groups one groupchat/list page returns.
	MaxGroupListLimit = 1000
)

// FollowUsers lists the staff with the customer contact feature
// (get_follow_user_list).
func (c *Client) FollowUsers(ctx context.Context) ([]string, error) {
	var out struct {
		errorAnswer
		FollowUser []string `json:"follow_user"`
	}
	if err := c.doJSON(ctx, apiGetFollowUserList, nil, nil, &out); err != nil {
		return nil, err
	}
	return out.FollowUser, nil
}

// CustomerCount counts one staff member's customers (externalcontact/list),
// for the sync's progress estimate.
func (c *Client) CustomerCount(ctx context.Context, staffID string) (int, error) {
	var out struct {
		errorAnswer
		ExternalUserID []string `json:"external_userid"`
	}
	if err := c.doJSON(ctx, apiContactList, url.Values{"userid": {staffID}}, nil, &out); err != nil {
		return 0, err
	}
	return len(out.ExternalUserID), nil
}

// CustomersPage returns one batch/get_by_user page: the (customer, staff)
// relations of up to MaxBatchStaff staff, after cursor; next is "" after
// the last page.
func (c *Client) CustomersPage(ctx context.Context, staff []string, cursor string, limit int) (contacts []bot.SyncContact, next string, err error) {
	if len(staff) == 0 || len(staff) > MaxBatchStaff {
		return nil, "", invalid("batch/get_by_user takes 1-%d staff, not %d", MaxBatchStaff, len(staff))
	}
	if limit <= 0 || limit > MaxBatchLimit {
		limit = MaxBatchLimit
	}
	req := map[string]any{"userid_list": staff, "cursor": cursor, "limit": limit}
	var out struct {
		errorAnswer
		ExternalContactList []struct {
			ExternalContact struct {
				ExternalUserID string `json:"external_userid"`
				Name           string `json:"name"`
				UnionID        string `json:"unionid"`
			} `json:"external_contact"`
			FollowInfo struct {
				UserID     string   `json:"userid"`
				Remark     string   `json:"remark"`
				CreateTime int64    `json:"createtime"`
				TagID      []string `json:"tag_id"`
				State      string   `json:"state"`
			} `json:"follow_info"`
		} `json:"external_contact_list"`
		NextCursor string `json:"next_cursor"`
	}
	if err := c.doJSON(ctx, apiBatchGetByUser, nil, req, &out); err != nil {
		return nil, "", err
	}
	contacts = make([]bot.SyncContact, 0, len(out.ExternalContactList))
	for _, it := range out.ExternalContactList {
		contacts = append(contacts, bot.SyncContact{
			ExternalUserID: it.ExternalContact.ExternalUserID, Name: it.ExternalContact.Name,
			UnionID: it.ExternalContact.UnionID, StaffID: it.FollowInfo.UserID, Remark: it.FollowInfo.Remark,
			AddedAt: it.FollowInfo.CreateTime, TagIDs: it.FollowInfo.TagID, State: it.FollowInfo.State,
		})
	}
	return contacts, out.NextCursor, nil
}

// GroupChatIDs returns one groupchat/list page of customer groups (all
// statuses but dismissed), after cursor; next is "" after the last page.
func (c *Client) GroupChatIDs(ctx context.Context, cursor string, limit int) (ids []string, next string, err error) {
	if limit <= 0 || limit > MaxGroupListLimit {
		limit = MaxGroupListLimit
	}
	req := map[string]any{"status_filter": 0, "cursor": cursor, "limit": limit}
	var out struct {
		errorAnswer
		GroupChatList []struct {
			ChatID string `json:"chat_id"`
		} `json:"group_chat_list"`
		NextCursor string `json:"next_cursor"`
	}
	if err := c.doJSON(ctx, apiGroupChatList, nil, req, &out); err != nil {
		return nil, "", err
	}
	for _, g := range out.GroupChatList {
		ids = append(ids, g.ChatID)
	}
	return ids, out.NextCursor, nil
}

// GroupChat returns a customer group's owner and members with their join
// scene, invitor and the join code's state (groupchat/get, need_name=1).
func (c *Client) GroupChat(ctx context.Context, chatID string) (bot.SyncGroup, error) {
	if chatID == "" {
		return bot.SyncGroup{}, invalid("empty chat_id")
	}
	var out struct {
		errorAnswer
		GroupChat struct {
			ChatID     string `json:"chat_id"`
			Name       string `json:"name"`
			Owner      string `json:"owner"`
			CreateTime int64  `json:"create_time"`
			MemberList []struct {
				UserID    string `json:"userid"`
				Type      int    `json:"type"`
				JoinTime  int64  `json:"join_time"`
				JoinScene int    `json:"join_scene"`
				Invitor   struct {
					UserID string `json:"userid"`
				} `json:"invitor"`
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"member_list"`
		} `json:"group_chat"`
	}
	if err := c.doJSON(ctx, apiGroupChatGet, nil, map[string]any{"chat_id": chatID, "need_name": 1}, &out); err != nil {
		return bot.SyncGroup{}, fmt.Errorf("group chat %s: %w", chatID, err)
	}
	g := out.GroupChat
	sg := bot.SyncGroup{ChatID: g.ChatID, Name: g.Name, Owner: g.Owner, CreatedAt: g.CreateTime}
	if sg.ChatID == "" {
		sg.ChatID = chatID
	}
	for _, m := range g.MemberList {
		sg.Members = append(sg.Members, bot.SyncGroupMember{UserID: m.UserID, Type: m.Type, JoinTime: m.JoinTime,
			JoinScene: m.JoinScene, Invitor: m.Invitor.UserID, Name: m.Name, State: m.State})
	}
	return sg, nil
}

// CorpTags returns the corp tag library (get_corp_tag_list) and refreshes
// the tag cache the senders resolve names with.
func (c *Client) CorpTags(ctx context.Context) ([]bot.SyncTag, error) {
	if err := c.tags.refresh(ctx); err != nil {
		return nil, err
	}
	var out []bot.SyncTag
	ix := c.tags.index.Load()
	for group, names := range ix.byGroup {
		for name, id := range names {
			out = append(out, bot.SyncTag{ID: id, Name: name, Group: group})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
