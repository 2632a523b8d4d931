package tables

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// MaxInlineSnapshot is the largest snapshot stored in the row itself. Azure Tables allow 64 KiB
// of UTF-16 per string property; 30,000 bytes of UTF-8 is at most 60,000 bytes of UTF-16. A
// larger snapshot belongs in a blob, and the row carries its name.
const MaxInlineSnapshot = 30_000

// ErrInvalidToken: a continuation token that this package did not hand out.
var ErrInvalidToken = errors.New("invalid continuation token")

// History is the EntityHistory table: one partition per entity timeline, newest row first.
type History struct {
	t *aztables.Client
}

// History returns the namespace's EntityHistory store.
func (c *Client) History() *History { return &History{t: c.table(platform.TableEntityHistory)} }

type historyEntity struct {
	PartitionKey            string
	RowKey                  string
	HistoryEventKey         string
	EventKey                string
	EventTypeId             int32
	EntityTypeId            int32
	EntityIdentity          string
	ActionTypeId            int32
	Action                  string
	Summary                 string `json:",omitempty"`
	BusinessUnitId          int64  `json:",string"`
	BusinessUnitIdType      string `json:"BusinessUnitId@odata.type"`
	CreatedOn               string
	CreatedOnType           string `json:"CreatedOn@odata.type"`
	ChangedFields           string `json:",omitempty"` // a JSON array of names
	NotificationEventTypeId int32  `json:",omitempty"`
	Snapshot                string `json:",omitempty"` // JSON text
	SnapshotBlob            string `json:",omitempty"`
	CorrelationId           string `json:",omitempty"`
	ActorId                 string `json:",omitempty"`
	Source                  string `json:",omitempty"`
}

// Put writes r with InsertOrReplace under its deterministic keys: writing the same occurrence
// twice leaves one row (history is the one artifact that may be overwritten: nothing references
// it and nothing is sent from it). A snapshot over MaxInlineSnapshot must be moved to a blob by
// the caller first.
func (h *History) Put(ctx context.Context, r *platform.HistoryRecord) error {
	if len(r.Snapshot) > MaxInlineSnapshot {
		return fmt.Errorf("put history %s: snapshot of %d bytes is over the %d inline limit", r.HistoryEventKey, len(r.Snapshot), MaxInlineSnapshot)
	}
	e := historyEntity{
		PartitionKey:            r.PartitionKey(),
		RowKey:                  r.RowKey(),
		HistoryEventKey:         r.HistoryEventKey,
		EventKey:                r.EventKey,
		EventTypeId:             int32(r.EventTypeID),
		EntityTypeId:            int32(r.EntityTypeID),
		EntityIdentity:          r.EntityIdentity,
		ActionTypeId:            int32(r.ActionTypeID),
		Action:                  r.Action,
		Summary:                 r.Summary,
		BusinessUnitId:          r.BusinessUnitID,
		BusinessUnitIdType:      "Edm.Int64",
		CreatedOn:               platform.FormatCreatedOn(r.CreatedOn),
		CreatedOnType:           "Edm.DateTime",
		Snapshot:                string(r.Snapshot),
		NotificationEventTypeId: int32(r.NotificationEventTypeID),
		SnapshotBlob:            r.SnapshotBlob,
		CorrelationId:           r.CorrelationID,
		ActorId:                 r.ActorID,
		Source:                  r.Source,
	}
	if len(r.ChangedFields) > 0 {
		b, _ := json.Marshal(r.ChangedFields)
		e.ChangedFields = string(b)
	}
	body, err := json.Marshal(&e)
	if err != nil {
		return fmt.Errorf("put history %s: %w", r.HistoryEventKey, err)
	}
	if _, err := upsertEntity(ctx, h.t, e.PartitionKey, e.RowKey, body, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace}); err != nil {
		return fmt.Errorf("put history %s: %w", r.HistoryEventKey, storage.Translate(err))
	}
	return nil
}

// Get reads one row of the timeline of (entityTypeID, identity); platform.ErrNotFound when
// there is none.
func (h *History) Get(ctx context.Context, entityTypeID int, identity string, createdOn time.Time, eventTypeID, actionTypeID int) (*platform.HistoryRecord, error) {
	resp, err := h.t.GetEntity(ctx, platform.HistoryPartitionKey(entityTypeID, identity), platform.HistoryRowKey(createdOn, eventTypeID, actionTypeID), nil)
	if err != nil {
		return nil, fmt.Errorf("read history row: %w", storage.Translate(err))
	}
	var e historyEntity
	if err := json.Unmarshal(resp.Value, &e); err != nil {
		return nil, err
	}
	rec, err := e.record()
	return &rec, err
}

// TimelineOptions pages through a timeline.
type TimelineOptions struct {
	Limit int    // rows per page; default 50, at most 1000
	After string // the continuation token of the previous page; empty for the first
	// MaxBytes, when set, bounds what a page reads, not only what it returns: rows are read
	// from storage a few at a time (about MaxBytes of them per request) and reading stops at
	// the row that brings the rows' stored size to MaxBytes; the page ends there, with fewer
	// than Limit rows, and its token continues after it. Rows Visible refuses count too.
	// 0: no byte bound.
	MaxBytes int
	// Visible, when set, says whether the reader may see a row of a business unit: a row it
	// refuses is skipped as it is read (not returned, not counted toward Limit), so a page
	// still has up to Limit rows the reader may see. A page reads at most max(4×Limit, 200)
	// refused rows; then it ends, with a token when rows remain. nil: every row.
	Visible func(businessUnitID int64) bool
}

// maxRowBytes is the most one timeline row takes in a response: an inline snapshot is a
// string property of at most 64 KiB.
const maxRowBytes = 64 << 10

// Timeline is one page of an entity's timeline, newest first, and the token for the next page
// ("" when this is the last).
func (h *History) Timeline(ctx context.Context, entityTypeID int, identity string, o *TimelineOptions) ([]platform.HistoryRecord, string, error) {
	var opts TimelineOptions
	if o != nil {
		opts = *o
	}
	if opts.Limit <= 0 {
		opts.Limit = 50
	}
	opts.Limit = min(opts.Limit, 1000)
	last := "" // the RowKey of the last row read
	if opts.After != "" {
		after, err := base64.RawURLEncoding.DecodeString(opts.After)
		if err != nil || len(after) == 0 {
			return nil, "", ErrInvalidToken
		}
		last = string(after)
	}
	p := timelinePage{opts: opts, refusable: max(4*opts.Limit, 200)}
	partition := "PartitionKey eq " + odataQuote(platform.HistoryPartitionKey(entityTypeID, identity))
	// Each request starts after the last row read and asks for what the page may still need,
	// so a page never reads far past its end.
	for top := 0; ; {
		top = p.top(top)
		filter := partition
		if last != "" {
			filter += " and RowKey gt " + odataQuote(last)
		}
		pager := h.t.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Top: to.Ptr(int32(top))})
		read := 0
		for read == 0 && pager.More() { // a page of no rows may still have a continuation
			page, err := pager.NextPage(ctx)
			if err != nil {
				if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
					return nil, "", nil // no worker has written history in this namespace yet
				}
				return nil, "", fmt.Errorf("read timeline %d:%s: %w", entityTypeID, identity, err)
			}
			for _, raw := range page.Entities {
				read++
				var e historyEntity
				if err := json.Unmarshal(raw, &e); err != nil {
					return nil, "", fmt.Errorf("read timeline %d:%s: decode row: %w", entityTypeID, identity, err)
				}
				done, err := p.take(&e, len(raw))
				if err != nil {
					return nil, "", fmt.Errorf("read timeline %d:%s: row %s: %w", entityTypeID, identity, e.RowKey, err)
				}
				if done {
					return p.rows, base64.RawURLEncoding.EncodeToString([]byte(p.end)), nil
				}
				last = e.RowKey
			}
		}
		if read == 0 || !pager.More() {
			return p.rows, "", nil // the timeline ends within this page
		}
	}
}

// timelinePage is one page of a timeline as its rows are read.
type timelinePage struct {
	opts      TimelineOptions
	refusable int // how many rows Visible may refuse before the page ends
	rows      []platform.HistoryRecord
	end       string // the RowKey of the last row read that belongs to the page
	refused   int
	size      int  // the stored size of the rows read
	spent     bool // the byte or refusal budget is spent: one more row only tells there is more
}

// take reads row e of stored size n into the page. done: e is not the page's but the first of
// the next one, so the page ends, after p.end.
func (p *timelinePage) take(e *historyEntity, n int) (done bool, err error) {
	visible := p.opts.Visible == nil || p.opts.Visible(e.BusinessUnitId)
	// A full page reads on past rows it may not show to its next visible row: the next page
	// starts there, and a page whose rest is all refused gets no token to an empty page.
	if p.spent || visible && len(p.rows) == p.opts.Limit {
		return true, nil
	}
	if visible {
		rec, err := e.record()
		if err != nil {
			return false, err
		}
		p.rows = append(p.rows, rec)
	} else {
		p.refused++
		p.spent = p.refused >= p.refusable
	}
	p.end = e.RowKey
	p.size += n
	p.spent = p.spent || p.opts.MaxBytes > 0 && p.size >= p.opts.MaxBytes
	return false, nil
}

// top is how many rows the next request asks for, after one that asked for prev (0: none
// yet): what the page may still take and one more (to know whether there is a next page),
// growing from request to request while rows are refused, within the byte budget.
func (p *timelinePage) top(prev int) int {
	if p.spent {
		return 1
	}
	want := p.opts.Limit - len(p.rows) + 1
	if p.opts.Visible != nil && prev > 0 {
		want = min(max(want, 2*prev), want+p.refusable-p.refused)
	}
	if p.opts.MaxBytes > 0 {
		want = min(want, max(1, (p.opts.MaxBytes-p.size)/maxRowBytes))
	}
	return min(want, 1000)
}

// TimelineAfter is the continuation token of a page that ends with r: the next page starts
// with the row after it.
func TimelineAfter(r *platform.HistoryRecord) string {
	return base64.RawURLEncoding.EncodeToString([]byte(r.RowKey()))
}

func (e *historyEntity) record() (platform.HistoryRecord, error) {
	createdOn, err := time.Parse(time.RFC3339Nano, e.CreatedOn)
	if err != nil {
		return platform.HistoryRecord{}, fmt.Errorf("CreatedOn: %w", err)
	}
	r := platform.HistoryRecord{
		HistoryEventKey:         e.HistoryEventKey,
		EventKey:                e.EventKey,
		EventTypeID:             int(e.EventTypeId),
		EntityTypeID:            int(e.EntityTypeId),
		EntityIdentity:          e.EntityIdentity,
		ActionTypeID:            int(e.ActionTypeId),
		Action:                  e.Action,
		Summary:                 e.Summary,
		BusinessUnitID:          e.BusinessUnitId,
		CreatedOn:               createdOn.UTC(),
		SnapshotBlob:            e.SnapshotBlob,
		NotificationEventTypeID: int(e.NotificationEventTypeId),
		CorrelationID:           e.CorrelationId,
		ActorID:                 e.ActorId,
		Source:                  e.Source,
	}
	if e.Snapshot != "" {
		r.Snapshot = json.RawMessage(e.Snapshot)
	}
	if e.ChangedFields != "" {
		if err := json.Unmarshal([]byte(e.ChangedFields), &r.ChangedFields); err != nil {
			return platform.HistoryRecord{}, fmt.Errorf("ChangedFields: %w", err)
		}
	}
	return r, nil
}
