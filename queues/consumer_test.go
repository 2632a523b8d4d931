package queues_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/lifecycle"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const work = "entity-events"

func newClient(t *testing.T) *queues.Client {
	t.Helper()
	c, err := queues.New(storage.Account{}, testenv.Namespace(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// start runs a consumer of the work queue with fast test timings, stopped when t ends.
func start(t *testing.T, c *queues.Client, cfg queues.ConsumerConfig) *queues.Consumer {
	t.Helper()
	cfg.Queue = work
	cfg.Logger = testenv.Logger(t)
	if cfg.VisibilityTimeout == 0 {
		cfg.VisibilityTimeout = 2 * time.Second
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = time.Second
	}
	cfg.PollInterval, cfg.MaxPollInterval = 20*time.Millisecond, 100*time.Millisecond
	cons, err := c.NewConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = cons.Stop(ctx)
	})
	return cons
}

func enqueue(t *testing.T, c *queues.Client, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if err := c.Enqueue(context.Background(), work, b, 0); err != nil {
			t.Fatal(err)
		}
	}
}

func poisoned(t *testing.T, c *queues.Client) []queues.PoisonRecord {
	t.Helper()
	texts, err := c.Peek(context.Background(), platform.PoisonQueue(work))
	if err != nil && !errors.Is(err, platform.ErrNotFound) {
		t.Fatal(err)
	}
	var out []queues.PoisonRecord
	for _, text := range texts {
		rec, ok := queues.DecodePoison(text)
		if !ok {
			t.Fatalf("poison message is not a record: %s", text)
		}
		out = append(out, rec)
	}
	return out
}

func count(t *testing.T, c *queues.Client, q string) int {
	t.Helper()
	n, err := c.ApproximateCount(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// calls counts handler invocations per body.
type calls struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *calls) add(body string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[body]++
	return c.n[body]
}

func (c *calls) get(body string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[body]
}

func TestPermanentErrorPoisonsAtOnceAndOthersFlow(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	var seen calls
	start(t, c, queues.ConsumerConfig{Handler: func(_ context.Context, m *queues.Message) error {
		seen.add(string(m.Body))
		if strings.HasPrefix(string(m.Body), "bad") {
			return platform.Permanent(fmt.Errorf("eventTypeId: required"))
		}
		return nil
	}})
	enqueue(t, c, "bad-1", "good-1", "good-2")
	testenv.Eventually(t, 20*time.Second, "one poisoned, two handled", func() bool {
		return len(poisoned(t, c)) == 1 && seen.get("good-1") == 1 && seen.get("good-2") == 1
	})
	rec := poisoned(t, c)[0]
	if rec.Body != "bad-1" || rec.Attempts != 1 || rec.Queue != work || !strings.Contains(rec.Reason, "eventTypeId: required") {
		t.Fatalf("poison record %+v", rec)
	}
	testenv.Eventually(t, 10*time.Second, "work queue empty", func() bool { return count(t, c, work) == 0 })
	if n := seen.get("bad-1"); n != 1 {
		t.Fatalf("a permanent failure was retried: %d calls", n)
	}
}

func TestTransientErrorRetriesWithBackoffThenPoisonsWithLastError(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	var seen calls
	var times []time.Time
	var mu sync.Mutex
	start(t, c, queues.ConsumerConfig{MaxDequeueCount: 3, Handler: func(_ context.Context, m *queues.Message) error {
		n := seen.add(string(m.Body))
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if int64(n) != m.DequeueCount {
			return platform.Permanent(fmt.Errorf("dequeue count %d on call %d", m.DequeueCount, n))
		}
		return fmt.Errorf("storage hiccup #%d", n)
	}})
	enqueue(t, c, "flaky")
	testenv.Eventually(t, 30*time.Second, "poisoned after three attempts", func() bool { return len(poisoned(t, c)) == 1 })
	rec := poisoned(t, c)[0]
	if rec.Attempts != 3 || !strings.Contains(rec.Reason, "last error: storage hiccup #3") || rec.Body != "flaky" {
		t.Fatalf("poison record %+v", rec)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 3 {
		t.Fatalf("%d attempts, want 3", len(times))
	}
	// Backoff doubles from 1s (rounded up to whole seconds by the service, ±20 % jitter).
	if gap := times[2].Sub(times[1]); gap < 1500*time.Millisecond {
		t.Fatalf("second retry came after %s; backoff did not grow", gap)
	}
}

func TestRenewalKeepsASlowHandlerExclusive(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	var running, maxRunning, total atomic.Int32
	handler := func(ctx context.Context, m *queues.Message) error {
		total.Add(1)
		now := running.Add(1)
		defer running.Add(-1)
		for {
			old := maxRunning.Load()
			if now <= old || maxRunning.CompareAndSwap(old, now) {
				break
			}
		}
		// Work over twice as long as the visibility timeout (8 s: renewed every 4 s, so a
		// storage slowed by the whole race-enabled suite may take seconds to answer a renewal;
		// 3 s was seen to lapse, and 5 s once in CI on a busy machine).
		select {
		case <-time.After(17 * time.Second):
		case <-ctx.Done():
		}
		return nil
	}
	// Two replicas race for the same queue.
	a := start(t, c, queues.ConsumerConfig{Handler: handler, VisibilityTimeout: 8 * time.Second})
	b := start(t, c, queues.ConsumerConfig{Handler: handler, VisibilityTimeout: 8 * time.Second})
	enqueue(t, c, "slow")
	testenv.Eventually(t, 45*time.Second, "handled and deleted", func() bool {
		idleA, _ := a.Idle()
		idleB, _ := b.Idle()
		return total.Load() >= 1 && idleA && idleB && count(t, c, work) == 0
	})
	if total.Load() != 1 || maxRunning.Load() != 1 {
		t.Fatalf("handler ran %d times, %d at once; want once", total.Load(), maxRunning.Load())
	}
}

func TestGracefulStopFinishesInFlightAndDeletesNothingUnfinished(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	release := make(chan struct{})
	var started, finished, cancelled, late atomic.Int32
	cons := start(t, c, queues.ConsumerConfig{VisibilityTimeout: 3 * time.Second, Handler: func(ctx context.Context, m *queues.Message) error {
		if string(m.Body) == "after-stop" {
			// Taken by the dequeue that was in flight when the stop began, which a loaded
			// storage served after the enqueue below: it comes after the deadline, with a
			// cancelled context, and is left (and counted) as it came.
			late.Add(1)
			<-ctx.Done()
			return ctx.Err()
		}
		started.Add(1)
		if string(m.Body) == "quick" {
			<-release // finishes once stop has begun
			finished.Add(1)
			return nil
		}
		<-ctx.Done() // never finishes by itself: the soft stop must cancel it
		cancelled.Add(1)
		return ctx.Err()
	}})
	enqueue(t, c, "quick", "stuck")
	testenv.Eventually(t, 10*time.Second, "both handlers running", func() bool { return started.Load() == 2 })

	stopped := make(chan error)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopped <- cons.Stop(ctx)
	}()
	// The quick handler finishes once the stop has begun, well within its deadline (a loaded
	// machine may take seconds to enqueue, so it is released first).
	close(release)
	// Fetching has stopped: a message sent now is not taken by this consumer.
	enqueue(t, c, "after-stop")
	// The stuck handler was abandoned at the deadline: Stop says so, and how many.
	err := <-stopped
	if want := fmt.Sprintf("%d in-flight handler(s) cancelled", 1+late.Load()); !errors.Is(err, lifecycle.ErrAbandoned) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Stop after abandoning a handler: %v, want %q", err, want)
	}
	if finished.Load() != 1 || cancelled.Load() != 1 || started.Load() != 2 {
		t.Fatalf("finished %d, cancelled %d, started %d", finished.Load(), cancelled.Load(), started.Load())
	}
	// "quick" was deleted; "stuck" and "after-stop" are still there.
	testenv.Eventually(t, 15*time.Second, "the unfinished message to reappear", func() bool {
		texts, err := c.Peek(context.Background(), work)
		return err == nil && len(texts) == 2 && contains(texts, "stuck") && contains(texts, "after-stop")
	})
}

func TestStopOfAFinishedConsumerReportsNothingAbandoned(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	var done atomic.Int32
	cons := start(t, c, queues.ConsumerConfig{Handler: func(ctx context.Context, m *queues.Message) error { done.Add(1); return nil }})
	enqueue(t, c, "a", "b")
	testenv.Eventually(t, 10*time.Second, "both handled", func() bool { return done.Load() == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cons.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := cons.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := cons.Start(ctx); err == nil || !strings.Contains(err.Error(), "runs once") {
		t.Fatalf("Start after Stop: %v", err)
	}
}

// A stop whose deadline has passed already abandons nothing when nothing is in flight: an idle
// consumer stops cleanly even then (its "done" and the deadline are both ready at once).
func TestAnIdleConsumerStoppedPastItsDeadlineAbandonsNothing(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	for range 20 {
		cons := start(t, c, queues.ConsumerConfig{Handler: func(context.Context, *queues.Message) error { return nil }})
		testenv.Eventually(t, 10*time.Second, "the consumer idle", func() bool { idle, _ := cons.Idle(); return idle })
		expired, cancel := context.WithCancel(context.Background())
		cancel()
		if err := cons.Stop(expired); err != nil {
			t.Fatalf("Stop of an idle consumer at an expired deadline: %v", err)
		}
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// crashWhileHandling enqueues body and has a consumer take it and die handling it: a hard
// stop, nothing settled, one delivery spent.
func crashWhileHandling(t *testing.T, c *queues.Client, body string) {
	t.Helper()
	taken := make(chan struct{})
	first, err := c.NewConsumer(queues.ConsumerConfig{Queue: work, VisibilityTimeout: time.Second, Logger: testenv.Logger(t),
		PollInterval: 20 * time.Millisecond, Handler: func(ctx context.Context, m *queues.Message) error {
			close(taken)
			<-ctx.Done()
			return ctx.Err()
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	enqueue(t, c, body)
	<-taken
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	_ = first.Stop(expired)
}

func TestCrashedDeliveriesPastTheMaximumArePoisoned(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	crashWhileHandling(t, c, "crashes-the-worker")
	var handled atomic.Int32
	start(t, c, queues.ConsumerConfig{MaxUnfinishedDeliveries: 1, Handler: func(context.Context, *queues.Message) error {
		handled.Add(1)
		return nil
	}})
	testenv.Eventually(t, 20*time.Second, "poisoned", func() bool { return len(poisoned(t, c)) == 1 })
	rec := poisoned(t, c)[0]
	if handled.Load() != 0 || rec.Attempts != 2 || !strings.Contains(rec.Reason, "no handler ever finished it") {
		t.Fatalf("handled %d; record %+v", handled.Load(), rec)
	}
}

// Deliveries spent by crashes around a healthy message (replicas killed, redeployed, dequeue
// replies lost) do not count against its handler failures: found by make chaos, where a
// valid event was poisoned after six deliveries to replicas that were killed.
func TestCrashedDeliveriesDoNotSpendTheFailureBudget(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	crashWhileHandling(t, c, "healthy")
	var handled atomic.Int32
	start(t, c, queues.ConsumerConfig{MaxDequeueCount: 1, Handler: func(context.Context, *queues.Message) error {
		handled.Add(1)
		return nil
	}})
	testenv.Eventually(t, 20*time.Second, "handled", func() bool { return handled.Load() == 1 })
	if p := poisoned(t, c); len(p) != 0 {
		t.Fatalf("poisoned %+v", p)
	}
}

func TestPublishClaimChecksLargePayloads(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	payload := map[string]string{"notes": strings.Repeat("x", 150_000)}
	raw, _ := json.Marshal(payload)
	ev := &platform.EntityEvent{EventTypeID: 12, EntityTypeID: 1, ActionTypeID: 2, EntityID: 5, BusinessUnitID: 1,
		CreatedOn: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), Payload: raw}
	if _, err := c.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	texts, err := c.Peek(context.Background(), work)
	if err != nil || len(texts) != 1 {
		t.Fatalf("peek: %v, %d", err, len(texts))
	}
	got, err := platform.DecodeEvent([]byte(texts[0]))
	if err != nil {
		t.Fatal(err)
	}
	if got.Payload != nil || got.PayloadBlob == "" || len(texts[0]) > 1024 {
		t.Fatalf("message was not claim-checked: %d bytes, blob %q", len(texts[0]), got.PayloadBlob)
	}
	stored, err := c.Blobs().GetPayload(context.Background(), got.PayloadBlob)
	if err != nil || string(stored) != string(raw) {
		t.Fatalf("blob: %v, %d bytes (want %d)", err, len(stored), len(raw))
	}
}

// A message this process sends wakes its idle consumer at once; with shards, the consumer of
// the shard it is sent to.
func TestAnIdleConsumerIsNudgedByItsOwnProcess(t *testing.T) {
	t.Parallel()
	for _, shards := range []int{1, 4} {
		t.Run(fmt.Sprintf("%d shards", shards), func(t *testing.T) {
			t.Parallel()
			counter := &storage.Counter{}
			c, err := queues.New(storage.Account{Counter: counter}, testenv.Namespace(t))
			if err == nil {
				err = c.SetShards(shards)
			}
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			cons, err := c.NewConsumer(queues.ConsumerConfig{Queue: work, Logger: testenv.Logger(t),
				PollInterval: time.Minute, MaxPollInterval: time.Minute, // asleep for a minute after an empty poll
				Handler: func(context.Context, *queues.Message) error { close(done); return nil }})
			if err != nil {
				t.Fatal(err)
			}
			if err := cons.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer cons.Stop(context.Background())
			testenv.Eventually(t, 10*time.Second, "a first, empty poll of each queue", func() bool { return counter.Snapshot()[storage.KindDequeueEmpty] >= int64(shards) })
			if _, err := c.Publish(context.Background(), attendeeEvent(t, 7, 0)); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the consumer slept through a message its own process sent")
			}
		})
	}
}

// slowPoison holds every message sent to a poison queue for a while before sending it.
type slowPoison struct{ delay time.Duration }

func (s slowPoison) Do(req *policy.Request) (*http.Response, error) {
	if r := req.Raw(); r.Method == http.MethodPost && strings.Contains(r.URL.Path, platform.PoisonSuffix+"/messages") {
		time.Sleep(s.delay) // storage being slow, not a test waiting for work
	}
	return req.Next()
}

// A message stays hidden until it is settled: poisoning it (a send to the poison queue, then
// a delete) can take longer than the visibility timeout, and must not let it reappear and be
// handled and poisoned a second time (found in CI under load).
func TestASlowSettleKeepsTheMessageHidden(t *testing.T) {
	t.Parallel()
	// Poisoning takes 1.5 visibility timeouts; the timeout is 8 s, renewed every 4 s (a
	// storage slowed by the race-enabled suite once let a 1 s renewal margin lapse, and a 2 s
	// one once in CI).
	c, err := queues.New(storage.Account{Policies: []policy.Policy{slowPoison{delay: 12 * time.Second}}}, testenv.Namespace(t))
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int32
	start(t, c, queues.ConsumerConfig{VisibilityTimeout: 8 * time.Second, Handler: func(context.Context, *queues.Message) error {
		handled.Add(1)
		return platform.Permanent(errors.New("refused"))
	}})
	enqueue(t, c, "slow to settle")
	testenv.Eventually(t, 45*time.Second, "the work queue empty", func() bool { return handled.Load() > 0 && count(t, c, work) == 0 })
	if n, recs := handled.Load(), poisoned(t, c); n != 1 || len(recs) != 1 {
		t.Fatalf("handled %d times, %d poison records: the message reappeared while it was being poisoned", n, len(recs))
	}
}
