package queues

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// A stage message may carry the row its writer just wrote, with the row's ETag, so that the
// next stage's first delivery needs no read. Only a first delivery trusts it: a redelivery
// reads the row, which may have moved on. A write at a stale ETag fails (412) and changes
// nothing, so trusting a carried row is never wrong, only sometimes slower.

// MaxCarried bounds a message that carries its row: past it the row is left out and read
// instead (a queue message holds 64 KiB).
const MaxCarried = 48 << 10

// EnqueueCarrying enqueues full as JSON on work queue queue, on the shard of shard key key
// (the job or message key the message names: Route), or bare (the same message without its
// row) when full is over MaxCarried. With tracing on, the message carries its publish span's
// traceparent first (trace.go); full and bare must not have a traceparent field of their own.
func (c *Client) EnqueueCarrying(ctx context.Context, queue, key string, full, bare any, delay time.Duration) error {
	return c.EnqueueTraced(ctx, queue, key, delay, func(_ context.Context, tp string) (string, error) {
		b, err := json.Marshal(full)
		if err == nil && len(b) > MaxCarried {
			b, err = json.Marshal(bare)
		}
		if err != nil {
			return "", fmt.Errorf("encode %s message: %w", queue, err)
		}
		return string(withTraceparent(b, tp)), nil
	})
}

// Carried returns the row and ETag a message carries when m is its first delivery and it
// carries both; ok is false otherwise, and the row must be read.
func Carried[T any, E ~string](m *Message, row *T, etag E) (_ *T, _ E, ok bool) {
	if m.DequeueCount != 1 || row == nil || etag == "" {
		return nil, "", false
	}
	return row, etag, true
}

// DecodeJSON decodes m's body as a T.
func DecodeJSON[T any](m *Message) (T, error) {
	var v T
	err := json.Unmarshal(m.Body, &v)
	return v, err
}
