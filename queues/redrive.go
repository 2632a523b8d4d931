package queues

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// Redrive moves the messages of queue's poison twin back to queue, each with its original body,
// and returns how many it moved. queue may be named with or without the -poison suffix. A work
// queue's logical name ("entity-events") redrives every poison twin of it that exists (each
// shard's, and any of a shard count before), each back to the queue it came from; a shard's
// name ("entity-events-3") that shard's only. Only
// messages poisoned before Redrive started are moved, so a message that fails again while it
// runs is not looped back forever. Both sides of that comparison are the service's clock (this
// machine's may be behind or ahead): a message inserted after the second of Redrive's first
// request is left, and so is one inserted in that second with the body of a message it moved
// (insertion times are to the second, and a worker may poison a moved message again within
// it). Each message is enqueued before it is deleted from poison: a crash in between leaves a
// copy in both, which is harmless because every effect is keyed. A record whose bodyBlob is
// not where the consumer puts poison bodies of this queue, or is larger than a message, is not
// the consumer's (anyone who can enqueue can write a poison queue): it is left where it is,
// and Redrive's error, a *LeftError, names it once the rest are moved.
func (c *Client) Redrive(ctx context.Context, queue string) (int, error) {
	queue = strings.TrimSuffix(queue, platform.PoisonSuffix)
	targets, err := c.redriveTargets(ctx, queue)
	if err != nil {
		return 0, fmt.Errorf("redrive %s: %w", c.ns.Queue(queue), err)
	}
	moved := 0
	var left []string
	for _, q := range targets {
		n, err := c.redrive(ctx, q)
		moved += n
		var l *LeftError
		switch {
		case errors.As(err, &l) && len(targets) > 1:
			for _, why := range l.Why {
				left = append(left, q+": "+why)
			}
		case errors.As(err, &l):
			left = append(left, l.Why...)
		case err != nil:
			return moved, err
		}
	}
	if len(left) > 0 {
		slices.Sort(left)
		return moved, &LeftError{Queue: c.ns.Queue(queue), Why: left}
	}
	return moved, nil
}

// redriveTargets are the physical queues whose poison Redrive of queue moves: for a work
// queue's logical name, each of its queues whose poison twin exists (one listing); for anything
// else, queue itself.
func (c *Client) redriveTargets(ctx context.Context, queue string) ([]string, error) {
	work, shard, ok := platform.SplitQueue(queue)
	if !ok || shard >= 0 {
		return []string{queue}, nil
	}
	found, err := c.listWork(ctx, c.ns.Queue(work))
	if err != nil {
		return nil, err
	}
	return found[work].poison, nil
}

// redrive is Redrive of one physical queue.
func (c *Client) redrive(ctx context.Context, queue string) (int, error) {
	poison := c.queue(platform.PoisonQueue(queue))
	var first time.Time                // the service's time at the first dequeue, to the second
	movedBodies := map[[32]byte]bool{} // the bodies moved
	moved := 0
	left := map[string]string{} // message id → why it was left
	for {
		resp, err := poison.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{
			NumberOfMessages: to.Ptr[int32](32), VisibilityTimeout: to.Ptr[int32](60),
		})
		if err != nil {
			return moved, fmt.Errorf("redrive %s: %w", c.ns.Queue(queue), storage.Translate(err))
		}
		if first.IsZero() {
			first = time.Now() // no Date in the answer (the service always sends one): this clock
			if resp.Date != nil {
				first = *resp.Date
			}
			first = first.Truncate(time.Second)
		}
		older := 0
		for _, m := range resp.Messages {
			inserted := time.Time{}
			if m.InsertionTime != nil {
				inserted = *m.InsertionTime
			}
			if inserted.After(first) {
				// Poisoned again while we run: leave it (visible again in 60s) for a later redrive.
				continue
			}
			body, why, err := c.poisonBody(ctx, queue, *m.MessageID, deref(m.MessageText))
			if err != nil {
				return moved, err
			}
			sum := sha256.Sum256([]byte(body))
			if why == "" && movedBodies[sum] && !inserted.Before(first) {
				continue // a message moved in this run, poisoned again already: left, as above
			}
			older++
			if why != "" {
				left[*m.MessageID] = why
				continue
			}
			if err := c.moveBack(ctx, queue, *m.MessageID, *m.PopReceipt, body); err != nil {
				return moved, err
			}
			movedBodies[sum] = true
			moved++
		}
		if older == 0 {
			if len(left) > 0 {
				return moved, &LeftError{Queue: c.ns.Queue(queue), Why: slices.Sorted(maps.Values(left))}
			}
			return moved, nil
		}
	}
}

// LeftError is Redrive's and RedriveOne's refusal of poison records the consumer did not write
// (anyone who can enqueue can write a poison queue): they are left where they are. It is not
// a failure of storage: asking again gives the same answer until someone removes them.
type LeftError struct {
	Queue string   // the poison queue's work queue, namespaced
	Why   []string // per message left: "message ID: why", sorted
}

func (e *LeftError) Error() string {
	return fmt.Sprintf("redrive %s: %d message(s) left in poison, not written by the worker: %s", e.Queue, len(e.Why), strings.Join(e.Why, "; "))
}

// poisonBody is the original body of poison record text (poison message id of queue); or, for
// a record not written like the consumer's (its bodyBlob elsewhere, or too large), why it is
// not moved.
func (c *Client) poisonBody(ctx context.Context, queue, id, text string) (body, why string, err error) {
	rec, _ := DecodePoison(text)
	if rec.BodyBlob == "" {
		return rec.Body, "", nil
	}
	if !strings.HasPrefix(rec.BodyBlob, poisonBodyPrefix(queue)) {
		return "", fmt.Sprintf("message %s: bodyBlob %.100q is not a poison body of this queue", id, rec.BodyBlob), nil
	}
	b, _, err := c.blobs.GetBounded(ctx, platform.ContainerEventPayloads, rec.BodyBlob, MaxMessageBytes)
	if err != nil {
		return "", "", fmt.Errorf("redrive %s: message %s: %w", c.ns.Queue(queue), id, err)
	}
	if len(b) > MaxMessageBytes {
		return "", fmt.Sprintf("message %s: bodyBlob %s is larger than a message", id, rec.BodyBlob), nil
	}
	return string(b), "", nil
}

// moveBack enqueues body on queue, then deletes poison message id (dequeued with receipt).
func (c *Client) moveBack(ctx context.Context, queue, id, receipt, body string) error {
	if err := c.Enqueue(ctx, queue, body, 0); err != nil {
		return fmt.Errorf("redrive %s: %w", c.ns.Queue(queue), err)
	}
	if _, err := c.queue(platform.PoisonQueue(queue)).DeleteMessage(ctx, id, receipt, nil); err != nil {
		return fmt.Errorf("redrive %s: delete moved message %s: %w", c.ns.Queue(queue), id, storage.Translate(err))
	}
	return nil
}

// Peek returns up to 32 messages of queue name without taking them (for tests and support).
func (c *Client) Peek(ctx context.Context, name string) ([]string, error) {
	resp, err := c.queue(name).PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr[int32](32)})
	if err != nil {
		return nil, fmt.Errorf("peek %s: %w", c.ns.Queue(name), storage.Translate(err))
	}
	var out []string
	for _, m := range resp.Messages {
		out = append(out, deref(m.MessageText))
	}
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// poisonBodyPrefix is where the consumer stores the bodies of queue's poison records too large
// for a message (inflight.go): poison/{queue}/{messageId}.
func poisonBodyPrefix(queue string) string { return "poison/" + queue + "/" }
