package bot

// Sync events: the sync driver (bot/wecomsync) reads the brand's existing
// customers, customer groups and corp tags from WeCom page by page and
// appends each page to the event log (SourceSystem); the engine applies
// them. Their dedupe keys name the run and the page's input cursor, so a
// crash that re-fetches a page appends nothing new and applies nothing twice.
const (
	// EventSyncStart opens a run; Data: DataSyncRun, DataSyncTrigger.
	EventSyncStart EventType = "sync.start"
	// EventSyncPage carries one page; Data: DataSyncRun, DataSyncPhase,
	// DataSyncPage (the page as JSON: SyncTags, SyncStaff, SyncCustomers,
	// SyncGroup or SyncGroupList by phase).
	EventSyncPage EventType = "sync.page"
	// EventSyncFinish closes a run: customers and groups not seen are gone.
	EventSyncFinish EventType = "sync.finish"
	// EventSyncFail records that a run stopped on an error it can't retry
	// past (a missing permission); Data: DataSyncRun, DataSyncError.
	EventSyncFail EventType = "sync.fail"
)

// Data keys of sync events.
const (
	DataSyncRun     = "run"
	DataSyncTrigger = "trigger"
	DataSyncPhase   = "phase"
	DataSyncPage    = "page"
	DataSyncError   = "error"
)

// Sync phases, in the order a run goes through them.
const (
	SyncPhaseTags      = "tags"
	SyncPhaseStaff     = "staff"
	SyncPhaseCustomers = "customers"
	SyncPhaseGroupList = "group_list"
	SyncPhaseGroup     = "group"
)

// SyncTags is the corp tag library (get_corp_tag_list).
type SyncTags struct {
	Tags []SyncTag `json:"tags"`
}

// SyncTag is one corp tag.
type SyncTag struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Group string `json:"group"`
}

// SyncStaff is the staff with customer contact (get_follow_user_list)
// whose customers the app may read; OutOfRange are those WeCom refused to
// show (60011: outside the app's visible range), reported, not synced.
// Estimate is how many (customer, staff) relations they have, for progress.
type SyncStaff struct {
	Staff      []string `json:"staff"`
	OutOfRange []string `json:"out_of_range,omitempty"`
	Estimate   int      `json:"estimate,omitempty"`
}

// SyncCustomers is one batch/get_by_user page: Batch is the index of the
// ≤100-staff batch, Cursor the page's input cursor, Next the cursor after it
// ("" when the batch is done).
type SyncCustomers struct {
	Batch    int           `json:"batch"`
	Cursor   string        `json:"cursor,omitempty"`
	Next     string        `json:"next,omitempty"`
	Contacts []SyncContact `json:"contacts,omitempty"`
}

// SyncContact is one (customer, staff member) relation.
type SyncContact struct {
	ExternalUserID string   `json:"external_userid"`
	Name           string   `json:"name,omitempty"`
	UnionID        string   `json:"unionid,omitempty"`
	StaffID        string   `json:"staff"`
	Remark         string   `json:"remark,omitempty"`
	AddedAt        int64    `json:"createtime,omitempty"`
	TagIDs         []string `json:"tag_ids,omitempty"`
	State          string   `json:"state,omitempty"`
}

// SyncGroupList is one groupchat/list page, applied once its groups are.
type SyncGroupList struct {
	Cursor string `json:"cursor,omitempty"`
	Next   string `json:"next,omitempty"`
	Count  int    `json:"count"`
}

// SyncGroup is one customer group's details (groupchat/get with need_name).
type SyncGroup struct {
	ChatID    string            `json:"chat_id"`
	Name      string            `json:"name,omitempty"`
	Owner     string            `json:"owner,omitempty"`
	CreatedAt int64             `json:"create_time,omitempty"`
	Members   []SyncGroupMember `json:"members,omitempty"`
}

// SyncGroupMember is one member of a customer group.
type SyncGroupMember struct {
	UserID string `json:"userid"`
	// Type is 1 for staff, 2 for a customer.
	Type     int   `json:"type"`
	JoinTime int64 `json:"join_time,omitempty"`
	// JoinScene: 1 invited directly, 2 through an invite link, 3 through a QR code.
	JoinScene int    `json:"join_scene,omitempty"`
	Invitor   string `json:"invitor,omitempty"`
	Name      string `json:"name,omitempty"`
	// State is the join code's state (加入群聊 add_join_way) the member came through.
	State string `json:"state,omitempty"`
}

// Customer reports whether the group member is a customer (not staff).
func (m SyncGroupMember) Customer() bool { return m.Type == 2 }
