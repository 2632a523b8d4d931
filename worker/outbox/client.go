package outbox

import (
	"context"
	"errors"
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
	onIntent func(transition string) // Service.OnIntent; nil: nobody is told
}

// The transitions of an intent that Service.OnIntent is told of.
const (
	TransitionConfirmed    = "confirmed"    // by the service (ConfirmIntent, AppendWithEntities)
	TransitionDiscarded    = "discarded"    // by the service (DiscardIntent)
	TransitionMaterialized = "materialized" // its event published by the materializer
	TransitionParked       = "parked"       // never publishable: left for support
	TransitionSettled      = "settled"      // stale, confirmed or discarded by the reconciler
)

// intent tells the OnIntent hook of a transition this process made.
func (c *Client) intent(transition string) {
	if c.onIntent != nil {
		c.onIntent(transition)
	}
}

// NewClient returns the outbox client of the namespace t and b reach.
func NewClient(t *tables.Client, b *blobs.Client) *Client {
	return &Client{store: t.Outbox(), eventLog: t.EventLog(), blobs: b}
}

// AppendIntent reserves an event before its mutation (pre-reservation): the intent is Pending
// under a new ULID SourceKey. Confirm it once the mutation committed, discard it if it did
// not; a service that dies in between is covered by the reconciler, which asks the source row
// (or the source's probe) after StaleAfter. An event whose payload the worker would refuse
// (over MaxPayloadBytes, or a payloadBlob it would not read) is refused here, with
// platform.ErrInvalidInput, instead of being poisoned once confirmed.
func (c *Client) AppendIntent(ctx context.Context, ev *platform.EntityEvent, source *platform.SourceRow) (*platform.OutboxIntent, error) {
	if source != nil && (source.Table == "" || source.PartitionKey == "" && source.RowKey == "") {
		return nil, fmt.Errorf("%w: sourceRow: want table, partitionKey and rowKey", platform.ErrInvalidInput)
	}
	ev, err := c.offload(ctx, ev)
	if err != nil {
		return nil, err
	}
	return c.store.Append(ctx, ev, source)
}

// offload refuses an event whose payload the worker would refuse, so that a confirmed intent
// is never poisoned later: an inline payload over MaxPayloadBytes (blobs.ErrTooLarge), or a
// payloadBlob that is not the event's business unit's, is over the limit, does not match its
// hash or is missing (platform.ErrInvalidInput). A large inline payload goes to the
// claim-check container.
func (c *Client) offload(ctx context.Context, ev *platform.EntityEvent) (*platform.EntityEvent, error) {
	if ev.PayloadBlob != "" {
		if _, err := c.blobs.EventPayload(ctx, ev.BusinessUnitID, ev.PayloadBlob); err != nil {
			switch {
			case errors.Is(err, platform.ErrNotFound):
				return nil, fmt.Errorf("%w: payloadBlob %q not found in %s", platform.ErrInvalidInput, ev.PayloadBlob, platform.ContainerEventPayloads)
			case errors.Is(err, platform.ErrInvalidInput):
				return nil, fmt.Errorf("payloadBlob: %w", err)
			}
			return nil, fmt.Errorf("check payloadBlob: %w", err)
		}
		return ev, nil
	}
	return c.blobs.OffloadEvent(ctx, ev, tables.MaxInlineSnapshot)
}

// AppendWithEntities is the table-transactional outbox (tables.Outbox.AppendWithEntities),
// with the payload checked as AppendIntent does and a large one moved to the claim-check
// container first.
func (c *Client) AppendWithEntities(ctx context.Context, table, partitionKey string, actions []tables.EntityAction, ev *platform.EntityEvent) (*platform.OutboxIntent, error) {
	ev, err := c.offload(ctx, ev)
	if err != nil {
		return nil, err
	}
	in, err := c.store.AppendWithEntities(ctx, table, partitionKey, actions, ev)
	if err == nil {
		c.intent(TransitionConfirmed) // the transaction committed, and confirmed it
	}
	return in, err
}

// ConfirmIntent releases an intent's event to the materializer.
func (c *Client) ConfirmIntent(ctx context.Context, sourceKey string) (*platform.OutboxIntent, error) {
	return c.move(ctx, sourceKey, platform.IntentConfirmed, "confirmed by the service", TransitionConfirmed)
}

// DiscardIntent drops an intent whose mutation did not commit: its event is never emitted.
func (c *Client) DiscardIntent(ctx context.Context, sourceKey string) (*platform.OutboxIntent, error) {
	return c.move(ctx, sourceKey, platform.IntentDiscarded, "discarded by the service", TransitionDiscarded)
}

// move moves intent sourceKey to state to, and tells of transition when this call moved it
// (a repeated confirmation is not a second one).
func (c *Client) move(ctx context.Context, sourceKey string, to platform.IntentState, reason, transition string) (*platform.OutboxIntent, error) {
	in, moved, err := c.store.Move(ctx, sourceKey, to, reason)
	if moved {
		c.intent(transition)
	}
	return in, err
}

// Store is the store behind the intents, for reads.
func (c *Client) Store() *tables.Outbox { return c.store }

// EventLog is PlatformEventLog.
func (c *Client) EventLog() *tables.EventLog { return c.eventLog }
