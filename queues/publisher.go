package queues

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/platform/platform"
)

// Publish enqueues ev on entity-events, on the shard of its entity (ev.ShardKey, Route), and
// returns its event key. When the message would be over the queue's limit, the payload goes to
// blob container event-payloads first (named platform.PayloadBlobName: its business unit and
// content hash) and the message carries payloadBlob instead: the claim-check. The blob is
// written before the message, so no consumer ever sees a payloadBlob that is not there yet. A payload over the blob client's
// MaxPayloadBytes is refused (blobs.ErrTooLarge, an input error) and nothing is written. With
// tracing on, the message carries its publish span's traceparent (trace.go): never part of the
// event, its key or its content.
func (c *Client) Publish(ctx context.Context, ev *platform.EntityEvent) (string, error) {
	err := c.EnqueueTraced(ctx, platform.QueueEntityEvents, ev.ShardKey(), 0, func(ctx context.Context, tp string) (string, error) {
		return c.encodeForQueue(ctx, ev, tp)
	})
	if err != nil {
		return "", fmt.Errorf("publish %s: %w", ev.Key(), err)
	}
	return ev.Key(), nil
}

func (c *Client) encodeForQueue(ctx context.Context, ev *platform.EntityEvent, traceparent string) (string, error) {
	if err := c.blobs.CheckPayloadSize(len(ev.Payload)); err != nil {
		return "", err
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return "", err
	}
	if b = withTraceparent(b, traceparent); len(b) <= MaxMessageBytes || len(ev.Payload) == 0 {
		return string(b), nil
	}
	slim, err := c.blobs.OffloadEvent(ctx, ev, 0)
	if err != nil {
		return "", err
	}
	if b, err = json.Marshal(slim); err != nil {
		return "", err
	}
	return string(withTraceparent(b, traceparent)), nil
}
