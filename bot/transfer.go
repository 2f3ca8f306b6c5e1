package bot

import "time"

// Staff transfer (在职继承 / 离职继承): an operator moves a staff member's
// customers and groups to another; WeCom completes customer moves within
// 24 h (the customer may refuse), so results are polled.
const (
	// EventTransferRequest is the operator's request; Data: DataTransfer
	// (the id), from, to, customers (comma-separated; empty: all of from's),
	// groups ("1": also the groups from owns), resigned ("1": from has left),
	// message (transfer_success_msg, 在职 only).
	EventTransferRequest EventType = "operator.transfer"

	// ActionTransferCustomers: transfer_customer or resigned/transfer_customer
	// (≤100 customers); its result carries DataTransferOutcomes.
	ActionTransferCustomers ActionKind = "transfer_customers"
	// ActionTransferPoll: transfer_result or resigned/transfer_result.
	ActionTransferPoll ActionKind = "transfer_poll"
	// ActionTransferGroups: groupchat/onjob_transfer or groupchat/transfer (≤100 groups).
	ActionTransferGroups ActionKind = "transfer_groups"
)

// Data keys of transfer events and results.
const (
	DataTransfer         = "transfer"
	DataTransferOutcomes = "outcomes"
)

// TransferCustomers is the payload of ActionTransferCustomers.
type TransferCustomers struct {
	Transfer  string   `json:"transfer"`
	From      string   `json:"from"`
	To        string   `json:"to"`
	Resigned  bool     `json:"resigned,omitempty"`
	Customers []string `json:"customers"`
	Message   string   `json:"message,omitempty"`
}

// TransferPoll is the payload of ActionTransferPoll.
type TransferPoll struct {
	Transfer string `json:"transfer"`
	From     string `json:"from"`
	To       string `json:"to"`
	Resigned bool   `json:"resigned,omitempty"`
	Poll     int    `json:"poll"`
	// Open lists the customers still waiting when there are few (≤1000),
	// for the sandbox's answer; WeCom's transfer_result needs only From/To.
	Open []string `json:"open,omitempty"`
}

// TransferGroups is the payload of ActionTransferGroups.
type TransferGroups struct {
	Transfer string   `json:"transfer"`
	To       string   `json:"to"`
	Resigned bool     `json:"resigned,omitempty"`
	ChatIDs  []string `json:"chat_ids"`
}

// TransferOutcome is one customer's answer: errcode from the transfer
// call, or status (1 done, 2 waiting, 3 refused, 4 takeover over its
// customer limit, 5 no record) and takeover_time from the result.
type TransferOutcome struct {
	ExternalUserID string `json:"external_userid"`
	ErrCode        int64  `json:"errcode,omitempty"`
	Status         int    `json:"status,omitempty"`
	TakeoverTime   int64  `json:"takeover_time,omitempty"`
}

// Transfer statuses of a member's hand-over.
const (
	TransferRequested = "requested"
	TransferWaiting   = "waiting"
	TransferDone      = "done"
	TransferFailed    = "failed"
)

// Transfer is one hand-over of a member between staff, kept on the member
// (its timeline shows it).
type Transfer struct {
	ID       string    `json:"id"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Resigned bool      `json:"resigned,omitempty"`
	Status   string    `json:"status"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
	DoneAt   time.Time `json:"done_at,omitzero"`
}
