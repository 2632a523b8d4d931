// Package history is the entity audit timeline concern: for each event, the rows its history
// mapping builds, on the timeline of its own entity and of related ones. It owns the
// EntityHistory table; snapshots too large for a row go to the claim-check container.
//
// Invariants: a row's keys derive from the event (platform.HistoryPartitionKey and
// HistoryRowKey), and rows are written with InsertOrReplace: nothing references them, so
// writing one twice leaves one. A mapping builds only the row model, never keys.
package history

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

// Processor writes the entity audit timeline.
type Processor struct {
	registry *mappings.HistoryRegistry
	store    *tables.History
	blobs    *blobs.Client
}

// New writes rows for the event types of registry into store; snapshots too large for a row go
// to blobs.
func New(registry *mappings.HistoryRegistry, store *tables.History, b *blobs.Client) *Processor {
	return &Processor{registry: registry, store: store, blobs: b}
}

// Name implements the router's PostProcessor.
func (*Processor) Name() string { return "history" }

// Accepts implements PostProcessor.
func (h *Processor) Accepts(ev *platform.EntityEvent) bool {
	_, ok := h.registry.Lookup(ev.EventTypeID)
	return ok
}

// Process implements PostProcessor.
func (h *Processor) Process(ctx context.Context, ev *platform.EntityEvent) error {
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
func (h *Processor) snapshotBlob(ctx context.Context, ev *platform.EntityEvent, snapshot json.RawMessage) (string, error) {
	if ev.PayloadBlob != "" && bytes.Equal(snapshot, ev.Payload) {
		return ev.PayloadBlob, nil
	}
	_, name, err := h.blobs.Offload(ctx, snapshot, 0)
	return name, err
}
