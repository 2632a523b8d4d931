package worker_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/history"
	"github.com/platform/platform/worker/outbox"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newWorker starts a worker in a fresh namespace (or cfg's) with fast test timings; it stops
// when t ends.
func newWorker(t *testing.T, cfg worker.Config) *worker.Worker {
	t.Helper()
	if cfg.Namespace == "" {
		cfg.Namespace = testenv.Namespace(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = testenv.Logger(t)
	}
	cfg.SettingsDSN = filepath.Join(t.TempDir(), "settings.db")
	// The outbox's background requests would blur the per-event counts; its tests use their
	// own helper.
	cfg.Outbox.Disabled = true
	c := &cfg.Consumer
	if c.VisibilityTimeout == 0 {
		c.VisibilityTimeout = 2 * time.Second
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = time.Second
	}
	c.PollInterval, c.MaxPollInterval = 20*time.Millisecond, 100*time.Millisecond
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

func drain(t *testing.T, w *worker.Worker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.WaitDrained(ctx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

func send(t *testing.T, w *worker.Worker, texts ...string) {
	t.Helper()
	for _, text := range texts {
		if err := w.Queues().Enqueue(context.Background(), platform.QueueEntityEvents, text, 0); err != nil {
			t.Fatal(err)
		}
	}
}

func timeline(t *testing.T, w *worker.Worker, entityTypeID int, identity string) []platform.HistoryRecord {
	t.Helper()
	rows, _, err := history.Timeline(context.Background(), w.History(), w.Blobs(), entityTypeID, identity, &tablesOpts)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func poison(t *testing.T, w *worker.Worker) []queues.PoisonRecord {
	t.Helper()
	texts, err := w.Queues().Peek(context.Background(), platform.PoisonQueue(platform.QueueEntityEvents))
	if err != nil {
		t.Fatal(err)
	}
	// Poisoning is at least once: a message whose visibility lapsed on a loaded machine (or
	// whose delete failed) is poisoned again by the next delivery. One record per body.
	var out []queues.PoisonRecord
	seen := map[string]bool{}
	for _, text := range texts {
		rec, _ := queues.DecodePoison(text)
		if !seen[rec.Body] {
			seen[rec.Body] = true
			out = append(out, rec)
		}
	}
	return out
}

func event(eventTypeID, entityTypeID, actionTypeID int, guid, createdOn, payload string) string {
	return fmt.Sprintf(`{"eventTypeId":%d,"entityTypeId":%d,"actionTypeId":%d,"entityGuid":%q,"businessUnitId":42,"createdOn":%q,"payload":%s}`,
		eventTypeID, entityTypeID, actionTypeID, guid, createdOn, payload)
}

const attendee = "7c9e6679-7425-40de-944b-e07fc1f90ae7"

func TestSameOccurrenceInThreeEncodingsWritesOneRow(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{})
	camel := event(12, 1, 2, attendee, "2026-11-22T10:00:00.1234567Z", `{"firstName":"Ada"}`)
	pascal := strings.NewReplacer(`"eventTypeId"`, `"EventTypeId"`, `"entityTypeId"`, `"EntityTypeId"`, `"actionTypeId"`, `"ActionTypeId"`,
		`"entityGuid"`, `"EntityGuid"`, `"businessUnitId"`, `"BusinessUnitId"`, `"createdOn"`, `"CreatedOn"`, `"payload"`, `"Payload"`,
		attendee, strings.ToUpper(attendee), "10:00:00.1234567Z", "11:00:00.12345678+01:00").Replace(camel)
	b64 := base64.StdEncoding.EncodeToString([]byte(camel))
	later := event(12, 1, 2, attendee, "2026-11-22T10:00:00.1234568Z", `{"firstName":"Ada"}`)
	send(t, w, camel, pascal, b64, later)
	drain(t, w)

	rows := timeline(t, w, 1, attendee)
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2 (three deliveries of one occurrence, one other): %+v", len(rows), rows)
	}
	// Newest first.
	want := []string{
		"entity-history:12:1:" + attendee + ":2026-11-22T10:00:00.1234568Z:2",
		"entity-history:12:1:" + attendee + ":2026-11-22T10:00:00.1234567Z:2",
	}
	for i, r := range rows {
		if r.HistoryEventKey != want[i] {
			t.Errorf("row %d: %s, want %s", i, r.HistoryEventKey, want[i])
		}
	}
	if len(poison(t, w)) != 0 {
		t.Fatal("something was poisoned")
	}
}

// failDeletes makes every Delete Message request fail before it reaches storage while on is
// set: to the queue, the worker died after its effects and before the delete.
type failDeletes struct{ on atomic.Bool }

func (f *failDeletes) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if f.on.Load() && r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/messages/") {
		return nil, errors.New("injected: process died before deleting the message")
	}
	return req.Next()
}

// observer is a concern that counts the events it sees.
type observer struct {
	name string
	n    atomic.Int32
	err  error
}

func (o *observer) Name() string                       { return o.name }
func (o *observer) Accepts(*platform.EntityEvent) bool { return true }
func (o *observer) Process(context.Context, *platform.EntityEvent) error {
	o.n.Add(1)
	return o.err
}

func TestCrashBetweenHistoryWriteAndDeleteStillOneRow(t *testing.T) {
	t.Parallel()
	fault := &failDeletes{}
	fault.on.Store(true)
	seen := &observer{name: "observer"}
	w := newWorker(t, worker.Config{
		Account:        storage.Account{Policies: []policy.Policy{fault}, Retry: &policy.RetryOptions{MaxRetries: -1}},
		PostProcessors: []worker.PostProcessor{seen},
	})
	send(t, w, event(11, 1, 1, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`))
	testenv.Eventually(t, 30*time.Second, "the message to come back after the lost delete", func() bool { return seen.n.Load() >= 2 })
	fault.on.Store(false)
	drain(t, w)
	if rows := timeline(t, w, 1, attendee); len(rows) != 1 {
		t.Fatalf("%d rows after a redelivery, want 1", len(rows))
	}
}

func TestFailingConcernDoesNotStopHistoryAndIsPoisonedWithItsError(t *testing.T) {
	t.Parallel()
	counter := &storage.Counter{}
	failing := &observer{name: "always-fails", err: errors.New("downstream unavailable")}
	w := newWorker(t, worker.Config{
		Account:        storage.Account{Counter: counter},
		PostProcessors: []worker.PostProcessor{failing},
		Consumer:       queues.ConsumerConfig{MaxDequeueCount: 3},
	})
	counter.Reset()
	send(t, w, event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{}`))
	testenv.Eventually(t, 30*time.Second, "poisoned", func() bool { return len(poison(t, w)) == 1 })

	if rows := timeline(t, w, 1, attendee); len(rows) != 1 {
		t.Fatalf("history rows: %d, want 1 despite the failing concern", len(rows))
	}
	rec := poison(t, w)[0]
	if rec.Attempts != 3 || !strings.Contains(rec.Reason, "always-fails: downstream unavailable") {
		t.Fatalf("poison record %+v", rec)
	}
	if failing.n.Load() != 3 {
		t.Fatalf("failing concern ran %d times, want 3", failing.n.Load())
	}
	// Only the failed concern was retried: history wrote its row once, not three times.
	if writes := counter.Snapshot()[storage.KindTableWrite]; writes != 1 {
		t.Fatalf("history wrote %d times, want 1", writes)
	}
}

func TestMalformedMessagesArePoisonedOnFirstDeliveryAndOthersFlow(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{})
	missing := platform.PayloadBlobName(42, []byte(`{"never":"published"}`))
	send(t, w,
		`{"eventTypeId":11, "entityTypeId":`,
		`{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"businessUnitId":42}`,
		`{"eventTypeId":999,"entityTypeId":1,"actionTypeId":1,"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z"}`,
		`{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z","payloadBlob":"`+missing+`"}`,
		event(11, 1, 1, attendee, "2026-11-22T10:00:00Z", `{}`),
	)
	testenv.Eventually(t, 30*time.Second, "four poisoned", func() bool { return len(poison(t, w)) == 4 })
	drain(t, w)
	reasons := map[string]bool{}
	for _, rec := range poison(t, w) {
		if rec.Attempts != 1 {
			t.Errorf("%q poisoned after %d attempts, want 1", rec.Body, rec.Attempts)
		}
		for _, want := range []string{"invalid JSON", "createdOn: required", "unknown eventTypeId 999", "payloadBlob: blob \"" + missing + "\" not found"} {
			if strings.Contains(rec.Reason, want) {
				reasons[want] = true
			}
		}
	}
	if len(reasons) != 4 {
		t.Fatalf("reasons found: %v; records: %+v", reasons, poison(t, w))
	}
	if rows := timeline(t, w, 1, attendee); len(rows) != 1 {
		t.Fatalf("the good event wrote %d rows, want 1", len(rows))
	}
}

func TestLargePayloadRoundTripsThroughTheClaimCheck(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{})
	notes := strings.Repeat("0123456789abcdef", 150_000/16)
	payload, _ := json.Marshal(map[string]string{"notes": notes})
	ev, err := platform.DecodeEvent([]byte(event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", string(payload))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Queues().Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	drain(t, w)
	rows := timeline(t, w, 1, attendee)
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	if rows[0].SnapshotBlob == "" || string(rows[0].Snapshot) != string(payload) {
		t.Fatalf("snapshot blob %q, %d bytes back (want %d)", rows[0].SnapshotBlob, len(rows[0].Snapshot), len(payload))
	}
}

func TestSubmitIncidentWritesOnThreeTimelines(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{})
	incident := "11111111-2222-3333-4444-555555555555"
	a1, a2 := "aaaaaaaa-0000-0000-0000-000000000001", "aaaaaaaa-0000-0000-0000-000000000002"
	payload := fmt.Sprintf(`{"summary":"fell off the swing","attendeeGuids":[%q,%q,%q]}`, a1, strings.ToUpper(a2), a1)
	ev := event(31, 3, 4, incident, "2026-11-22T10:00:00Z", payload)
	send(t, w, ev, ev) // delivered twice
	drain(t, w)

	for _, tl := range []struct {
		entityTypeID int
		identity     string
	}{{3, incident}, {1, a1}, {1, a2}} {
		rows := timeline(t, w, tl.entityTypeID, tl.identity)
		if len(rows) != 1 {
			t.Fatalf("timeline %d:%s has %d rows, want 1", tl.entityTypeID, tl.identity, len(rows))
		}
		want := fmt.Sprintf("entity-history:31:%d:%s:2026-11-22T10:00:00.0000000Z:4", tl.entityTypeID, tl.identity)
		if rows[0].HistoryEventKey != want || rows[0].EventKey != "31:3:"+incident+":2026-11-22T10:00:00.0000000Z:4" {
			t.Fatalf("row %+v, want key %s", rows[0], want)
		}
	}
}

func TestDrainedCountsDelayedMessagesAsWork(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{})
	if err := w.Queues().Enqueue(context.Background(), platform.QueueEntityEvents, event(11, 1, 1, attendee, "2026-11-22T10:00:00Z", `{}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	ok, err := w.Drained(context.Background())
	if err != nil || ok {
		t.Fatalf("drained = %v (%v) with a delayed message in the queue", ok, err)
	}
}

func TestHistoryCanBeExtendedWithoutTouchingTheWorker(t *testing.T) {
	t.Parallel()
	reg := &mappings.HistoryRegistry{}
	reg.MustRegister(700, mappings.Hinted{Summary: "Custom thing happened"})
	if err := reg.Register(700, mappings.Hinted{}); err == nil {
		t.Fatal("registering a type twice must fail: registries are append-only")
	}
	w := newWorker(t, worker.Config{History: reg})
	send(t, w, event(700, 9, 2, attendee, "2026-11-22T10:00:00Z", `{}`), event(11, 1, 1, attendee, "2026-11-22T10:00:00Z", `{}`))
	testenv.Eventually(t, 30*time.Second, "one row and one poison", func() bool { return len(poison(t, w)) == 1 })
	drain(t, w)
	rows := timeline(t, w, 9, attendee)
	if len(rows) != 1 || rows[0].Summary != "Custom thing happened" || rows[0].Action != "Update" {
		t.Fatalf("rows %+v", rows)
	}
	if rec := poison(t, w)[0]; !strings.Contains(rec.Reason, "unknown eventTypeId 11") {
		t.Fatalf("event type 11 is not in this registry, yet: %+v", rec)
	}
}

// TestStorageRequestsPerHistoryEvent counts, with a pipeline policy, what one history-only
// event costs the storage account, publish included, when the worker works through a backlog
// (the throughput case: dequeues come back full).
func TestStorageRequestsPerHistoryEvent(t *testing.T) {
	t.Parallel()
	counter := &storage.Counter{}
	acct := storage.Account{Counter: counter}
	ns := testenv.Namespace(t)
	pub, err := queues.New(acct, ns)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Create(context.Background(), platform.QueueEntityEvents); err != nil {
		t.Fatal(err)
	}
	counter.Reset()
	const n = 64
	for i := range n {
		ev, err := platform.DecodeEvent([]byte(fmt.Sprintf(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityId":%d,"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z","payload":{"n":%d}}`, i+1, i)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	w, err := worker.New(worker.Config{Account: acct, Namespace: ns, Logger: testenv.Logger(t), SettingsDSN: filepath.Join(t.TempDir(), "settings.db"),
		Outbox: outbox.Config{Disabled: true}, QueueSampleEvery: -1, // no background requests in the counts
		Consumer: queues.ConsumerConfig{PollInterval: 20 * time.Millisecond, MaxPollInterval: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(context.Background())
	// Not per event: the start-up read (or making) of the key that signs retry progress.
	startBlobs := counter.Snapshot()[storage.KindBlob]
	drain(t, w)

	c := counter.Snapshot()
	perEvent := func(kind string) float64 { return float64(c[kind]) / n }
	// Not per event: the start-up read of the webhook endpoints, and the change bus's polls
	// (one a second, whatever the load).
	c[storage.KindTableRead] = 0
	c[storage.KindBlob] -= startBlobs
	work := c[storage.KindEnqueue] + c[storage.KindDequeue] + c[storage.KindDelete] + c[storage.KindUpdate] +
		c[storage.KindTableRead] + c[storage.KindTableWrite] + c[storage.KindTableBatch] + c[storage.KindBlob]
	t.Logf("per history-only event (n=%d): enqueue %.3f, dequeue %.3f, delete %.3f, update %.3f, table write %.3f, change-bus batch %.3f, blob %.3f → %.3f requests; "+
		"outside the per-event work: %d empty polls, %d queue and %d table admin requests (start-up, drain counts)",
		n, perEvent(storage.KindEnqueue), perEvent(storage.KindDequeue), perEvent(storage.KindDelete), perEvent(storage.KindUpdate),
		perEvent(storage.KindTableWrite), perEvent(storage.KindTableBatch), perEvent(storage.KindBlob), float64(work)/n,
		c[storage.KindDequeueEmpty], c[storage.KindQueueAdmin], c[storage.KindTableAdmin])
	if c[storage.KindEnqueue] != n || c[storage.KindTableWrite] != n || c[storage.KindDelete] != n {
		t.Fatalf("want exactly one enqueue, one table write and one delete per event: %v", c)
	}
	if c[storage.KindUpdate] != 0 || c[storage.KindTableRead] != 0 || c[storage.KindBlob] != 0 {
		t.Fatalf("requests a history-only event does not need: %v", c)
	}
	// The history path itself: publish, dequeue (batched), row, delete.
	if per := float64(work-c[storage.KindTableBatch]) / n; per > 3.1 {
		t.Fatalf("%.3f storage requests per event on the history path, over the 3.1 budget: %v", per, c)
	}
	// The realtime change bus shares transactions between events handled together.
	if c[storage.KindTableBatch] > n/2 {
		t.Fatalf("%d change-bus transactions for %d events: group commit is not grouping", c[storage.KindTableBatch], n)
	}
}
