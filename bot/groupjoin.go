package bot

// Group QR codes (加入群聊) and group details fetched for the engine.
const (
	// ActionGroupJoinWay: externalcontact/groupchat/add_join_way (scene 2, a
	// QR code) then get_join_way for its qr_code. Its result (config_id,
	// qr_code) returns as an EventActionResult, like ActionContactWay.
	ActionGroupJoinWay ActionKind = "group_join_way"
	// ActionGroupDetail: externalcontact/groupchat/get, so the engine learns
	// which join code (state) the members who just joined came through. Its
	// result carries DataGroupMembers.
	ActionGroupDetail ActionKind = "group_detail"
)

// DataGroupMembers is the EventActionResult key of an ActionGroupDetail:
// the group's members as JSON ([]SyncGroupMember).
const DataGroupMembers = "members"

// GroupJoinWay is the payload of ActionGroupJoinWay.
type GroupJoinWay struct {
	State   string   `json:"state"`
	ChatIDs []string `json:"chat_ids"`
	// Remark is shown in the admin console (≤ 30 chars).
	Remark       string `json:"remark,omitempty"`
	AutoCreate   bool   `json:"auto_create,omitempty"`
	RoomBaseName string `json:"room_base_name,omitempty"`
	RoomBaseID   int    `json:"room_base_id,omitempty"`
}

// GroupDetail is the payload of ActionGroupDetail.
type GroupDetail struct {
	ChatID string `json:"chat_id"`
	// Members are the ids the triggering event named as joined (for the log).
	Members []string `json:"members,omitempty"`
}
