package bot

import (
	"strconv"
	"time"
)

// Outreach: broadcasts (群发) and SOP sequences. The scheduler appends a
// broadcast's occurrence as an event; the engine fans it out to members in
// bounded transactions, one page of members each, driving the next page
// through an ActionTimer whose result event carries the cursor.
const (
	// EventBroadcastRun: a broadcast's occurrence is due (scheduler, or an
	// API broadcast's time came). Data: DataBroadcast (YAML name) or
	// DataBroadcastID (API), DataOccurrence (unix seconds). Its dedupe key
	// is BroadcastRunKey: one run per (broadcast, occurrence).
	EventBroadcastRun EventType = "broadcast.run"
	// EventBroadcastCreate: an operator created a broadcast through the
	// admin API. Data: DataBroadcastID, DataBroadcastSpec (its JSON).
	EventBroadcastCreate EventType = "broadcast.create"
	// EventSOPDate: the day's scan of a date-triggered SOP (date:birthday).
	// Data: DataSOP, DataDay (YYYY-MM-DD, brand zone; bot/silent.go).
	EventSOPDate EventType = "sop.date"
	// EventSOPState: an operator paused or resumed an SOP (console, admin
	// API). Data: DataSOP, DataPaused ("true" or "false").
	EventSOPState EventType = "sop.state"
)

// PurposeOutreach: a broadcast's or an SOP step's message; the outbox
// cancels it if the member has since been lost or stopped following the
// sender, or (SOP steps) her sequence was stopped.
const PurposeOutreach ActionPurpose = "outreach"

// Data keys of outreach events and page results.
const (
	DataBroadcast     = "broadcast"
	DataBroadcastID   = "broadcast_id"
	DataBroadcastSpec = "spec"
	DataOccurrence    = "occurrence"
	DataRun           = "run"
	DataCursor        = "cursor"
	DataSOP           = "sop"
	DataPaused        = "paused"
)

// BroadcastRunKey is the dedupe key of a broadcast's occurrence.
func BroadcastRunKey(broadcast string, occurrence time.Time) string {
	return "broadcast|" + broadcast + "|" + strconv.FormatInt(occurrence.Unix(), 10)
}

// BroadcastRunEvent is the event of a YAML broadcast's occurrence.
func BroadcastRunEvent(name string, occurrence, received time.Time) *Event {
	return &Event{Type: EventBroadcastRun, Source: SourceCron, DedupeKey: BroadcastRunKey(name, occurrence),
		At: occurrence, ReceivedAt: received,
		Data: map[string]string{DataBroadcast: name, DataOccurrence: strconv.FormatInt(occurrence.Unix(), 10)}}
}

// SOPDateEvent is the day's scan of a date-triggered SOP; at is the day's
// start in the brand zone.
func SOPDateEvent(sop string, at, received time.Time) *Event {
	day := at.Format("2006-01-02")
	return &Event{Type: EventSOPDate, Source: SourceCron, DedupeKey: "sopdate|" + sop + "|" + day, At: at, ReceivedAt: received,
		Data: map[string]string{DataSOP: sop, DataDay: day}}
}
