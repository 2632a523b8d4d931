package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/api"
)

// shardedPublisher publishes to namespace ns's work queues with n shards, as a service (or a
// worker of that configuration) would.
func shardedPublisher(t *testing.T, ns platform.Namespace, n int) *queues.Client {
	t.Helper()
	c, err := queues.New(storage.Account{}, ns)
	if err == nil {
		err = c.SetShards(n)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// employeeEvents are n Update_Employee events, one per employee id 1..n: history only.
func employeeEvents(t *testing.T, n int) []*platform.EntityEvent {
	t.Helper()
	var out []*platform.EntityEvent
	for i := range n {
		ev, err := platform.DecodeEvent(fmt.Appendf(nil, `{"eventTypeId":22,"entityTypeId":2,"actionTypeId":2,"entityId":%d,"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z"}`, i+1))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// Changing PLATFORM_QUEUE_SHARDS loses nothing: events published with the old count are
// handled by a worker with the new one, each once, and every queue ends empty.
func TestReshardingTheWorkerLosesNothing(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ from, to int }{{1, 4}, {4, 1}} {
		t.Run(fmt.Sprintf("%d to %d", c.from, c.to), func(t *testing.T) {
			t.Parallel()
			ns := testenv.Namespace(t)
			pub := shardedPublisher(t, ns, c.from)
			events := employeeEvents(t, 24)
			for _, ev := range events {
				if _, err := pub.Publish(context.Background(), ev); err != nil {
					t.Fatal(err)
				}
			}
			w := newWorker(t, worker.Config{Namespace: ns, QueueShards: c.to, MetricsAddr: "127.0.0.1:0"})
			drain(t, w)
			processed := scrapeMetrics(t, w).get("platform_queue_messages_total", "queue", platform.QueueEntityEvents, "outcome", "processed")
			if processed != float64(len(events)) {
				t.Fatalf("%v entity events processed, want each of the %d once", processed, len(events))
			}
			for _, ev := range events {
				rows := timeline(t, w, ev.EntityTypeID, ev.Identity())
				if len(rows) != 1 || rows[0].HistoryEventKey != ev.HistoryEventKey(ev.EntityTypeID, ev.Identity()) {
					t.Fatalf("employee %s: %d timeline rows, want its event's", ev.Identity(), len(rows))
				}
			}
			physical, err := w.Queues().Physical(context.Background(), platform.QueueEntityEvents)
			if err != nil {
				t.Fatal(err)
			}
			if want := len(platform.QueueShards(platform.QueueEntityEvents, c.from)) + len(platform.QueueShards(platform.QueueEntityEvents, c.to)); len(physical) != want {
				t.Fatalf("physical queues %v, want the old and the new shards", physical)
			}
			for _, q := range physical {
				if n, err := w.Queues().ApproximateCount(context.Background(), q); err != nil || n != 0 {
					t.Fatalf("%s holds %d (%v) after the drain", q, n, err)
				}
			}
		})
	}
}

// With shards, a drain waits for every shard: a message held on one keeps it from draining.
func TestDrainCountsEveryShard(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{QueueShards: 3})
	events := employeeEvents(t, 12)
	for _, ev := range events {
		if _, err := w.Queues().Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, w)
	for _, ev := range events {
		if rows := timeline(t, w, ev.EntityTypeID, ev.Identity()); len(rows) != 1 {
			t.Fatalf("drained, yet employee %s has %d rows", ev.Identity(), len(rows))
		}
	}
	held := platform.ShardQueue(platform.QueueEntityEvents, 2)
	if err := w.Queues().Enqueue(context.Background(), held, event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{}`), time.Hour); err != nil {
		t.Fatal(err)
	}
	// Drained may read false for a moment anyway (a consumer's idle poll in progress): it must
	// not read true in two seconds of asking.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := w.WaitDrained(ctx, 50*time.Millisecond); err == nil {
		t.Fatalf("drained with a message held on %s", held)
	}
}

// The queue sampler labels each physical queue: every shard and its poison twin.
func TestQueueSamplerLabelsEachShard(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{QueueShards: 2, Roles: worker.RoleSet{worker.RoleNotifications}, // nothing consumes entity-events
		MetricsAddr: "127.0.0.1:0", QueueSampleEvery: 100 * time.Millisecond})
	events := employeeEvents(t, 6)
	perShard := map[string]float64{}
	for _, ev := range events {
		if _, err := w.Queues().Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		perShard[w.Queues().Route(platform.QueueEntityEvents, ev.ShardKey())]++
	}
	poisonTwin := platform.PoisonQueue(platform.ShardQueue(platform.QueueEntityEvents, 1))
	if err := w.Queues().Enqueue(context.Background(), poisonTwin, `{"reason":"r","queue":"entity-events-1","body":"b"}`, 0); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "a whole sample with the shards' depths", func() bool {
		m := scrapeMetrics(t, w)
		for q, n := range perShard {
			if m.get("platform_queue_depth", "queue", q) != n {
				return false
			}
		}
		return m.get("platform_queue_depth", "queue", poisonTwin) == 1 && m.get("platform_queue_sample_timestamp_seconds") > 0
	})
	m := scrapeMetrics(t, w)
	for _, work := range platform.WorkQueues {
		for i := range 2 {
			for _, q := range []string{platform.ShardQueue(work, i), platform.PoisonQueue(platform.ShardQueue(work, i))} {
				if !m.has("platform_queue_depth", "queue", q) || !m.has("platform_queue_oldest_message_age_seconds", "queue", q) {
					t.Errorf("no sample of %s", q)
				}
			}
		}
		if m.has("platform_queue_depth", "queue", work) {
			t.Errorf("a sample of the unsharded %s, which does not exist with 2 shards", work)
		}
	}
}

// GET /v1/attention names the shard of each poison message, and a redrive by a shard's name
// moves that shard's poison only, back to it; by the work queue's name, every shard's.
func TestAttentionAndRedriveNameTheShard(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{QueueShards: 2, HTTPAddr: "127.0.0.1:0", Roles: worker.RoleSet{worker.RoleAPI}}) // nothing consumes: what is redriven stays
	base := "http://" + w.HTTPAddr()
	ctx := context.Background()
	for i := range 2 {
		shard := platform.ShardQueue(platform.QueueEntityEvents, i)
		rec := fmt.Sprintf(`{"reason":"r%d","queue":%q,"body":"b%d"}`, i, shard, i)
		if err := w.Queues().Enqueue(ctx, platform.PoisonQueue(shard), rec, 0); err != nil {
			t.Fatal(err)
		}
	}
	code, body := call(t, "GET", base+"/v1/attention", "", "")
	var a api.Attention
	if code != http.StatusOK || json.Unmarshal([]byte(body), &a) != nil {
		t.Fatalf("GET /v1/attention: %d %s", code, body)
	}
	var section *api.AttentionPoison
	for i := range a.Poison {
		if a.Poison[i].Queue == platform.QueueEntityEvents {
			section = &a.Poison[i]
		}
	}
	if section == nil || section.Count != 2 || len(section.Items) != 2 {
		t.Fatalf("entity-events' poison section: %+v, want both shards' messages", section)
	}
	byQueue := map[string]string{} // shard → message id
	for _, it := range section.Items {
		byQueue[it.Queue] = it.ID
	}
	shard1 := platform.ShardQueue(platform.QueueEntityEvents, 1)
	if len(byQueue) != 2 || byQueue[shard1] == "" {
		t.Fatalf("poison items %+v, want each named by its shard", section.Items)
	}

	code, body = call(t, "POST", base+"/v1/poison/"+shard1+"/redrive", "", `{"messageId":"`+byQueue[shard1]+`","reason":"fixed"}`)
	var out struct{ Moved int }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil || out.Moved != 1 {
		t.Fatalf("redrive one of %s: %d %s", shard1, code, body)
	}
	if texts, err := w.Queues().Peek(ctx, shard1); err != nil || !slices.Equal(texts, []string{"b1"}) {
		t.Fatalf("%s holds %q (%v), want its message back", shard1, texts, err)
	}
	code, body = call(t, "POST", base+"/v1/poison/entity-events/redrive", "", `{"reason":"fixed"}`)
	if code != http.StatusOK {
		t.Fatalf("redrive entity-events: %d %s", code, body)
	}
	if json.Unmarshal([]byte(body), &out) != nil || out.Moved != 1 {
		t.Fatalf("redrive entity-events: %s, want the other shard's one moved", body)
	}
	shard0 := platform.ShardQueue(platform.QueueEntityEvents, 0)
	if texts, err := w.Queues().Peek(ctx, shard0); err != nil || !slices.Equal(texts, []string{"b0"}) {
		t.Fatalf("%s holds %q (%v), want its message back", shard0, texts, err)
	}
	for _, q := range []string{"entity-events-" + strconv.Itoa(platform.MaxQueueShards), "entity-events-01", "other-1"} {
		if code, body := call(t, "POST", base+"/v1/poison/"+q+"/redrive", "", `{"reason":"x"}`); code != http.StatusNotFound {
			t.Errorf("redrive %s: %d %s, want 404", q, code, body)
		}
	}
}

// With shards, every stage's messages go to the shards of their keys and are read there: a
// hinted event's mail goes out, and no unsharded queue is ever made.
func TestNotificationsFlowThroughShards(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 101, true, "email", 0))
	cfg := env.config()
	cfg.QueueShards = 3
	w := env.start(cfg)
	const n = 6
	for i := range n {
		ev, err := platform.DecodeEvent([]byte(hinted(fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1))))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Queues().Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, w)
	if mails := env.smtp.Mails(); len(mails) != n {
		t.Fatalf("%d mails, want %d", len(mails), n)
	}
	set, err := w.Queues().WorkQueues(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, work := range platform.WorkQueues {
		if got, want := set[work].Queues, platform.QueueShards(work, 3); !slices.Equal(got, want) {
			t.Errorf("%s: physical queues %v, want the 3 shards only", work, got)
		}
	}
}
