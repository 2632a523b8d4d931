package platform

import (
	"encoding/json"
	"time"
)

// HistoryEntry is what a history mapping builds for one timeline: the row model, never its keys.
// The history post-processor derives the keys from the event, so no mapping can get them wrong.
type HistoryEntry struct {
	EntityTypeID   int    // the timeline's entity type; the event's own, or another's (multi)
	EntityIdentity string // the timeline's entity identity, as in keys
	Action         string // derived from the action type: "Create", "Update", "Submit", ...
	Summary        string // one human-readable line for the timeline
	Snapshot       json.RawMessage
}

// HistoryRecord is one row of an entity's timeline as it is stored and read back.
type HistoryRecord struct {
	HistoryEventKey string    `json:"historyEventKey"`
	EventKey        string    `json:"eventKey"`
	EventTypeID     int       `json:"eventTypeId"`
	EntityTypeID    int       `json:"entityTypeId"`
	EntityIdentity  string    `json:"entityIdentity"`
	ActionTypeID    int       `json:"actionTypeId"`
	Action          string    `json:"action"`
	Summary         string    `json:"summary,omitempty"`
	BusinessUnitID  int64     `json:"businessUnitId"`
	CreatedOn       time.Time `json:"createdOn"`
	ChangedFields   []string  `json:"changedFields,omitempty"`
	// NotificationEventTypeID is the event's hint, kept so that a trace can tell why the event
	// did or did not notify.
	NotificationEventTypeID int             `json:"notificationEventTypeId,omitempty"`
	Snapshot                json.RawMessage `json:"snapshot,omitempty"`
	// SnapshotBlob names the blob in event-payloads that holds a snapshot too large for a row
	// (PayloadBlobName of the row's business unit). It is storage detail: never in the JSON.
	SnapshotBlob string `json:"-"`
	// SnapshotError says why a snapshot kept in a blob is not in Snapshot (over the payload
	// limit, not this business unit's, content not matching its name, missing); the rest of
	// the row is as stored.
	SnapshotError string `json:"snapshotError,omitempty"`
	CorrelationID string `json:"correlationId,omitempty"`
	ActorID       string `json:"actorId,omitempty"`
	Source        string `json:"source,omitempty"`
}

// NewHistoryRecord is the row that event ev writes for entry e, keys included.
func NewHistoryRecord(ev *EntityEvent, e HistoryEntry) HistoryRecord {
	return HistoryRecord{
		HistoryEventKey:         ev.HistoryEventKey(e.EntityTypeID, e.EntityIdentity),
		EventKey:                ev.Key(),
		EventTypeID:             ev.EventTypeID,
		EntityTypeID:            e.EntityTypeID,
		EntityIdentity:          e.EntityIdentity,
		ActionTypeID:            ev.ActionTypeID,
		Action:                  e.Action,
		Summary:                 e.Summary,
		BusinessUnitID:          ev.BusinessUnitID,
		CreatedOn:               ev.CreatedOn,
		ChangedFields:           ev.ChangedFields,
		NotificationEventTypeID: ev.NotificationEventTypeID,
		Snapshot:                e.Snapshot,
		CorrelationID:           ev.CorrelationID,
		ActorID:                 ev.ActorID,
		Source:                  ev.Source,
	}
}

// PartitionKey and RowKey place the record on its timeline, newest first.
func (r *HistoryRecord) PartitionKey() string {
	return HistoryPartitionKey(r.EntityTypeID, r.EntityIdentity)
}
func (r *HistoryRecord) RowKey() string {
	return HistoryRowKey(r.CreatedOn, r.EventTypeID, r.ActionTypeID)
}
