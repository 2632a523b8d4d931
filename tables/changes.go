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
	// Writer is the replica that wrote the row (ChangeRow.Writer), "" for a signal: a poll's
	// fresh read leaves out its own replica's rows (Poll).
	Writer string
}

func changePartition(t time.Time) string { return t.UTC().Format("2006-01-02T15:04") }

// ChangeRow is a change and its id (a ULID of the instant it was processed), or a signal.
type ChangeRow struct {
	ID     string
	Change *platform.Change
	// Signal is the topic of a signal row (PutSignal), empty for a change: replicas act on it,
	// streams never show it.
	Signal string
	// Writer names the replica that wrote a change (any string it picks, unique among the
	// replicas); empty for a signal, which every replica reads, its writer too.
	Writer string
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
		body, _ := json.Marshal(changeEntity{PartitionKey: pk, RowKey: r.ID, Change: string(b), Writer: r.Writer})
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

// PollRange is what one poll of the change bus reads: the fresh rows of other writers, and the
// rows of every writer that have become old enough to be swept once.
type PollRange struct {
	// Fresh: rows with an id above it, except those Writer wrote (its own, which it has).
	Fresh string
	// Writer is the reader's own writer name: its rows are left out of the fresh read.
	Writer string
	// SweepFrom and SweepTo: rows of every writer with an id in (SweepFrom, SweepTo], read
	// once when no row of them can still be on its way (a row commits after its id was taken:
	// one that committed late, below ids already read fresh, is read here). SweepTo <=
	// SweepFrom: no sweep.
	SweepFrom, SweepTo string
}

// Poll reads what r names, in the minute partitions from the oldest id it names to now: a
// request per minute, usually one or two. A row can come back in both parts (a row of another
// writer, fresh and then swept): readers drop what they have.
func (s *Changes) Poll(ctx context.Context, r PollRange) ([]ChangeRow, error) {
	from := r.Fresh
	sweep := r.SweepTo > r.SweepFrom
	if sweep {
		from = min(from, r.SweepFrom)
	}
	since, _ := platform.SourceKeyTime(from)
	// One RowKey range, from the oldest id either part reads, so that the service scans that
	// range of the partition and no more; which rows of it come back is the rest of the filter.
	part := "RowKey gt " + odataQuote(from) + " and Writer ne " + odataQuote(r.Writer)
	if sweep {
		part = "RowKey gt " + odataQuote(from) + " and (RowKey le " + odataQuote(r.SweepTo) +
			" or (RowKey gt " + odataQuote(r.Fresh) + " and Writer ne " + odataQuote(r.Writer) + "))"
	}
	var out []ChangeRow
	for m := since.UTC().Truncate(time.Minute); !m.After(time.Now().UTC()); m = m.Add(time.Minute) {
		filter := "PartitionKey eq " + odataQuote(changePartition(m)) + " and " + part
		rows, err := s.list(ctx, filter)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// Since reads the changes and signals with an id above after, written in the minutes from
// since to now.
func (s *Changes) Since(ctx context.Context, since time.Time, after string) ([]ChangeRow, error) {
	var out []ChangeRow
	for m := since.UTC().Truncate(time.Minute); !m.After(time.Now().UTC()); m = m.Add(time.Minute) {
		rows, err := s.list(ctx, "PartitionKey eq "+odataQuote(changePartition(m))+" and RowKey gt "+odataQuote(after))
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// list reads the rows filter selects; none when the table does not exist yet.
func (s *Changes) list(ctx context.Context, filter string) ([]ChangeRow, error) {
	var out []ChangeRow
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
			out = append(out, ChangeRow{ID: e.RowKey, Change: &ch, Writer: e.Writer})
		}
	}
	return out, nil
}
