package blobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/platform/platform"
)

// The claim-check: content too large to travel where it is going (a queue message, a table
// row) is stored once in container event-payloads, named by its hash, and only the name
// travels. Every place that offloads or resolves content goes through these.
//
// An event's payload is named platform.PayloadBlobName (scoped to its business unit), is at
// most MaxPayloadBytes, and is read back bounded and checked against the hash in its name:
// a reference can neither borrow another tenant's blob nor make the worker read more than
// the limit into memory.

// ErrTooLarge: a payload over the client's MaxPayloadBytes. It is an input error.
var ErrTooLarge = fmt.Errorf("%w: payload too large", platform.ErrInvalidInput)

// ErrHashMismatch: a claim-checked blob whose content is not what its name's hash says.
var ErrHashMismatch = fmt.Errorf("%w: blob content does not match the hash in its name", platform.ErrInvalidInput)

// SetMaxPayloadBytes sets the largest event payload published or read (n <= 0:
// platform.DefaultMaxPayloadBytes). Set it before the client is used.
func (c *Client) SetMaxPayloadBytes(n int) { c.maxPayload.Store(int64(n)) }

// MaxPayloadBytes is the largest event payload this client publishes or reads.
func (c *Client) MaxPayloadBytes() int {
	if n := c.maxPayload.Load(); n > 0 {
		return int(n)
	}
	return platform.DefaultMaxPayloadBytes
}

// CheckPayloadSize refuses a payload of n bytes over MaxPayloadBytes, with ErrTooLarge.
func (c *Client) CheckPayloadSize(n int) error {
	if limit := c.MaxPayloadBytes(); n > limit {
		return fmt.Errorf("%w: %d bytes, over the %d-byte limit (PLATFORM_MAX_PAYLOAD_BYTES)", ErrTooLarge, n, limit)
	}
	return nil
}

// PutEventPayload stores payload as the claim-check of an event of business unit
// businessUnitID and returns its name (platform.PayloadBlobName). Publishing the same payload
// twice writes one blob.
func (c *Client) PutEventPayload(ctx context.Context, businessUnitID int64, payload []byte) (string, error) {
	if err := c.CheckPayloadSize(len(payload)); err != nil {
		return "", err
	}
	name := platform.PayloadBlobName(businessUnitID, payload)
	return name, c.Put(ctx, platform.ContainerEventPayloads, name, payload)
}

// EventPayload reads the claim-checked payload name of an event of business unit
// businessUnitID: refused unless name is that business unit's (platform.ParsePayloadBlobName),
// read bounded (ErrTooLarge past MaxPayloadBytes, having read at most one byte more), and
// checked against the hash in its name (ErrHashMismatch). A missing blob is
// platform.ErrNotFound.
func (c *Client) EventPayload(ctx context.Context, businessUnitID int64, name string) ([]byte, error) {
	sum, err := platform.ParsePayloadBlobName(businessUnitID, name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", platform.ErrInvalidInput, err)
	}
	return c.readChecked(ctx, name, sum)
}

// GetPayload reads a claim-checked payload by its name, bounded and hash-checked as
// EventPayload does, whichever business unit it belongs to (tests, tools).
func (c *Client) GetPayload(ctx context.Context, name string) ([]byte, error) {
	var bu int64
	if _, err := fmt.Sscanf(name, "bu-%d/", &bu); err != nil {
		return nil, fmt.Errorf("%w: %q is not a claim-check name", platform.ErrInvalidInput, name)
	}
	return c.EventPayload(ctx, bu, name)
}

func (c *Client) readChecked(ctx context.Context, name string, sum [sha256.Size]byte) ([]byte, error) {
	limit := c.MaxPayloadBytes()
	data, size, err := c.GetBounded(ctx, platform.ContainerEventPayloads, name, int64(limit))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%w: blob %s of %d bytes, over the %d-byte limit (PLATFORM_MAX_PAYLOAD_BYTES)", ErrTooLarge, name, size, limit)
	}
	if sha256.Sum256(data) != sum {
		return nil, fmt.Errorf("%w: blob %s", ErrHashMismatch, name)
	}
	return data, nil
}

// RescopeEventPayload returns ev with a payloadBlob of an older version's unscoped name
// (platform.ParseLegacyPayloadBlobName, accepted in the worker's own stored rows only) stored
// again under its business unit's scoped name, so that the event can travel on the queue,
// which accepts scoped names only; any other ev is returned as it is. The old blob is read
// bounded and checked against the hash in its name, as EventPayload reads: a refused one
// (missing, over the limit, not matching) is an error IsPayloadRefused reports. ev is not
// changed.
func (c *Client) RescopeEventPayload(ctx context.Context, ev *platform.EntityEvent) (*platform.EntityEvent, error) {
	if ev.PayloadBlob == "" {
		return ev, nil
	}
	if _, err := platform.ParsePayloadBlobName(ev.BusinessUnitID, ev.PayloadBlob); err == nil {
		return ev, nil
	}
	sum, err := platform.ParseLegacyPayloadBlobName(ev.PayloadBlob)
	if err != nil {
		return ev, fmt.Errorf("%w: %w", platform.ErrInvalidInput, err)
	}
	data, err := c.readChecked(ctx, ev.PayloadBlob, sum)
	if err != nil {
		return ev, fmt.Errorf("claim-check %s of an older version: %w", ev.PayloadBlob, err)
	}
	name, err := c.PutEventPayload(ctx, ev.BusinessUnitID, data)
	if err != nil {
		return ev, fmt.Errorf("store %s under its business unit's name: %w", ev.PayloadBlob, err)
	}
	scoped := *ev
	scoped.PayloadBlob = name
	return &scoped, nil
}

// Offload keeps data inline when it is at most limit bytes, and otherwise stores it and
// returns its name instead (inline is then nil). The name is content-addressed and unscoped:
// for the worker's own rows (job event data, message bodies), never for an event's payload.
func (c *Client) Offload(ctx context.Context, data []byte, limit int) (inline []byte, name string, err error) {
	if len(data) <= limit {
		return data, "", nil
	}
	sum := sha256.Sum256(data)
	name = "sha256-" + hex.EncodeToString(sum[:]) + ".json"
	if err = c.Put(ctx, platform.ContainerEventPayloads, name, data); err != nil {
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
	return c.Get(ctx, platform.ContainerEventPayloads, name)
}

// OffloadEvent returns ev with its payload offloaded (payloadBlob set to its business unit's
// name, payload empty) when the payload is over limit bytes, else ev itself. A payload over
// MaxPayloadBytes is ErrTooLarge. ev is not changed.
func (c *Client) OffloadEvent(ctx context.Context, ev *platform.EntityEvent, limit int) (*platform.EntityEvent, error) {
	if err := c.CheckPayloadSize(len(ev.Payload)); err != nil {
		return ev, err
	}
	if len(ev.Payload) <= limit {
		return ev, nil
	}
	name, err := c.PutEventPayload(ctx, ev.BusinessUnitID, ev.Payload)
	if err != nil {
		return ev, err
	}
	slim := *ev
	slim.Payload, slim.PayloadBlob = nil, name
	return &slim, nil
}

// IsPayloadRefused reports whether err, from EventPayload, is the reference's fault (no retry
// can fix it) rather than storage's.
func IsPayloadRefused(err error) bool {
	return errors.Is(err, platform.ErrInvalidInput) || errors.Is(err, platform.ErrNotFound)
}
