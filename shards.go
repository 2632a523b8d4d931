package platform

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
)

// Sharded work queues (docs/contracts.md, "Sharded queues"). One Azure queue carries about
// 2,000 messages a second; PLATFORM_QUEUE_SHARDS=N spreads each work queue over N queues, its
// shards, named "{queue}-{i}" for i in 0..N-1, each with its poison twin "{queue}-{i}-poison".
// N = 1, the default, is the unsharded name itself: "entity-events", as before shards existed.
// A message's shard is a hash of its shard key (ShardOf): for an event, its entity
// (EntityEvent.ShardKey), so that every occurrence of one entity lands on one shard, in the
// order it was published, as on one queue.

// MaxQueueShards bounds PLATFORM_QUEUE_SHARDS. 64 shards of 2,000 messages a second each are
// 128,000 a second: over six times what one storage account serves in all (20,000 requests a
// second), so more shards can only add idle polls (an empty shard costs each consumer one
// dequeue per idle poll interval) and queues to watch (64 × 5 work queues × 2 = 640).
const MaxQueueShards = 64

// CheckQueueShards enforces the bound: a shard count is 1..MaxQueueShards.
func CheckQueueShards(n int) error {
	if n < 1 || n > MaxQueueShards {
		return fmt.Errorf("%w: queue shards %d: want 1-%d", ErrInvalidInput, n, MaxQueueShards)
	}
	return nil
}

// ShardOf is the shard, 0..n-1, of a message whose shard key is key, among n shards: the
// 32-bit FNV-1a hash of key's UTF-8 bytes, as an unsigned number, modulo n. This is a contract:
// a publisher in another language computes the same. n below 2 is shard 0.
func ShardOf(key string, n int) int {
	if n < 2 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// ShardKey is the key that chooses an event's shard: "{entityTypeId}:{entityIdentity}", the
// entity the event is about (its timeline: HistoryPartitionKey before escaping). Every
// occurrence of one entity has the same, so it stays on one shard.
func (ev *EntityEvent) ShardKey() string {
	return strconv.Itoa(ev.EntityTypeID) + ":" + ev.Identity()
}

// ShardQueue is the name of work queue name's shard i: "{name}-{i}".
func ShardQueue(name string, i int) string { return name + "-" + strconv.Itoa(i) }

// QueueShards are the names a work queue's messages are sent to with n shards: the unsharded
// name alone when n is 1 (or less), else "{name}-0" … "{name}-{n-1}".
func QueueShards(name string, n int) []string {
	if n < 2 {
		return []string{name}
	}
	out := make([]string, n)
	for i := range out {
		out[i] = ShardQueue(name, i)
	}
	return out
}

// SplitQueue reads the name of a work queue's physical queue (before the namespace prefix, not
// its poison twin): the work queue itself (shard -1: the unsharded name) or one of its shards,
// "{work}-{i}" with i in 0..MaxQueueShards-1 written without leading zeros. ok is false for
// any other name.
func SplitQueue(name string) (work string, shard int, ok bool) {
	if slices.Contains(WorkQueues, name) {
		return name, -1, true
	}
	i := strings.LastIndexByte(name, '-')
	if i < 0 || !slices.Contains(WorkQueues, name[:i]) {
		return "", 0, false
	}
	digits := name[i+1:]
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 || n >= MaxQueueShards || strconv.Itoa(n) != digits {
		return "", 0, false
	}
	return name[:i], n, true
}
