package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/tables"
)

// HistoryProcessor writes the entity audit timeline: for each event, the rows its history
// mapping builds, under keys derived from the event, with InsertOrReplace.
type HistoryProcessor struct {
	registry *mappings.HistoryRegistry
	store    *tables.History
	blobs    *blobs.Client
}

// NewHistoryProcessor writes rows for the event types of registry into store; snapshots too
// large for a row go to blobs.
func NewHistoryProcessor(registry *mappings.HistoryRegistry, store *tables.History, b *blobs.Client) *HistoryProcessor {
	return &HistoryProcessor{registry: registry, store: store, blobs: b}
}

// Name implements PostProcessor.
func (*HistoryProcessor) Name() string { return "history" }

// Accepts implements PostProcessor.
func (h *HistoryProcessor) Accepts(ev *platform.EntityEvent) bool {
	_, ok := h.registry.Lookup(ev.EventTypeID)
	return ok
}

// Process implements PostProcessor.
func (h *HistoryProcessor) Process(ctx context.Context, ev *platform.EntityEvent) error {
	m, _ := h.registry.Lookup(ev.EventTypeID)
	entries, err := m.Entries(ev)
	if err != nil {
		return fmt.Errorf("history mapping of event type %d: %w", ev.EventTypeID, err)
	}
	for _, e := range entries {
		rec := platform.NewHistoryRecord(ev, e)
		if len(rec.Snapshot) > tables.MaxInlineSnapshot {
			if rec.SnapshotBlob, err = h.snapshotBlob(ctx, ev, rec.Snapshot); err != nil {
				return fmt.Errorf("history %s: %w", rec.HistoryEventKey, err)
			}
			rec.Snapshot = nil
		}
		if err := h.store.Put(ctx, &rec); err != nil {
			return err
		}
	}
	return nil
}

// snapshotBlob names a blob holding snapshot: the event's own claim-check blob when the
// snapshot is its payload (no second copy), else a new content-addressed one.
func (h *HistoryProcessor) snapshotBlob(ctx context.Context, ev *platform.EntityEvent, snapshot json.RawMessage) (string, error) {
	if ev.PayloadBlob != "" && bytes.Equal(snapshot, ev.Payload) {
		return ev.PayloadBlob, nil
	}
	return h.blobs.PutPayload(ctx, snapshot)
}

// Timeline reads one page of an entity's timeline, newest first, with snapshots kept in blobs
// read back into the records.
func Timeline(ctx context.Context, store *tables.History, b *blobs.Client, entityTypeID int, identity string, o *tables.TimelineOptions) ([]platform.HistoryRecord, string, error) {
	rows, next, err := store.Timeline(ctx, entityTypeID, identity, o)
	if err != nil {
		return nil, "", err
	}
	for i := range rows {
		if rows[i].SnapshotBlob == "" {
			continue
		}
		data, err := b.GetPayload(ctx, rows[i].SnapshotBlob)
		if err != nil {
			return nil, "", fmt.Errorf("snapshot of %s: %w", rows[i].HistoryEventKey, err)
		}
		rows[i].Snapshot = data
	}
	return rows, next, nil
}
