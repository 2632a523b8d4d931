// Package history is the entity audit timeline concern: for each event, the rows its history
// mapping builds, on the timeline of its own entity and of related ones. It owns the
// EntityHistory table; snapshots too large for a row go to the claim-check container.
//
// Invariants: a row's keys derive from the event (platform.HistoryPartitionKey and
// HistoryRowKey), and rows are written with InsertOrReplace: nothing references them, so
// writing one twice leaves one. A mapping builds only the row model, never keys.
package history

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/tables"
)

// DefaultMaxRelated is the default of Config.MaxRelated.
const DefaultMaxRelated = 100

// Config tunes the history concern.
type Config struct {
	// MaxRelated is how many timelines besides its own one event may write (a Submit_Incident
	// naming its attendees): each is a request, and the list comes from the payload. An event
	// over it is refused before its first row (PLATFORM_MAX_RELATED). Default 100.
	MaxRelated int
}

// Processor writes the entity audit timeline.
type Processor struct {
	cfg      Config
	registry *mappings.HistoryRegistry
	store    *tables.History
	blobs    *blobs.Client
}

// New writes rows for the event types of registry into store; snapshots too large for a row go
// to blobs.
func New(cfg Config, registry *mappings.HistoryRegistry, store *tables.History, b *blobs.Client) *Processor {
	cfg.MaxRelated = cmp.Or(cfg.MaxRelated, DefaultMaxRelated)
	return &Processor{cfg: cfg, registry: registry, store: store, blobs: b}
}

// Name implements the router's PostProcessor.
func (*Processor) Name() string { return "history" }

// Accepts implements PostProcessor.
func (h *Processor) Accepts(ev *platform.EntityEvent) bool {
	_, ok := h.registry.Lookup(ev.EventTypeID)
	return ok
}

// Check implements the router's Checker: an event over MaxRelated related timelines, or with
// a snapshot over the payload limit, is refused before any concern runs (Process would
// refuse it too, but only once the other concerns had run beside it).
//
// A mapping that fails on ev is left to Process, which reports it as before: the other
// concerns still run.
func (h *Processor) Check(ev *platform.EntityEvent) error {
	_, err := h.entries(ev)
	if errors.Is(err, errMapping) {
		return nil
	}
	return err
}

var errMapping = errors.New("history mapping")

// entries are the rows ev writes, each checked: none is written unless all pass.
func (h *Processor) entries(ev *platform.EntityEvent) ([]platform.HistoryEntry, error) {
	m, _ := h.registry.Lookup(ev.EventTypeID)
	entries, err := m.Entries(ev)
	if err != nil {
		return nil, fmt.Errorf("%w of event type %d: %w", errMapping, ev.EventTypeID, err)
	}
	if related := len(entries) - 1; related > h.cfg.MaxRelated {
		return nil, platform.Permanent(fmt.Errorf("history: the event names %d related timelines, at most %d (PLATFORM_MAX_RELATED): no row written", related, h.cfg.MaxRelated))
	}
	for _, e := range entries {
		if err := h.blobs.CheckPayloadSize(len(e.Snapshot)); err != nil {
			return nil, platform.Permanent(fmt.Errorf("history snapshot for %d:%s: %w", e.EntityTypeID, e.EntityIdentity, err))
		}
	}
	return entries, nil
}

// Process implements PostProcessor. Every entry is checked before the first row is written,
// so an event refused is never half-written.
func (h *Processor) Process(ctx context.Context, ev *platform.EntityEvent) error {
	entries, err := h.entries(ev)
	if err != nil {
		return err
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

// snapshotBlob names a blob holding snapshot under the event's business unit (the scope a
// timeline read checks): the event's own claim-check blob when the snapshot is its payload (no
// second copy), else a new one.
func (h *Processor) snapshotBlob(ctx context.Context, ev *platform.EntityEvent, snapshot json.RawMessage) (string, error) {
	if name := platform.PayloadBlobName(ev.BusinessUnitID, snapshot); name == ev.PayloadBlob {
		return name, nil
	}
	return h.blobs.PutEventPayload(ctx, ev.BusinessUnitID, snapshot)
}
