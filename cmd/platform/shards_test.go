package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
)

// PLATFORM_QUEUE_SHARDS out of 1-64 is bad usage: exit 2 with one line naming it, before any
// request. Not parallel: it sets the environment.
func TestQueueShardsOutOfBoundsIsUsage(t *testing.T) {
	ns := string(testenv.Namespace(t))
	for _, v := range []string{"0", "65", "-1", "four", "1.5"} {
		t.Setenv("PLATFORM_QUEUE_SHARDS", v)
		for _, args := range [][]string{
			{"worker", "--namespace", ns, "--http-addr", "127.0.0.1:0"},
			{"publish", "--namespace", ns, "../../examples/attendee-created.json"},
			{"redrive", "--namespace", ns, "entity-events"},
		} {
			code, out, errOut := cli(t, "", args...)
			if code != 2 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, fmt.Sprintf("PLATFORM_QUEUE_SHARDS %q: want an integer from 1 to 64", v)) {
				t.Errorf("PLATFORM_QUEUE_SHARDS=%s %v: exit %d, %q %q; want 2 with one line naming it", v, args[0], code, out, errOut)
			}
		}
	}
}

// With PLATFORM_QUEUE_SHARDS=4, publish sends each event to its entity's shard, a drain
// handles them all, and redrive takes a shard's name. Not parallel: it sets the environment.
func TestPublishDrainAndRedriveWithShards(t *testing.T) {
	t.Setenv("PLATFORM_QUEUE_SHARDS", "4")
	ns := testenv.Namespace(t)
	var lines []string
	for i := range 6 {
		lines = append(lines, fmt.Sprintf(`{"eventTypeId":22,"entityTypeId":2,"actionTypeId":2,"entityId":%d,"businessUnitId":7,"createdOn":"2026-11-22T10:00:00Z"}`, i+1))
	}
	code, out, errOut := cli(t, strings.Join(lines, "\n"), "publish", "--namespace", string(ns), "-")
	if code != 0 || strings.Count(out, "\n") != 6 {
		t.Fatalf("publish: %d %q %q", code, out, errOut)
	}
	q, err := queues.New(storage.Account{}, ns)
	if err == nil {
		err = q.SetShards(4)
	}
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for i := range 4 {
		shard := platform.ShardQueue(platform.QueueEntityEvents, i)
		n, err := q.ApproximateCount(context.Background(), shard)
		if err != nil {
			t.Fatal(err)
		}
		held += n
	}
	if n, err := q.ApproximateCount(context.Background(), platform.QueueEntityEvents); err != nil || n != 0 || held != 6 {
		t.Fatalf("the shards hold %d, the unsharded queue %d (%v): want the 6 events on the shards", held, n, err)
	}
	if code, _, errOut := cli(t, "", "worker", "--drain", "--namespace", string(ns), "--http-addr", "127.0.0.1:0", "--log-level", "error"); code != 0 {
		t.Fatalf("worker --drain: %d %s", code, errOut)
	}
	physical, err := q.Physical(context.Background(), platform.QueueEntityEvents)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(physical, platform.QueueShards(platform.QueueEntityEvents, 4)) {
		t.Fatalf("physical queues %v, want the 4 shards only", physical)
	}
	for _, name := range physical {
		if n, err := q.ApproximateCount(context.Background(), name); err != nil || n != 0 {
			t.Fatalf("%s holds %d (%v) after the drain", name, n, err)
		}
	}
	if code, out, errOut := cli(t, "", "redrive", "--namespace", string(ns), "entity-events-3"); code != 0 || out != "moved 0 messages from entity-events-3-poison back to entity-events-3\n" {
		t.Fatalf("redrive a shard: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := cli(t, "", "redrive", "--namespace", string(ns), "entity-events"); code != 0 || !strings.Contains(out, "the poison queues of entity-events") {
		t.Fatalf("redrive the work queue: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := cli(t, "", "redrive", "--namespace", string(ns), "entity-events-64"); code != 2 || !strings.Contains(errOut, "entity-events-3") {
		t.Fatalf("redrive entity-events-64: %d %q, want 2 naming the shard form", code, errOut)
	}
}
