package queues

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// PoisonMessage is one message of a poison queue, as peeked.
type PoisonMessage struct {
	// ID is the message's id in the poison queue: RedriveOne takes it.
	ID string
	// InsertedAt is when it was put in the poison queue.
	InsertedAt time.Time
	// Record is what it says. IsRecord is false for a message that is not a PoisonRecord (put
	// there by hand, or by another tool): Record.Body is then its whole text.
	Record   PoisonRecord
	IsRecord bool
}

// PeekPoison returns up to 32 of the visible messages of queue's poison twin (a physical queue:
// a shard's name with shards; named with or without the -poison suffix), oldest first, without
// taking them: one request. A missing queue has none.
func (c *Client) PeekPoison(ctx context.Context, queue string) ([]PoisonMessage, error) {
	name := platform.PoisonQueue(strings.TrimSuffix(queue, platform.PoisonSuffix))
	resp, err := c.queue(name).PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr[int32](32)})
	if err != nil {
		if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("peek %s: %w", c.ns.Queue(name), err)
	}
	out := make([]PoisonMessage, 0, len(resp.Messages))
	for _, m := range resp.Messages {
		if m == nil || m.MessageID == nil {
			continue
		}
		p := PoisonMessage{ID: *m.MessageID}
		if m.InsertionTime != nil {
			p.InsertedAt = m.InsertionTime.UTC()
		}
		p.Record, p.IsRecord = DecodePoison(deref(m.MessageText))
		out = append(out, p)
	}
	return out, nil
}

// maxRedriveScan bounds how many poison messages RedriveOne looks at for the one it moves.
const maxRedriveScan = 1024

// redriveHide is how long RedriveOne hides the messages it looks at: should it stop before it
// shows them again, they reappear by themselves after it.
const redriveHide = 30 * time.Second

// RedriveOne moves message id of queue's poison twin back to queue, as Redrive moves each
// (a work queue's logical name looks in each poison twin of it that exists, in turn):
// its original body, enqueued before the poison copy is deleted, and not at all for a record
// the consumer did not write (a *LeftError says why). A queue has no lookup by id, so it takes
// the poison messages in batches, hidden for a short while, until it meets id, and then makes
// the others it took visible again at once (best effort: one it could not show again
// reappears after 30 s). It looks at no more than the first 1024; platform.ErrNotFound when id
// is not among them.
func (c *Client) RedriveOne(ctx context.Context, queue, id string) error {
	queue = strings.TrimSuffix(queue, platform.PoisonSuffix)
	targets, err := c.redriveTargets(ctx, queue)
	if err != nil {
		return fmt.Errorf("redrive %s message %s: %w", c.ns.Queue(queue), id, err)
	}
	notFound := fmt.Errorf("redrive %s: message %s is not in its poison queue: %w", c.ns.Queue(queue), id, platform.ErrNotFound)
	for _, q := range targets {
		err := c.redriveOne(ctx, q, id)
		if !errors.Is(err, platform.ErrNotFound) {
			return err
		}
		notFound = err
	}
	if len(targets) > 1 {
		return fmt.Errorf("redrive %s: message %s is in none of its %d poison queues: %w", c.ns.Queue(queue), id, len(targets), platform.ErrNotFound)
	}
	return notFound
}

// redriveOne is RedriveOne of one physical queue.
func (c *Client) redriveOne(ctx context.Context, queue, id string) error {
	poison := c.queue(platform.PoisonQueue(queue))
	type taken struct{ id, receipt, text string }
	var others []taken
	defer func() {
		// Shown again even when ctx ended: hidden, they would wait out redriveHide.
		release, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, o := range others {
			_, _ = poison.UpdateMessage(release, o.id, o.receipt, o.text, &azqueue.UpdateMessageOptions{VisibilityTimeout: to.Ptr[int32](0)})
		}
	}()
	seen := 0
	for seen < maxRedriveScan {
		resp, err := poison.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{
			NumberOfMessages: to.Ptr[int32](32), VisibilityTimeout: to.Ptr(int32(redriveHide / time.Second)),
		})
		if err != nil {
			return fmt.Errorf("redrive %s message %s: %w", c.ns.Queue(queue), id, storage.Translate(err))
		}
		if len(resp.Messages) == 0 {
			break
		}
		var found *taken
		for _, m := range resp.Messages {
			seen++
			t := taken{*m.MessageID, *m.PopReceipt, deref(m.MessageText)}
			if t.id == id {
				found = &t
			} else {
				others = append(others, t)
			}
		}
		if found != nil {
			body, why, err := c.poisonBody(ctx, queue, id, found.text)
			if err == nil && why != "" {
				err = &LeftError{Queue: c.ns.Queue(queue), Why: []string{why}}
			}
			if err != nil {
				others = append(others, *found)
				return err
			}
			return c.moveBack(ctx, queue, id, found.receipt, body)
		}
	}
	where := "in its poison queue"
	if seen >= maxRedriveScan {
		where = fmt.Sprintf("among the first %d of its poison queue", maxRedriveScan)
	}
	return fmt.Errorf("redrive %s: message %s is not %s: %w", c.ns.Queue(queue), id, where, platform.ErrNotFound)
}
