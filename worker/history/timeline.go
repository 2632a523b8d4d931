package history

import (
	"context"
	"fmt"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/tables"
)

// Timeline reads one page of an entity's timeline, newest first, with snapshots kept in blobs
// read back into the records.
func Timeline(ctx context.Context, store *tables.History, b *blobs.Client, entityTypeID int, identity string, o *tables.TimelineOptions) ([]platform.HistoryRecord, string, error) {
	rows, next, err := store.Timeline(ctx, entityTypeID, identity, o)
	if err != nil {
		return nil, "", err
	}
	for i := range rows {
		if rows[i].Snapshot, err = b.Resolve(ctx, rows[i].Snapshot, rows[i].SnapshotBlob); err != nil {
			return nil, "", fmt.Errorf("snapshot of %s: %w", rows[i].HistoryEventKey, err)
		}
	}
	return rows, next, nil
}
