package worker_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/worker"
)

// scraped is one read of a worker's /metrics, by series as the text format prints it.
type scraped map[string]float64

// scrapeMetrics reads w's /metrics from its metrics listener, in Prometheus's text format.
func scrapeMetrics(t *testing.T, w *worker.Worker) scraped {
	t.Helper()
	resp, err := http.Get("http://" + w.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := scraped{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// seriesKey names a series: labels are name, value pairs, printed sorted by name as the registry does.
func seriesKey(name string, labels ...string) string {
	var pairs []string
	for i := 0; i+1 < len(labels); i += 2 {
		pairs = append(pairs, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	if len(pairs) == 0 {
		return name
	}
	slices.Sort(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// has reports whether the series was exported at all (a zeroed series is).
func (s scraped) has(name string, labels ...string) bool {
	_, ok := s[seriesKey(name, labels...)]
	return ok
}

func (s scraped) get(name string, labels ...string) float64 { return s[seriesKey(name, labels...)] }

// deltas are the changes from before to after of the series named, each "name label value …".
func deltas(before, after scraped, series map[string][]string) map[string]float64 {
	out := map[string]float64{}
	for what, key := range series {
		out[what] = after.get(key[0], key[1:]...) - before.get(key[0], key[1:]...)
	}
	return out
}

// failsOnce is a concern that fails the first delivery of the event about entity guid.
type failsOnce struct {
	guid   string
	failed atomic.Bool
}

func (*failsOnce) Name() string                       { return "fails-once" }
func (*failsOnce) Accepts(*platform.EntityEvent) bool { return true }
func (f *failsOnce) Process(_ context.Context, ev *platform.EntityEvent) error {
	if ev.EntityGUID == f.guid && f.failed.CompareAndSwap(false, true) {
		return errors.New("injected: downstream unavailable, once")
	}
	return nil
}

// A good event, a malformed message and an event one concern fails once, driven through a
// worker: each consumer outcome, each concern's run and the history latency move by exactly
// what happened, as the real /metrics shows them.
func TestQueueAndConcernMetricsCountEachOutcome(t *testing.T) {
	t.Parallel()
	const flakyGUID = "0b6f6a51-3b8c-4a57-9a39-5f2f1b2c3d4e"
	w := newWorker(t, worker.Config{
		MetricsAddr:    "127.0.0.1:0",
		PostProcessors: []worker.PostProcessor{&failsOnce{guid: flakyGUID}},
		// Long enough that no delivery lapses on a loaded machine: a lapse is a redelivery.
		Consumer: queues.ConsumerConfig{VisibilityTimeout: 10 * time.Second},
	})
	const events = platform.QueueEntityEvents
	series := map[string][]string{
		"processed":       {"platform_queue_messages_total", "queue", events, "outcome", "processed"},
		"retried":         {"platform_queue_messages_total", "queue", events, "outcome", "retried"},
		"poisoned":        {"platform_queue_messages_total", "queue", events, "outcome", "poisoned"},
		"abandoned":       {"platform_queue_messages_total", "queue", events, "outcome", "abandoned"},
		"handled":         {"platform_queue_handler_seconds_count", "queue", events},
		"waited":          {"platform_queue_wait_seconds_count", "queue", events},
		"history done":    {"platform_concern_runs_total", "concern", "history", "outcome", "done"},
		"history failed":  {"platform_concern_runs_total", "concern", "history", "outcome", "failed"},
		"history skipped": {"platform_concern_runs_total", "concern", "history", "outcome", "skipped"},
		"flaky done":      {"platform_concern_runs_total", "concern", "fails-once", "outcome", "done"},
		"flaky failed":    {"platform_concern_runs_total", "concern", "fails-once", "outcome", "failed"},
		"flaky skipped":   {"platform_concern_runs_total", "concern", "fails-once", "outcome", "skipped"},
		"history latency": {"platform_effect_latency_seconds_count", "effect", "history"},
	}
	before := scrapeMetrics(t, w)
	// Zeroed from the start: a dashboard sees 0, not nothing, before the first message.
	for what, key := range series {
		if !before.has(key[0], key[1:]...) {
			t.Errorf("series %s (%s) not exported before any work", what, seriesKey(key[0], key[1:]...))
		}
	}
	for _, q := range platform.WorkQueues {
		if !before.has("platform_queue_messages_total", "queue", q, "outcome", "processed") {
			t.Errorf("queue %s: no processed series before any work", q)
		}
	}
	if !before.has("platform_storage_requests_total", "service", "queue", "kind", "queue.enqueue", "status", "5xx") {
		t.Error("storage requests: no queue.enqueue 5xx series before any work")
	}

	step := func(what string, want map[string]float64, texts ...string) {
		t.Helper()
		start := scrapeMetrics(t, w)
		send(t, w, texts...)
		drain(t, w)
		got := deltas(start, scrapeMetrics(t, w), series)
		for k := range series {
			if got[k] != want[k] {
				t.Errorf("%s: %s moved by %v, want %v (all: %v)", what, k, got[k], want[k], got)
			}
		}
	}
	step("a good event", map[string]float64{"processed": 1, "handled": 1, "waited": 1, "history done": 1, "flaky done": 1, "history latency": 1},
		event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{}`))
	step("a malformed message", map[string]float64{"poisoned": 1, "handled": 1, "waited": 1},
		`{"eventTypeId":11, "entityTypeId":`)
	step("an event a concern fails once", map[string]float64{"retried": 1, "processed": 1, "handled": 2, "waited": 2,
		"history done": 1, "history skipped": 1, "flaky failed": 1, "flaky done": 1, "history latency": 1},
		event(12, 1, 2, flakyGUID, "2026-11-22T10:00:00Z", `{}`))

	after := scrapeMetrics(t, w)
	if n := after.get("platform_effect_latency_seconds_count", "effect", "history"); n != 2 {
		t.Fatalf("%v history latencies, want 2", n)
	}
	// From its enqueue to the row: under a minute, even here.
	if sum := after.get("platform_effect_latency_seconds_sum", "effect", "history"); sum <= 0 || sum > 2*60 {
		t.Fatalf("history latencies sum to %vs", sum)
	}
	if sent := after.get("platform_storage_requests_total", "service", "table", "kind", "table.write", "status", "2xx"); sent < 2 {
		t.Fatalf("%v table writes seen, want at least the two history rows", sent)
	}
}

// One replica samples the queues (the lease holder): the depth and age of what waits on
// entity-events, with no consumer of it; the other replica reports nothing until the first
// stops, then takes over. The enqueues are counted as storage requests, exactly.
func TestQueueSamplerReportsDepthAndAgeFromOneReplica(t *testing.T) {
	t.Parallel()
	cfg := worker.Config{
		Namespace:        testenv.Namespace(t),                     // both replicas'
		Roles:            worker.RoleSet{worker.RoleNotifications}, // nothing consumes entity-events
		MetricsAddr:      "127.0.0.1:0",
		QueueSampleEvery: 100 * time.Millisecond,
	}
	first := newWorker(t, cfg)
	began := time.Now()
	enqueue := []string{"platform_storage_requests_total", "service", "queue", "kind", "queue.enqueue", "status", "2xx"}
	before := scrapeMetrics(t, first).get(enqueue[0], enqueue[1:]...)
	const n = 5
	for i := range n {
		send(t, first, event(12, 1, 2, attendee, fmt.Sprintf("2026-11-22T10:00:0%dZ", i), `{}`))
	}
	if got := scrapeMetrics(t, first).get(enqueue[0], enqueue[1:]...) - before; got != n {
		t.Fatalf("queue.enqueue requests moved by %v, want %d", got, n)
	}

	depth := func(w *worker.Worker, q string) (float64, float64, bool) {
		m := scrapeMetrics(t, w)
		return m.get("platform_queue_depth", "queue", q), m.get("platform_queue_oldest_message_age_seconds", "queue", q),
			m.has("platform_queue_depth", "queue", q)
	}
	// A sample is whole once its time is set (after every queue was read): until then the
	// gauges of the first queues may be set and the time not yet.
	testenv.Eventually(t, 30*time.Second, "a whole sample of entity-events with its 5 messages", func() bool {
		d, age, _ := depth(first, platform.QueueEntityEvents)
		return d == n && age > 0 && scrapeMetrics(t, first).get("platform_queue_sample_timestamp_seconds") > 0
	})
	m := scrapeMetrics(t, first)
	if at := m.get("platform_queue_sample_timestamp_seconds"); at < float64(began.Unix()) {
		t.Fatalf("sample time %v, before the test began (%d)", at, began.Unix())
	}
	for _, q := range platform.WorkQueues {
		for _, name := range []string{q, platform.PoisonQueue(q)} {
			if name == platform.QueueEntityEvents {
				continue
			}
			d, age, ok := depth(first, name)
			if !ok || d != 0 || age != 0 {
				t.Fatalf("queue %s: sampled %t, depth %v, age %v; want sampled, 0 and 0", name, ok, d, age)
			}
		}
	}
	if age := m.get("platform_queue_oldest_message_age_seconds", "queue", platform.QueueEntityEvents); age > time.Since(began).Seconds()+1 {
		t.Fatalf("oldest message %vs old, but the test began %s ago", age, time.Since(began))
	}

	// A second replica in the same namespace does not sample while the first holds the lease:
	// not in the two seconds the first takes to sample some twenty times more.
	second := newWorker(t, cfg)
	since := m.get("platform_queue_sample_timestamp_seconds")
	testenv.Eventually(t, 30*time.Second, "two more seconds of samples by the first", func() bool {
		return scrapeMetrics(t, first).get("platform_queue_sample_timestamp_seconds") >= since+2
	})
	if m := scrapeMetrics(t, second); m.has("platform_queue_depth", "queue", platform.QueueEntityEvents) || m.get("platform_queue_sample_timestamp_seconds") != 0 {
		t.Fatal("the second replica sampled while the first held the lease")
	}
	// The first stops: it gives the lease up and its gauges go; the second samples.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	families, err := first.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if n := f.GetName(); (n == "platform_queue_depth" || n == "platform_queue_oldest_message_age_seconds") && len(f.GetMetric()) > 0 {
			t.Fatalf("a stopped sampler still reports %s", n)
		}
	}
	testenv.Eventually(t, 30*time.Second, "the second replica to sample", func() bool {
		d, age, _ := depth(second, platform.QueueEntityEvents)
		return d == n && age > 0
	})
}
