package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// EventLog is PlatformEventLog: one row per materialized event, the canonical record, keyed by
// SourceKey in the partition of its day (UTC, from the ULID), so a time window is a key range.
type EventLog struct{ t *aztables.Client }

// EventLog returns the namespace's PlatformEventLog.
func (c *Client) EventLog() *EventLog { return &EventLog{t: c.table(TablePlatformEventLog)} }

// LogRecord is the canonical record of an event (seed 003's columns) as PlatformEventLog keeps it.
type LogRecord struct {
	SourceKey     string
	EventType     int    // eventTypeId
	Source        string // the event's source
	TenantID      string
	ProjectID     int64  // businessUnitId
	EntityName    int    // entityTypeId
	EntityID      string // the entity identity (guid, id or business unit), as in keys
	Timestamp     time.Time
	PayloadJSON   string // the whole EntityEvent, canonical JSON
	CorrelationID string
	ActorID       string
}

type logEntity struct {
	PartitionKey, RowKey string
	EventType            int32
	Source               string `json:",omitempty"`
	TenantId             string `json:",omitempty"`
	ProjectId            int64  `json:",string"`
	ProjectIdType        string `json:"ProjectId@odata.type"`
	EntityName           int32
	EntityId             string
	Timestamp_           string `json:"EventTimestamp"`
	TimestampType        string `json:"EventTimestamp@odata.type"`
	PayloadJson          string
	CorrelationId        string `json:",omitempty"`
	ActorId              string `json:",omitempty"`
}

func logPartition(sourceKey string) string {
	t, _ := platform.SourceKeyTime(sourceKey)
	return t.Format("2006-01-02")
}

// Insert writes r. platform.ErrExists means it was written before: that step is done.
func (l *EventLog) Insert(ctx context.Context, r *LogRecord) error {
	body, err := json.Marshal(logEntity{
		PartitionKey: logPartition(r.SourceKey), RowKey: r.SourceKey,
		EventType: int32(r.EventType), Source: r.Source, TenantId: r.TenantID, ProjectId: r.ProjectID, ProjectIdType: edmInt64,
		EntityName: int32(r.EntityName), EntityId: r.EntityID, Timestamp_: r.Timestamp.UTC().Format(timeLayout), TimestampType: edmDateTime,
		PayloadJson: r.PayloadJSON, CorrelationId: r.CorrelationID, ActorId: r.ActorID,
	})
	if err != nil {
		return err
	}
	if _, err := l.t.AddEntity(ctx, body, nil); err != nil {
		return fmt.Errorf("event log %s: %w", r.SourceKey, storage.Translate(err))
	}
	return nil
}

// Scan reads up to limit records whose SourceKey time is in [from, to), oldest first.
func (l *EventLog) Scan(ctx context.Context, from, to time.Time, limit int) ([]LogRecord, error) {
	var out []LogRecord
	for day := from.UTC().Truncate(24 * time.Hour); day.Before(to) && len(out) < limit; day = day.Add(24 * time.Hour) {
		filter := fmt.Sprintf("PartitionKey eq %s and RowKey ge %s and RowKey lt %s",
			odataQuote(day.Format("2006-01-02")), odataQuote(platform.SourceKeyAt(from)), odataQuote(platform.SourceKeyAt(to)))
		pager := l.t.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Top: to32(min(limit-len(out), 1000))})
		for pager.More() && len(out) < limit {
			page, err := pager.NextPage(ctx)
			if err != nil {
				if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
					return nil, nil
				}
				return nil, err
			}
			for _, raw := range page.Entities {
				var e logEntity
				if err := json.Unmarshal(raw, &e); err != nil {
					return nil, err
				}
				ts, _ := parseTime(e.Timestamp_)
				if len(out) < limit {
					out = append(out, LogRecord{SourceKey: e.RowKey, EventType: int(e.EventType), Source: e.Source, TenantID: e.TenantId,
						ProjectID: e.ProjectId, EntityName: int(e.EntityName), EntityID: e.EntityId, Timestamp: ts, PayloadJSON: e.PayloadJson,
						CorrelationID: e.CorrelationId, ActorID: e.ActorId})
				}
			}
		}
	}
	return out, nil
}

// Count is the number of log rows with SourceKey key (0 or 1: the tests' proof).
func (l *EventLog) Count(ctx context.Context, key string) (int, error) {
	_, err := l.t.GetEntity(ctx, logPartition(key), key, nil)
	if err == nil {
		return 1, nil
	}
	if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
		return 0, nil
	}
	return 0, err
}

func to32(n int) *int32 { return to.Ptr(int32(n)) }
