package queues_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
)

// shardedClient is a client of namespace ns with n shards per work queue.
func shardedClient(t *testing.T, ns platform.Namespace, n int, policies ...policy.Policy) *queues.Client {
	t.Helper()
	c, err := queues.New(storage.Account{Policies: policies}, ns)
	if err == nil {
		err = c.SetShards(n)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// attendeeEvent is an Update_Attendee of attendee id at second s.
func attendeeEvent(t *testing.T, id, s int) *platform.EntityEvent {
	t.Helper()
	ev, err := platform.DecodeEvent(fmt.Appendf(nil, `{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityId":%d,"businessUnitId":42,"createdOn":"2026-11-22T10:00:%02dZ"}`, id, s))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// dequeueCounter counts the dequeue requests (GET …/messages, not a peek) per queue, as the
// storage account sees them.
type dequeueCounter struct {
	mu sync.Mutex
	n  map[string]int // full queue name → dequeues
}

func (d *dequeueCounter) Do(req *policy.Request) (*http.Response, error) {
	if r := req.Raw(); r.Method == http.MethodGet && path.Base(r.URL.Path) == "messages" && r.URL.Query().Get("peekonly") == "" {
		d.mu.Lock()
		if d.n == nil {
			d.n = map[string]int{}
		}
		d.n[path.Base(path.Dir(r.URL.Path))]++
		d.mu.Unlock()
	}
	return req.Next()
}

func (d *dequeueCounter) get(full string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[full]
}

func TestPublishSendsAnEntityToItsShard(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	c := shardedClient(t, ns, 4)
	want := map[string][]string{} // shard → event keys, in publish order
	for i := range 12 {
		for s := range 2 { // two occurrences of each entity
			ev := attendeeEvent(t, i+1, s)
			key, err := c.Publish(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			shard := platform.ShardQueue(work, platform.ShardOf(ev.ShardKey(), 4))
			want[shard] = append(want[shard], key)
		}
	}
	if len(want) < 3 {
		t.Fatalf("12 entities landed on %d of 4 shards: %v", len(want), want)
	}
	for i := range 4 {
		shard := platform.ShardQueue(work, i)
		texts, err := c.Peek(context.Background(), shard)
		if err != nil && !errors.Is(err, platform.ErrNotFound) {
			t.Fatal(err)
		}
		var got []string
		for _, text := range texts {
			ev, err := platform.DecodeEvent([]byte(text))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ev.Key())
		}
		if !slices.Equal(got, want[shard]) {
			t.Errorf("%s holds %v, want %v (each entity's occurrences on its shard, in order)", shard, got, want[shard])
		}
	}
	if n := count(t, c, work); n != 0 {
		t.Fatalf("the unsharded queue holds %d messages with 4 shards", n)
	}
}

// drainBusy puts n messages on physical queue busy of a fresh namespace whose client has
// shards shards, and drains them with one consumer of the work queue (two handlers of 5 ms
// each, the production idle backoff); it returns how long that took and the dequeues each
// queue of the namespace saw.
func drainBusy(t *testing.T, shards, n int, busy string) (took time.Duration, dequeues func(name string) int) {
	t.Helper()
	counter := &dequeueCounter{}
	ns := testenv.Namespace(t)
	c := shardedClient(t, ns, shards, counter)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := i; j < n; j += 8 {
				if err := c.Enqueue(context.Background(), busy, fmt.Sprint(j), 0); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	var handled atomic.Int32
	cons, err := c.NewConsumer(queues.ConsumerConfig{Queue: work, Logger: testenv.Logger(t), Concurrency: 2, // dequeues of at most 2
		// The production idle backoff: 100 ms doubling to 1 s.
		Handler: func(context.Context, *queues.Message) error {
			time.Sleep(5 * time.Millisecond) // the handler's work
			handled.Add(1)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := cons.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer cons.Stop(context.Background())
	testenv.Eventually(t, 60*time.Second, "every message of the busy queue handled", func() bool { return handled.Load() == int32(n) })
	return time.Since(began), func(name string) int { return counter.get(ns.Queue(name)) }
}

// One busy shard and three idle ones: the busy one is read as fast as the handlers allow (as
// fast as one unsharded queue), each idle one costs at most one dequeue per MaxPollInterval
// (after its backoff has grown).
func TestAConsumerReadsEveryShardFairly(t *testing.T) {
	t.Parallel()
	const n = 200
	alone, _ := drainBusy(t, 1, n, work)
	busy := platform.ShardQueue(work, 2)
	took, dequeues := drainBusy(t, 4, n, busy)
	t.Logf("%d messages: %s on one queue, %s on one shard of 4", n, alone.Round(time.Millisecond), took.Round(time.Millisecond))
	if took > alone*3/2+500*time.Millisecond {
		t.Errorf("the busy shard took %s, one queue alone %s: the idle shards slowed it down", took.Round(time.Millisecond), alone.Round(time.Millisecond))
	}
	// Ramp-up: 0.1 + 0.2 + 0.4 + 0.8 s, ±20 % each, then one per second ±20 %.
	bound := 5 + int(took/(800*time.Millisecond))
	all := 0
	for i := range 4 {
		all += dequeues(platform.ShardQueue(work, i))
	}
	if share := float64(dequeues(busy)) / float64(all); share < 0.8 {
		t.Errorf("the busy shard had %.0f %% of the %d dequeues: the idle ones took its turns", 100*share, all)
	}
	for i := range 4 {
		shard := platform.ShardQueue(work, i)
		got := dequeues(shard)
		t.Logf("%s: %d dequeues in %s (%.2f/s)", shard, got, took.Round(time.Millisecond), float64(got)/took.Seconds())
		if shard == busy {
			if got < n/2 {
				t.Errorf("the busy shard was dequeued %d times for %d messages in batches of at most 2", got, n)
			}
			continue
		}
		if got < 1 || got > bound {
			t.Errorf("idle shard %s was dequeued %d times in %s: want 1-%d (its own backoff up to one a second)", shard, got, took.Round(time.Millisecond), bound)
		}
	}
}

// What an idle shard costs: with every shard empty, each is dequeued once per MaxPollInterval.
func TestAnIdleShardCostsOnePollPerSecond(t *testing.T) {
	t.Parallel()
	dequeues := &dequeueCounter{}
	ns := testenv.Namespace(t)
	c := shardedClient(t, ns, 4, dequeues)
	cons, err := c.NewConsumer(queues.ConsumerConfig{Queue: work, Logger: testenv.Logger(t),
		Handler: func(context.Context, *queues.Message) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer cons.Stop(context.Background())
	// Past the ramp-up (0.1 + 0.2 + 0.4 + 0.8 s), count the steady state for 4 s.
	time.Sleep(2 * time.Second) // the idle time measured, not a wait for work
	before := make([]int, 4)
	for i := range before {
		before[i] = dequeues.get(ns.Queue(platform.ShardQueue(work, i)))
	}
	const window = 4 * time.Second
	time.Sleep(window) // the idle time measured
	for i := range 4 {
		got := dequeues.get(ns.Queue(platform.ShardQueue(work, i))) - before[i]
		rate := float64(got) / window.Seconds()
		t.Logf("idle shard %d: %d dequeues in %s: %.2f requests/s", i, got, window, rate)
		if got < 2 || got > 6 {
			t.Errorf("idle shard %d: %d dequeues in %s, want about one a second (2-6)", i, got, window)
		}
	}
}

// Changing the shard count loses nothing: a consumer with 2 shards drains what was published
// unsharded and to 4 shards, each message once, and keeps draining the retired queues.
func TestReshardingLosesNothing(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	one, four, two := shardedClient(t, ns, 1), shardedClient(t, ns, 4), shardedClient(t, ns, 2)
	want := map[string]bool{}
	publish := func(c *queues.Client, from, to int) {
		for i := from; i < to; i++ {
			key, err := c.Publish(context.Background(), attendeeEvent(t, i, 0))
			if err != nil {
				t.Fatal(err)
			}
			want[key] = true
		}
	}
	publish(one, 1, 21)
	publish(four, 21, 61)
	got := &calls{}
	cons, err := two.NewConsumer(queues.ConsumerConfig{Queue: work, Logger: testenv.Logger(t), DiscoverEvery: 500 * time.Millisecond,
		PollInterval: 20 * time.Millisecond, MaxPollInterval: 100 * time.Millisecond,
		Handler: func(_ context.Context, m *queues.Message) error {
			ev, err := platform.DecodeEvent(m.Body)
			if err != nil {
				return platform.Permanent(err)
			}
			got.add(ev.Key())
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer cons.Stop(context.Background())
	handled := func() bool {
		for key := range want {
			if got.get(key) == 0 {
				return false
			}
		}
		return true
	}
	testenv.Eventually(t, 30*time.Second, "every event published before the change handled", handled)
	reads := cons.Queues()
	for _, q := range []string{"entity-events-0", "entity-events-1", "entity-events", "entity-events-2", "entity-events-3"} {
		if !slices.Contains(reads, q) {
			t.Fatalf("the consumer reads %v: not %s", reads, q)
		}
	}
	// A publisher still on the old count (a rolling deploy) sends to the retired queues: found
	// again at the next discovery.
	publish(four, 61, 81)
	publish(one, 81, 86)
	testenv.Eventually(t, 30*time.Second, "every event published late to the retired queues handled", handled)
	for key := range want {
		if n := got.get(key); n != 1 {
			t.Errorf("event %s handled %d times", key, n)
		}
	}
	for _, q := range reads {
		testenv.Eventually(t, 10*time.Second, q+" empty", func() bool { return count(t, two, q) == 0 })
	}
}

// A message poisoned on a shard goes to that shard's poison twin, naming the shard; a shard's
// name redrives that shard's poison only, and the work queue's name every shard's, each back
// to the shard it came from.
func TestPoisonAndRedrivePerShard(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	c := shardedClient(t, ns, 2)
	cons := start(t, c, queues.ConsumerConfig{Handler: func(context.Context, *queues.Message) error {
		return platform.Permanent(errors.New("refused"))
	}})
	shard0, shard1 := platform.ShardQueue(work, 0), platform.ShardQueue(work, 1)
	for _, m := range []struct{ queue, body string }{{shard0, "bad-0"}, {shard1, "bad-1"}} {
		if err := c.Enqueue(context.Background(), m.queue, m.body, 0); err != nil {
			t.Fatal(err)
		}
	}
	records := func(q string) []queues.PoisonRecord {
		texts, err := c.Peek(context.Background(), platform.PoisonQueue(q))
		if err != nil {
			t.Fatal(err)
		}
		var out []queues.PoisonRecord
		for _, text := range texts {
			rec, _ := queues.DecodePoison(text)
			out = append(out, rec)
		}
		return out
	}
	testenv.Eventually(t, 20*time.Second, "both poisoned", func() bool { return len(records(shard0)) == 1 && len(records(shard1)) == 1 })
	for _, s := range []struct{ queue, body string }{{shard0, "bad-0"}, {shard1, "bad-1"}} {
		if rec := records(s.queue)[0]; rec.Queue != s.queue || rec.Body != s.body {
			t.Fatalf("%s's poison twin holds %+v, want queue %s and body %s", s.queue, rec, s.queue, s.body)
		}
	}
	if n := count(t, c, platform.PoisonQueue(work)); n != 0 {
		t.Fatalf("the unsharded poison queue holds %d", n)
	}
	if err := cons.Stop(context.Background()); err != nil { // redriven messages stay where they are put
		t.Fatal(err)
	}

	if n, err := c.Redrive(context.Background(), shard1+platform.PoisonSuffix); err != nil || n != 1 {
		t.Fatalf("redrive %s: %d, %v", shard1, n, err)
	}
	if texts, err := c.Peek(context.Background(), shard1); err != nil || !slices.Equal(texts, []string{"bad-1"}) {
		t.Fatalf("%s holds %q (%v) after its redrive", shard1, texts, err)
	}
	if len(records(shard0)) != 1 {
		t.Fatalf("redriving %s moved %s's poison", shard1, shard0)
	}
	if n, err := c.Redrive(context.Background(), work); err != nil || n != 1 {
		t.Fatalf("redrive %s: %d, %v", work, n, err)
	}
	if texts, err := c.Peek(context.Background(), shard0); err != nil || !slices.Equal(texts, []string{"bad-0"}) {
		t.Fatalf("%s holds %q (%v) after the work queue's redrive", shard0, texts, err)
	}

	// One message by id, named by the work queue: found in whichever shard's twin holds it.
	rec := `{"reason":"r","queue":"entity-events-1","body":"one"}`
	if err := c.Enqueue(context.Background(), platform.PoisonQueue(shard1), rec, 0); err != nil {
		t.Fatal(err)
	}
	peeked, err := c.PeekPoison(context.Background(), shard1)
	if err != nil || len(peeked) != 1 {
		t.Fatalf("peek %s's poison: %d, %v", shard1, len(peeked), err)
	}
	if err := c.RedriveOne(context.Background(), work, peeked[0].ID); err != nil {
		t.Fatal(err)
	}
	if texts, err := c.Peek(context.Background(), shard1); err != nil || !slices.Equal(texts, []string{"bad-1", "one"}) {
		t.Fatalf("%s holds %q (%v) after redriving one", shard1, texts, err)
	}
	if err := c.RedriveOne(context.Background(), work, "no-such-id"); !errors.Is(err, platform.ErrNotFound) || !strings.Contains(err.Error(), "none of its 2 poison queues") {
		t.Fatalf("redrive an unknown id: %v", err)
	}
}
