package queues

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// Sharded work queues (platform.QueueShards): the client sends a work queue's messages to its
// current shards, chosen by the message's shard key; a consumer reads every physical queue of
// its work queue, the current shards and any other it finds in the namespace (the unsharded
// name after a change to N > 1, shards of an earlier N), so that changing the shard count
// loses nothing. Names are physical ("entity-events-3") or logical ("entity-events") as each
// method says; Enqueue, Peek, ApproximateCount and OldestAge take physical names.

// SetShards sets how many shards each work queue has (PLATFORM_QUEUE_SHARDS): 1 (the default)
// sends to the unsharded names. Call it before the client is used.
func (c *Client) SetShards(n int) error {
	if err := platform.CheckQueueShards(n); err != nil {
		return err
	}
	c.shards = n
	return nil
}

// Shards is how many shards each work queue has.
func (c *Client) Shards() int { return max(c.shards, 1) }

// Route is the physical queue that work queue queue's message of shard key key is sent to:
// the unsharded name with one shard, else shard platform.ShardOf(key, n).
func (c *Client) Route(queue, key string) string {
	n := c.Shards()
	if n == 1 {
		return queue
	}
	return platform.ShardQueue(queue, platform.ShardOf(key, n))
}

// Current are the physical queues work queue queue is sent to now: platform.QueueShards.
func (c *Client) Current(queue string) []string { return platform.QueueShards(queue, c.Shards()) }

// Physical are the physical queues of work queue queue (logical): the current shards first,
// in order, then any other queue of it that exists in the namespace (not poison twins), sorted:
// one listing of the namespace's queues.
func (c *Client) Physical(ctx context.Context, queue string) ([]string, error) {
	found, err := c.listWork(ctx, c.ns.Queue(queue))
	if err != nil {
		return nil, err
	}
	return c.withCurrent(queue, found[queue].work), nil
}

// withCurrent is the current shards of queue, then the names of found that are not among them.
func (c *Client) withCurrent(queue string, found []string) []string {
	out := c.Current(queue)
	for _, name := range found {
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// workQueues are the physical queues of one work queue found by a listing, each list sorted:
// the queues themselves and their poison twins (the names of the queues they are twins of).
type workQueues struct {
	work, poison []string
}

// listWork lists the namespace's queues whose full name starts with prefix, and returns those
// of each work queue, by work queue. Every queue listed is known to exist from then on (Create
// asks nothing for it).
func (c *Client) listWork(ctx context.Context, prefix string) (map[string]workQueues, error) {
	nsPrefix := c.ns.Queue("") // "" in the empty namespace
	pager := c.svc.NewListQueuesPager(&azqueue.ListQueuesOptions{Prefix: &prefix})
	out := map[string]workQueues{}
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list queues %s*: %w", prefix, storage.Translate(err))
		}
		for _, q := range page.Queues {
			if q.Name == nil || !strings.HasPrefix(*q.Name, nsPrefix) {
				continue
			}
			c.created.Store(*q.Name, struct{}{})
			name, poison := strings.CutSuffix(strings.TrimPrefix(*q.Name, nsPrefix), platform.PoisonSuffix)
			work, _, ok := platform.SplitQueue(name)
			if !ok {
				continue
			}
			wq := out[work]
			if poison {
				wq.poison = append(wq.poison, name)
			} else {
				wq.work = append(wq.work, name)
			}
			out[work] = wq
		}
	}
	for work, wq := range out {
		slices.Sort(wq.work)
		slices.Sort(wq.poison)
		out[work] = wq
	}
	return out, nil
}

// WorkQueueSet is every physical queue of the namespace's work queues, by work queue
// (platform.WorkQueues).
type WorkQueueSet map[string]PhysicalQueues

// PhysicalQueues are one work queue's physical queues: Queues in Physical's order (the current
// shards, then any other found), and Poisoned, the queues whose poison twin is current or
// found (named as the queues, not as their twins), in the same order.
type PhysicalQueues struct {
	Queues, Poisoned []string
}

// WorkQueues lists the namespace's queues once and returns every work queue's physical queues:
// what the queue sampler samples, attention counts and a logical redrive moves.
func (c *Client) WorkQueues(ctx context.Context) (WorkQueueSet, error) {
	found, err := c.listWork(ctx, c.ns.Queue(""))
	if err != nil {
		return nil, err
	}
	out := WorkQueueSet{}
	for _, work := range platform.WorkQueues {
		wq := found[work]
		out[work] = PhysicalQueues{Queues: c.withCurrent(work, wq.work), Poisoned: c.withCurrent(work, wq.poison)}
	}
	return out, nil
}
