package platform_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/platform/platform"
)

// The shard of a key is a contract (docs/contracts.md, "Sharded queues"): publishers in other
// languages compute it. These values were computed apart from the Go code (FNV-1a, 32 bits:
// offset basis 2166136261, prime 16777619, over the key's UTF-8 bytes; then mod N).
func TestShardOfIsTheContract(t *testing.T) {
	for _, c := range []struct {
		key  string
		hash uint32
		want map[int]int // N → shard
	}{
		{"1:7c9e6679-7425-40de-944b-e07fc1f90ae7", 0x98272ad4, map[int]int{1: 0, 2: 0, 3: 1, 4: 0, 8: 4, 16: 4, 64: 20}},
		{"4:42", 0x685f12dd, map[int]int{1: 0, 2: 1, 3: 0, 4: 1, 8: 5, 16: 13, 64: 29}},
		{"1:1", 0x6424c559, map[int]int{2: 1, 3: 2, 4: 1, 8: 1, 16: 9, 64: 25}},
		{"2:100", 0x68eaf864, map[int]int{2: 0, 3: 2, 4: 0, 8: 4, 16: 4, 64: 36}},
		{"", 0x811c9dc5, map[int]int{4: 1, 16: 5}},
	} {
		for n, want := range c.want {
			if got := platform.ShardOf(c.key, n); got != want {
				t.Errorf("ShardOf(%q, %d) = %d, want %d (FNV-1a %#x mod %d)", c.key, n, got, want, c.hash, n)
			}
		}
	}
}

// An event's shard key is its entity: every spelling and every occurrence of one entity lands
// on one shard.
func TestAnEventsShardKeyIsItsEntity(t *testing.T) {
	raw, err := os.ReadFile("examples/attendee-created.json") // GUID in capitals
	if err != nil {
		t.Fatal(err)
	}
	ev, err := platform.DecodeEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := ev.ShardKey(); got != "1:7c9e6679-7425-40de-944b-e07fc1f90ae7" {
		t.Fatalf("ShardKey = %q, want the entity type and lowercase GUID", got)
	}
	later, err := platform.DecodeEvent([]byte(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityGuid":"7c9e6679-7425-40de-944b-e07fc1f90ae7","businessUnitId":42,"createdOn":"2026-11-23T10:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	if later.Key() == ev.Key() || later.ShardKey() != ev.ShardKey() {
		t.Fatalf("two occurrences of one entity: keys %q, %q; shard keys %q, %q", ev.Key(), later.Key(), ev.ShardKey(), later.ShardKey())
	}
	for _, c := range []struct{ body, want string }{
		{`{"eventTypeId":21,"entityTypeId":2,"actionTypeId":1,"entityId":7,"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z"}`, "2:7"},
		{`{"eventTypeId":41,"entityTypeId":4,"actionTypeId":2,"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z"}`, "4:42"},
	} {
		ev, err := platform.DecodeEvent([]byte(c.body))
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.ShardKey(); got != c.want {
			t.Errorf("ShardKey of %s = %q, want %q", c.body, got, c.want)
		}
	}
}

// Entities spread evenly: 10,000 attendees over 8 shards, each within 10 % of its share.
func TestShardsSpread(t *testing.T) {
	const keys, n = 10000, 8
	counts := make([]int, n)
	for i := range keys {
		counts[platform.ShardOf(fmt.Sprintf("1:%d", i+1), n)]++
	}
	for i, c := range counts {
		if c < keys/n*9/10 || c > keys/n*11/10 {
			t.Fatalf("shard %d holds %d of %d keys: %v", i, c, keys, counts)
		}
	}
}

func TestQueueShardsAndTheirNames(t *testing.T) {
	if got := platform.QueueShards(platform.QueueEntityEvents, 1); !slices.Equal(got, []string{"entity-events"}) {
		t.Fatalf("one shard: %v, want the unsharded name", got)
	}
	if got := platform.QueueShards(platform.QueueAgentRuns, 3); !slices.Equal(got, []string{"agent-runs-0", "agent-runs-1", "agent-runs-2"}) {
		t.Fatalf("three shards: %v", got)
	}
	for _, c := range []struct {
		name  string
		work  string
		shard int
		ok    bool
	}{
		{"entity-events", "entity-events", -1, true},
		{"entity-events-0", "entity-events", 0, true},
		{"notification-distributor-63", "notification-distributor", 63, true},
		{"entity-events-64", "", 0, false},
		{"entity-events-03", "", 0, false},
		{"entity-events--1", "", 0, false},
		{"entity-events-", "", 0, false},
		{"entity-events-poison", "", 0, false},
		{"entity-events-1-poison", "", 0, false},
		{"notification-1", "", 0, false},
		{"other-3", "", 0, false},
	} {
		work, shard, ok := platform.SplitQueue(c.name)
		if ok != c.ok || (ok && (work != c.work || shard != c.shard)) {
			t.Errorf("SplitQueue(%q) = %q, %d, %v; want %q, %d, %v", c.name, work, shard, ok, c.work, c.shard, c.ok)
		}
	}
	for _, n := range []int{0, -1, 65} {
		if err := platform.CheckQueueShards(n); !errors.Is(err, platform.ErrInvalidInput) {
			t.Errorf("CheckQueueShards(%d) = %v, want an input error", n, err)
		}
	}
	for _, n := range []int{1, 64} {
		if err := platform.CheckQueueShards(n); err != nil {
			t.Errorf("CheckQueueShards(%d) = %v", n, err)
		}
	}
}
