package outbox

import (
	"context"
	"fmt"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/tables"
)

// Client is the service-facing side of the outbox: what a service (or the CLI) calls to
// reserve, confirm and discard events, without running a worker.
type Client struct {
	store    *tables.Outbox
	eventLog *tables.EventLog
	blobs    *blobs.Client
}

// NewClient returns the outbox client of the namespace t and b reach.
func NewClient(t *tables.Client, b *blobs.Client) *Client {
	return &Client{store: t.Outbox(), eventLog: t.EventLog(), blobs: b}
}

// AppendIntent reserves an event before its mutation (pre-reservation): the intent is Pending
// under a new ULID SourceKey. Confirm it once the mutation committed, discard it if it did
// not; a service that dies in between is covered by the reconciler, which asks the source row
// (or the source's probe) after StaleAfter.
func (c *Client) AppendIntent(ctx context.Context, ev *platform.EntityEvent, source *platform.SourceRow) (*platform.OutboxIntent, error) {
	if source != nil && (source.Table == "" || source.PartitionKey == "" && source.RowKey == "") {
		return nil, fmt.Errorf("%w: sourceRow: want table, partitionKey and rowKey", platform.ErrInvalidInput)
	}
	ev, err := c.blobs.OffloadEvent(ctx, ev, tables.MaxInlineSnapshot)
	if err != nil {
		return nil, err
	}
	return c.store.Append(ctx, ev, source)
}

// AppendWithEntities is the table-transactional outbox (tables.Outbox.AppendWithEntities),
// with a large payload moved to the claim-check container first.
func (c *Client) AppendWithEntities(ctx context.Context, table, partitionKey string, actions []tables.EntityAction, ev *platform.EntityEvent) (*platform.OutboxIntent, error) {
	ev, err := c.blobs.OffloadEvent(ctx, ev, tables.MaxInlineSnapshot)
	if err != nil {
		return nil, err
	}
	return c.store.AppendWithEntities(ctx, table, partitionKey, actions, ev)
}

// ConfirmIntent releases an intent's event to the materializer.
func (c *Client) ConfirmIntent(ctx context.Context, sourceKey string) (*platform.OutboxIntent, error) {
	return c.store.Move(ctx, sourceKey, platform.IntentConfirmed, "confirmed by the service")
}

// DiscardIntent drops an intent whose mutation did not commit: its event is never emitted.
func (c *Client) DiscardIntent(ctx context.Context, sourceKey string) (*platform.OutboxIntent, error) {
	return c.store.Move(ctx, sourceKey, platform.IntentDiscarded, "discarded by the service")
}

// Store is the store behind the intents, for reads.
func (c *Client) Store() *tables.Outbox { return c.store }

// EventLog is PlatformEventLog.
func (c *Client) EventLog() *tables.EventLog { return c.eventLog }
