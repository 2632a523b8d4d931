package tables

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// Range reads up to limit changes with an id in [from, to) and above after ("" for none),
// oldest first: what was processed in a window, resumable from the last id read. The minute
// partitions sort as their times do and a query returns rows in key order, so one query over a
// partition range reads the window in id order, however many minutes it spans.
func (s *Changes) Range(ctx context.Context, from, to string, after string, limit int) ([]ChangeRow, error) {
	if from >= to || limit <= 0 {
		return nil, nil
	}
	filter := "PartitionKey ge " + odataQuote(ChangePartition(from)) + " and PartitionKey le " + odataQuote(ChangePartition(to)) +
		" and RowKey ge " + odataQuote(from) + " and RowKey lt " + odataQuote(to)
	if after != "" {
		filter += " and RowKey gt " + odataQuote(after)
	}
	pager := s.t.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Top: to32(min(limit, 1000))})
	var out []ChangeRow
	for pager.More() && len(out) < limit {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
				return nil, nil // no change was ever written
			}
			return nil, err
		}
		for _, raw := range page.Entities {
			var e changeEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, err
			}
			var ch platform.Change
			if err := json.Unmarshal([]byte(e.Change), &ch); err != nil {
				return nil, err
			}
			if len(out) < limit {
				out = append(out, ChangeRow{ID: e.RowKey, Change: &ch})
			}
		}
	}
	return out, nil
}
