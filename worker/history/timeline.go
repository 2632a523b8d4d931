package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/tables"
)

// PagePayloads bounds the bytes of one timeline page: at most PagePayloads times the blob
// client's MaxPayloadBytes of records (4 MiB by default), whatever the row limit.
const PagePayloads = 4

// Timeline reads one page of an entity's timeline, newest first, with snapshots kept in blobs
// read back into the records. The page stops before the row that would take its records' JSON
// over PagePayloads × MaxPayloadBytes, and the token returned continues there; a first row
// over that still comes, alone. The rows read from the table are bounded by the same budget
// (tables.TimelineOptions.MaxBytes), not only the rows returned. A snapshot blob that cannot be shown (over the limit, not the
// row's business unit's, not matching its hash, missing) leaves the row with SnapshotError
// instead of failing the page. o.Visible is kept: rows the reader may not see are skipped in
// the table read.
func Timeline(ctx context.Context, store *tables.History, b *blobs.Client, entityTypeID int, identity string, o *tables.TimelineOptions) ([]platform.HistoryRecord, string, error) {
	budget, used := PagePayloads*b.MaxPayloadBytes(), 0
	// The table read stops at the budget too: a page never reads a thousand rows to show ten.
	opts := tables.TimelineOptions{MaxBytes: budget}
	if o != nil {
		opts.Limit, opts.After, opts.Visible = o.Limit, o.After, o.Visible
	}
	rows, next, err := store.Timeline(ctx, entityTypeID, identity, &opts)
	if err != nil {
		return nil, "", err
	}
	for i := range rows {
		if err := resolveSnapshot(ctx, b, &rows[i]); err != nil {
			return nil, "", fmt.Errorf("snapshot of %s: %w", rows[i].HistoryEventKey, err)
		}
		size, err := json.Marshal(&rows[i])
		if err != nil {
			return nil, "", err
		}
		if i > 0 && used+len(size) > budget {
			return rows[:i], tables.TimelineAfter(&rows[i-1]), nil
		}
		used += len(size)
	}
	return rows, next, nil
}

// resolveSnapshot reads r's snapshot blob, bounded and checked (blobs.EventPayload, scoped to
// the row's business unit). What the row's blob is refused for goes to SnapshotError, in words
// that do not name the blob; only a storage failure is an error.
func resolveSnapshot(ctx context.Context, b *blobs.Client, r *platform.HistoryRecord) error {
	if len(r.Snapshot) > 0 || r.SnapshotBlob == "" {
		return nil
	}
	data, err := b.EventPayload(ctx, r.BusinessUnitID, r.SnapshotBlob)
	switch {
	case err == nil:
		r.Snapshot = data
	case errors.Is(err, blobs.ErrTooLarge):
		r.SnapshotError = fmt.Sprintf("snapshot not shown: over the %d-byte payload limit (PLATFORM_MAX_PAYLOAD_BYTES)", b.MaxPayloadBytes())
	case errors.Is(err, blobs.ErrHashMismatch):
		r.SnapshotError = "snapshot not shown: its blob does not match the content hash in its name"
	case errors.Is(err, platform.ErrNotFound):
		r.SnapshotError = "snapshot not shown: its blob is missing"
	case errors.Is(err, platform.ErrInvalidInput):
		r.SnapshotError = "snapshot not shown: its blob is not under this business unit's claim-check names (rows written before scoped names: publish the event again)"
	default:
		return err
	}
	return nil
}
