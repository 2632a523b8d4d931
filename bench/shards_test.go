//go:build bench

package bench

import (
	"context"
	"flag"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/queues"
)

// -shards=N runs the bench on sharded queues (docs/contracts.md, "Sharded queues"): the worker
// with PLATFORM_QUEUE_SHARDS=N, the publishers sending each event to its entity's shard, the
// drain check counting every shard, and the floor with N queues per stage, consumed the way
// the worker consumes its shards. 1 (the default) is the unsharded queues.
var flagShards = flag.Int("shards", 1, "queues per work queue: the worker's PLATFORM_QUEUE_SHARDS, and the floor's queues per stage")

// shardsEnv is the worker's environment for -shards.
func shardsEnv() []string { return []string{fmt.Sprintf("PLATFORM_QUEUE_SHARDS=%d", *flagShards)} }

// shardedClient is a queue client of ns for -shards.
func shardedClient(t *testing.T, acct storage.Account, ns platform.Namespace) *queues.Client {
	q, err := queues.New(acct, ns)
	if err == nil {
		err = q.SetShards(*flagShards)
	}
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// shardOf is the queue of queue name's shards that body goes to: with one shard, name; else
// the shard of the event's entity, as the worker's publisher chooses it (the floor's stages
// too: each event keeps its shard from stage to stage).
func shardOf(t *testing.T, name, body string) string {
	if *flagShards == 1 {
		return name
	}
	ev, err := platform.DecodeEvent([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return platform.ShardQueue(name, platform.ShardOf(ev.ShardKey(), *flagShards))
}

// floorShards creates the floor's queues of stage: "floor-{stage}", or its shards
// "floor-{stage}-{i}".
func floorShards(t *testing.T, acct storage.Account, ns platform.Namespace, stage int) []*azqueue.QueueClient {
	name := fmt.Sprintf("floor-%d", stage)
	names := []string{name}
	if *flagShards > 1 {
		names = names[:0]
		for i := range *flagShards {
			names = append(names, platform.ShardQueue(name, i))
		}
	}
	out := make([]*azqueue.QueueClient, len(names))
	for i, n := range names {
		out[i] = queueClient(t, acct, ns.Queue(n))
		if _, err := out[i].Create(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// consume is the worker's consumer shape without its logic, over one stage's queues (its
// shards): batches of 32, fetched when half of 64 slots are free, round-robin over the queues
// that are due, each with its own idle backoff from 100 ms doubling to 1 s. handle is told the
// queue (and its index) each message came from. With one queue, the worker's consumer of it.
func consume(ctx context.Context, qs []*azqueue.QueueClient, handle func(q *azqueue.QueueClient, shard int, m *azqueue.DequeuedMessage, seq int64)) {
	slots := make(chan struct{}, 64)
	var seq atomic.Int64
	poll, due := make([]time.Duration, len(qs)), make([]time.Time, len(qs))
	for i := range poll {
		poll[i] = 100 * time.Millisecond
	}
	next := 0
	for ctx.Err() == nil {
		for len(slots) > 32 {
			time.Sleep(time.Millisecond)
		}
		now, k, wait := time.Now(), -1, time.Second
		for j := range qs {
			s := (next + j) % len(qs)
			if !due[s].After(now) {
				k = s
				break
			}
			wait = min(wait, due[s].Sub(now))
		}
		if k < 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			continue
		}
		next = (k + 1) % len(qs)
		resp, err := qs[k].DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr(int32(32)), VisibilityTimeout: to.Ptr(int32(300))})
		if err != nil || len(resp.Messages) == 0 {
			due[k] = time.Now().Add(poll[k])
			poll[k] = min(2*poll[k], time.Second)
			continue
		}
		poll[k], due[k] = 100*time.Millisecond, time.Time{}
		for _, m := range resp.Messages {
			slots <- struct{}{}
			go func() {
				defer func() { <-slots }()
				handle(qs[k], k, m, seq.Add(1))
			}()
		}
	}
}
