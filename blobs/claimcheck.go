package blobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/platform/platform"
)

// The claim-check: content too large to travel where it is going (a queue message, a table
// row) is stored once in container event-payloads, named by its hash, and only the name
// travels. Every place that offloads or resolves content goes through these.

// PutPayload stores an event payload in the claim-check container and returns its name. The
// name is the content's hash, so publishing the same payload twice writes one blob, and a name
// can never point at other content.
func (c *Client) PutPayload(ctx context.Context, payload []byte) (string, error) {
	sum := sha256.Sum256(payload)
	name := "sha256-" + hex.EncodeToString(sum[:]) + ".json"
	return name, c.Put(ctx, platform.ContainerEventPayloads, name, payload)
}

// GetPayload reads a claim-checked payload by the name an event's payloadBlob carries.
func (c *Client) GetPayload(ctx context.Context, name string) ([]byte, error) {
	return c.Get(ctx, platform.ContainerEventPayloads, name)
}

// Offload keeps data inline when it is at most limit bytes, and otherwise stores it and
// returns its name instead (inline is then nil).
func (c *Client) Offload(ctx context.Context, data []byte, limit int) (inline []byte, name string, err error) {
	if len(data) <= limit {
		return data, "", nil
	}
	if name, err = c.PutPayload(ctx, data); err != nil {
		return nil, "", err
	}
	return nil, name, nil
}

// Resolve is the inverse of Offload: the content of blob name when inline is empty and name is
// set, else inline. A blob that is not there is platform.ErrNotFound.
func (c *Client) Resolve(ctx context.Context, inline []byte, name string) ([]byte, error) {
	if len(inline) > 0 || name == "" {
		return inline, nil
	}
	return c.GetPayload(ctx, name)
}

// OffloadEvent returns ev with its payload offloaded (payloadBlob set, payload empty) when the
// payload is over limit bytes, else ev itself. ev is not changed.
func (c *Client) OffloadEvent(ctx context.Context, ev *platform.EntityEvent, limit int) (*platform.EntityEvent, error) {
	inline, name, err := c.Offload(ctx, ev.Payload, limit)
	if err != nil || name == "" {
		return ev, err
	}
	slim := *ev
	slim.Payload, slim.PayloadBlob = inline, name
	return &slim, nil
}
