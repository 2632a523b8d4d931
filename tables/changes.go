package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// TableChanges is the change bus that carries the realtime stream between replicas.
const TableChanges = "Changes"

// Changes is the Changes table: a change per processed event, in the partition of the minute
// it was processed, keyed by a ULID of that instant. Every replica reads the newest rows of the
// current minutes, so a client connected to any replica sees every change.
type Changes struct{ t *aztables.Client }

// Changes returns the namespace's change bus.
func (c *Client) Changes() *Changes { return &Changes{t: c.table(TableChanges)} }

type changeEntity struct {
	PartitionKey, RowKey string
	Change               string // the projection's JSON
	Signal               string `json:",omitempty"` // a signal's topic (PutSignal): Change is then no event's
}

func changePartition(t time.Time) string { return t.UTC().Format("2006-01-02T15:04") }

// ChangeRow is a change and its id (a ULID of the instant it was processed), or a signal.
type ChangeRow struct {
	ID     string
	Change *platform.Change
	// Signal is the topic of a signal row (PutSignal), empty for a change: replicas act on it,
	// streams never show it.
	Signal string
}

// ChangePartition is the partition a change of id goes to; rows of one partition can be
// written in one transaction.
func ChangePartition(id string) string {
	at, _ := platform.SourceKeyTime(id)
	return changePartition(at)
}

// PutBatch writes rows, which must share a partition, in as few entity group transactions as
// Azure's limits allow (MaxBatchOperations and MaxBatchBytes each: the rows are independent,
// so they need not commit together). Each change is fitted to a property first (FitChange).
func (s *Changes) PutBatch(ctx context.Context, rows []ChangeRow) error {
	if len(rows) == 0 {
		return nil
	}
	pk := ChangePartition(rows[0].ID)
	actions := make([]aztables.TransactionAction, 0, len(rows))
	for _, r := range rows {
		if ChangePartition(r.ID) != pk {
			return fmt.Errorf("%w: changes of two partitions in one transaction", ErrBatchLimit)
		}
		b, err := changeJSON(r.Change)
		if err != nil {
			return err
		}
		body, _ := json.Marshal(changeEntity{PartitionKey: pk, RowKey: r.ID, Change: string(b)})
		actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeInsertReplace, Entity: body})
	}
	groups, err := splitBatch(actions)
	if err != nil {
		return fmt.Errorf("change bus: %w", err)
	}
	for _, g := range groups {
		if _, err := s.t.SubmitTransaction(ctx, g, nil); err != nil {
			return fmt.Errorf("change bus: %w", storage.Translate(err))
		}
	}
	return nil
}

// FitChange clips ch so that its JSON fits one table property (MaxPropertyBytes): the change
// names fields, and an event may name more than a property holds. The names that fit are kept,
// in order, and ChangedFieldsTruncated says the list is not whole (a client then reads the
// entity itself). The entity's ids are never clipped.
func FitChange(ch *platform.Change) {
	fits := func(n int) bool {
		c := *ch
		c.ChangedFields, c.ChangedFieldsTruncated = ch.ChangedFields[:n], n < len(ch.ChangedFields) || ch.ChangedFieldsTruncated
		b, err := json.Marshal(&c)
		return err == nil && UTF16Bytes(string(b)) <= MaxPropertyBytes
	}
	if fits(len(ch.ChangedFields)) {
		return
	}
	// The largest prefix that fits: fits is monotonic in n.
	n := sort.Search(len(ch.ChangedFields)+1, func(n int) bool { return !fits(n) }) - 1
	ch.ChangedFields, ch.ChangedFieldsTruncated = ch.ChangedFields[:max(n, 0)], true
}

func changeJSON(ch *platform.Change) ([]byte, error) {
	b, err := json.Marshal(ch)
	if err != nil || UTF16Bytes(string(b)) <= MaxPropertyBytes {
		return b, err
	}
	c := *ch
	FitChange(&c)
	return json.Marshal(&c)
}

// Since reads the changes and signals with an id above after, written in the minutes from
// since to now.
func (s *Changes) Since(ctx context.Context, since time.Time, after string) ([]ChangeRow, error) {
	var out []ChangeRow
	for m := since.UTC().Truncate(time.Minute); !m.After(time.Now().UTC()); m = m.Add(time.Minute) {
		filter := "PartitionKey eq " + odataQuote(changePartition(m)) + " and RowKey gt " + odataQuote(after)
		pager := s.t.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter})
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
					return nil, nil
				}
				return nil, err
			}
			for _, raw := range page.Entities {
				var e changeEntity
				if err := json.Unmarshal(raw, &e); err != nil {
					return nil, err
				}
				if e.Signal != "" {
					out = append(out, ChangeRow{ID: e.RowKey, Signal: e.Signal})
					continue
				}
				var ch platform.Change
				if err := json.Unmarshal([]byte(e.Change), &ch); err != nil {
					return nil, err
				}
				out = append(out, ChangeRow{ID: e.RowKey, Change: &ch})
			}
		}
	}
	return out, nil
}
