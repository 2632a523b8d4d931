package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/outbox"
)

func outboxConfig(env *notifyEnv) worker.Config {
	cfg := env.config()
	cfg.Outbox = outbox.Config{LeaseDuration: 15 * time.Second, PollInterval: 100 * time.Millisecond,
		StaleAfter: time.Second, ReconcileEvery: 300 * time.Millisecond}
	return cfg
}

func intentState(t *testing.T, w *worker.Worker, key string) platform.IntentState {
	t.Helper()
	in, err := w.Outbox().Store().Get(context.Background(), key)
	if errors.Is(err, platform.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return in.State
}

func logRows(t *testing.T, w *worker.Worker, key string) int {
	t.Helper()
	n, err := w.Outbox().EventLog().Count(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// failNextPost fails the next POST whose path ends with suffix and whose body contains
// marker, once armed.
type failNextPost struct {
	suffix, marker string
	armed          atomic.Bool
	fired          atomic.Bool
}

func (f *failNextPost) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, f.suffix) {
		return req.Next()
	}
	if f.marker != "" && r.Body != nil {
		body, _ := io.ReadAll(r.Body)
		if err := req.RewindBody(); err != nil {
			return nil, err
		}
		if !strings.Contains(string(body), f.marker) {
			return req.Next()
		}
	}
	if f.armed.CompareAndSwap(true, false) {
		f.fired.Store(true)
		return nil, errors.New("injected: the materializer died here")
	}
	return req.Next()
}

func TestMaterializerCrashBetweenStepsEmitsOnce(t *testing.T) {
	t.Parallel()
	for name, fault := range map[string]*failNextPost{
		"between log row and enqueue":        {suffix: "-entity-events/messages"},
		"between enqueue and marking intent": {suffix: "OutboxIntents", marker: `"PartitionKey":"Materialized"`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := newNotifyEnv(t, "", option(42, 101, true, "email", 0))
			cfg := outboxConfig(env)
			cfg.Account = storage.Account{Policies: []policy.Policy{fault}, Retry: &policy.RetryOptions{MaxRetries: -1}}
			w := env.start(cfg)
			ev, _ := platform.DecodeEvent([]byte(hinted(attendee)))
			in, err := w.Outbox().AppendIntent(context.Background(), ev, nil)
			if err != nil {
				t.Fatal(err)
			}
			fault.armed.Store(true)
			if _, err := w.Outbox().ConfirmIntent(context.Background(), in.SourceKey); err != nil {
				t.Fatal(err)
			}
			drain(t, w)
			if !fault.fired.Load() {
				t.Fatal("the fault was never injected")
			}
			if st := intentState(t, w, in.SourceKey); st != platform.IntentMaterialized {
				t.Fatalf("intent %s", st)
			}
			if n := logRows(t, w, in.SourceKey); n != 1 {
				t.Fatalf("%d PlatformEventLog rows, want 1", n)
			}
			if n := len(env.smtp.Mails()); n != 1 {
				t.Fatalf("%d mails, want the effect once", n)
			}
			if rows := timeline(t, w, 1, attendee); len(rows) != 1 {
				t.Fatalf("%d history rows", len(rows))
			}
		})
	}
}

// killSwitch makes a replica dead to storage: every request fails, lease renewals included.
type killSwitch struct{ dead atomic.Bool }

func (k *killSwitch) Do(req *policy.Request) (*http.Response, error) {
	if k.dead.Load() {
		return nil, errors.New("injected: this replica is dead")
	}
	return req.Next()
}

func TestTwoMaterializersOneLeaderAndFailover(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	switches := []*killSwitch{{}, {}}
	var ws []*worker.Worker
	for _, k := range switches {
		cfg := outboxConfig(env)
		cfg.Account = storage.Account{Policies: []policy.Policy{k}, Retry: &policy.RetryOptions{MaxRetries: -1}}
		ws = append(ws, env.start(cfg))
	}
	leaders := func() (n int, who int) {
		for i, w := range ws {
			if w.Outbox().IsLeader() {
				n, who = n+1, i
			}
		}
		return n, who
	}
	testenv.Eventually(t, 30*time.Second, "a leader", func() bool { n, _ := leaders(); return n == 1 })

	var keys []string
	for i := range 10 {
		ev, _ := platform.DecodeEvent([]byte(fmt.Sprintf(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityId":%d,"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z"}`, i+1)))
		in, err := ws[i%2].Outbox().AppendIntent(context.Background(), ev, nil)
		if err == nil {
			_, err = ws[i%2].Outbox().ConfirmIntent(context.Background(), in.SourceKey)
		}
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, in.SourceKey)
	}
	testenv.Eventually(t, 30*time.Second, "all materialized", func() bool {
		for _, k := range keys {
			if intentState(t, ws[0], k) != platform.IntentMaterialized {
				return false
			}
		}
		return true
	})
	if n, _ := leaders(); n != 1 {
		t.Fatalf("%d leaders", n)
	}
	for _, k := range keys {
		if n := logRows(t, ws[0], k); n != 1 {
			t.Fatalf("%s has %d log rows", k, n)
		}
	}

	// The leader dies without releasing its lease; the other takes over within the lease.
	_, dead := leaders()
	alive := 1 - dead
	switches[dead].dead.Store(true)
	killed := time.Now()
	ev, _ := platform.DecodeEvent([]byte(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityId":99,"businessUnitId":42,"createdOn":"2026-11-22T11:00:00Z"}`))
	in, err := ws[alive].Outbox().AppendIntent(context.Background(), ev, nil)
	if err == nil {
		_, err = ws[alive].Outbox().ConfirmIntent(context.Background(), in.SourceKey)
	}
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 40*time.Second, "failover", func() bool { return ws[alive].Outbox().IsLeader() })
	// Within the lease, plus polling and a storage slowed by the rest of the suite (25.7 s was
	// seen under the full race-enabled run): a takeover that had to wait for a second lease
	// would pass 30 s.
	if took := time.Since(killed); took > 2*15*time.Second {
		t.Fatalf("failover took %s, more than twice the 15s lease", took)
	}
	testenv.Eventually(t, 20*time.Second, "materialized by the new leader", func() bool {
		return intentState(t, ws[alive], in.SourceKey) == platform.IntentMaterialized
	})
	if n := logRows(t, ws[alive], in.SourceKey); n != 1 {
		t.Fatalf("%d log rows", n)
	}
}

func serviceTable(t *testing.T, env *notifyEnv) string {
	t.Helper()
	tc, err := tables.New(storage.Account{}, env.ns)
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.CreateTables(context.Background(), "Bookings"); err != nil {
		t.Fatal(err)
	}
	return env.ns.Table("Bookings")
}

func booking(rowKey string) []byte {
	b, _ := json.Marshal(map[string]any{"PartitionKey": "bu-42", "RowKey": rowKey, "Status": "booked"})
	return b
}

func TestReconcilerConfirmsCommittedAndDiscardsTheRest(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	cfg := outboxConfig(env)
	w := env.start(cfg)
	table := serviceTable(t, env)
	ctx := context.Background()
	// A committed booking (through the transactional outbox, which confirms its own intent).
	if _, err := w.Outbox().AppendWithEntities(ctx, table, "bu-42", []tables.EntityAction{{Kind: aztables.TransactionTypeAdd, Entity: booking("1")}},
		mustEvent(t, 1, "2026-11-22T09:00:00Z")); err != nil {
		t.Fatal(err)
	}
	// Two services died between AppendIntent and Confirm/Discard: one's mutation committed, one's did not.
	committed, err := w.Outbox().AppendIntent(ctx, mustEvent(t, 2, "2026-11-22T10:00:00Z"), &platform.SourceRow{Table: table, PartitionKey: "bu-42", RowKey: "1"})
	if err != nil {
		t.Fatal(err)
	}
	lost, err := w.Outbox().AppendIntent(ctx, mustEvent(t, 3, "2026-11-22T11:00:00Z"), &platform.SourceRow{Table: table, PartitionKey: "bu-42", RowKey: "never-written"})
	if err != nil {
		t.Fatal(err)
	}
	// And one whose source no probe knows.
	orphan, err := w.Outbox().AppendIntent(ctx, mustEvent(t, 4, "2026-11-22T12:00:00Z"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := w.Drained(ctx); ok {
		t.Fatal("drained with pending intents")
	}
	testenv.Eventually(t, 30*time.Second, "the reconciler", func() bool {
		return intentState(t, w, committed.SourceKey) == platform.IntentMaterialized && intentState(t, w, lost.SourceKey) == platform.IntentDiscarded
	})
	if st := intentState(t, w, orphan.SourceKey); st != platform.IntentPending {
		t.Fatalf("an intent no probe answers for is %s, want it left Pending", st)
	}
	if _, err := w.Outbox().DiscardIntent(ctx, orphan.SourceKey); err != nil { // what support does by hand
		t.Fatal(err)
	}
	drain(t, w)
	if logRows(t, w, committed.SourceKey) != 1 || logRows(t, w, lost.SourceKey) != 0 {
		t.Fatal("log rows: want one for the committed intent and none for the lost one")
	}
	if len(timeline(t, w, 1, "3")) != 0 || len(timeline(t, w, 1, "2")) != 1 {
		t.Fatal("the discarded intent emitted an event, or the confirmed one did not")
	}
	if _, err := w.Outbox().ConfirmIntent(ctx, lost.SourceKey); !errors.Is(err, tables.ErrIntentSettled) {
		t.Fatalf("confirming a discarded intent: %v", err)
	}
}

func mustEvent(t *testing.T, entityID int, createdOn string) *platform.EntityEvent {
	t.Helper()
	ev, err := platform.DecodeEvent([]byte(fmt.Sprintf(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityId":%d,"businessUnitId":42,"createdOn":%q}`, entityID, createdOn)))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestTransactionalWriteWhoseEntityFailsLeavesNoIntent(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(outboxConfig(env))
	table := serviceTable(t, env)
	ctx := context.Background()
	add := func(rowKey string, entityID int) (*platform.OutboxIntent, error) {
		return w.Outbox().AppendWithEntities(ctx, table, "bu-42", []tables.EntityAction{{Kind: aztables.TransactionTypeAdd, Entity: booking(rowKey)}},
			mustEvent(t, entityID, "2026-11-22T10:00:00Z"))
	}
	ok, err := add("7", 7)
	if err != nil || ok.State != platform.IntentConfirmed {
		t.Fatalf("transaction: %v, %+v", err, ok)
	}
	// The same row again: the entity insert fails, so the whole transaction does.
	if _, err := add("7", 8); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("inserting an existing entity: %v, want the transaction refused", err)
	}
	drain(t, w)
	for _, st := range []platform.IntentState{platform.IntentPending, platform.IntentConfirmed, platform.IntentDiscarded} {
		if in, _ := w.Outbox().Store().List(ctx, st, "", 10); len(in) != 0 {
			t.Fatalf("%d %s intents left behind", len(in), st)
		}
	}
	if len(timeline(t, w, 1, "8")) != 0 || len(timeline(t, w, 1, "7")) != 1 {
		t.Fatal("want the committed transaction's event only")
	}
	// Azure's limits, enforced here because Azurite does not.
	many := make([]tables.EntityAction, tables.MaxBatchOperations)
	for i := range many {
		many[i] = tables.EntityAction{Kind: aztables.TransactionTypeAdd, Entity: booking(fmt.Sprint("m", i))}
	}
	if _, err := w.Outbox().AppendWithEntities(ctx, table, "bu-42", many, mustEvent(t, 9, "2026-11-22T10:00:00Z")); !errors.Is(err, tables.ErrBatchLimit) {
		t.Fatalf("101 operations: %v", err)
	}
	other, _ := json.Marshal(map[string]any{"PartitionKey": "bu-43", "RowKey": "x"})
	if _, err := w.Outbox().AppendWithEntities(ctx, table, "bu-42", []tables.EntityAction{{Kind: aztables.TransactionTypeAdd, Entity: other}},
		mustEvent(t, 9, "2026-11-22T10:00:00Z")); !errors.Is(err, tables.ErrBatchLimit) {
		t.Fatalf("two partitions: %v", err)
	}
}

// listProvider is a source without an outbox: its events, by time.
type listProvider struct{ events []*platform.EntityEvent }

func (listProvider) Name() string          { return "bookings" }
func (listProvider) Window() time.Duration { return time.Hour }
func (listProvider) BatchSize() int        { return 1 }
func (listProvider) Lag() time.Duration    { return 0 }
func (p listProvider) Scan(_ context.Context, from, to time.Time, limit int) ([]*platform.EntityEvent, time.Time, error) {
	var out []*platform.EntityEvent
	for _, ev := range p.events {
		if !ev.CreatedOn.Before(from) && ev.CreatedOn.Before(to) && len(out) < limit {
			out = append(out, ev)
		}
	}
	if len(out) == limit {
		return out, out[len(out)-1].CreatedOn.Add(100 * time.Nanosecond), nil
	}
	return out, to, nil
}

func TestScanRepairRepublishesMissedEventsOnceAndAdvances(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	now := time.Now().UTC()
	p := listProvider{events: []*platform.EntityEvent{
		mustEvent(t, 1, now.Add(-30*time.Minute).Format(time.RFC3339Nano)),
		mustEvent(t, 2, now.Add(-20*time.Minute).Format(time.RFC3339Nano)),
	}}
	cfg := env.config() // the outbox loops off: the test runs scan-repair itself
	cfg.Outbox.ScanProviders = []outbox.ScanProvider{p}
	w := env.start(cfg)
	res, err := w.Outbox().ScanRepair(context.Background(), "bookings", now.Add(-time.Hour))
	if err != nil || len(res) != 1 || res[0].Published != 2 || res[0].Watermark.Before(p.events[1].CreatedOn) {
		t.Fatalf("first run: %+v, %v", res, err)
	}
	again, err := w.Outbox().ScanRepair(context.Background(), "", time.Time{})
	if err != nil || len(again) != 1 || again[0].Published != 0 || again[0].From.Before(res[0].Watermark.Truncate(100*time.Nanosecond)) {
		t.Fatalf("second run from the watermark: %+v, %v", again, err)
	}
	drain(t, w)
	if len(timeline(t, w, 1, "1")) != 1 || len(timeline(t, w, 1, "2")) != 1 {
		t.Fatal("the missed events were not published")
	}
	if _, err := w.Outbox().ScanRepair(context.Background(), "nope", time.Time{}); !errors.Is(err, platform.ErrInvalidInput) {
		t.Fatalf("unknown provider: %v", err)
	}
}

func TestOutboxClaimChecksLargePayloads(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(outboxConfig(env))
	notes := strings.Repeat("x", 100_000)
	ev := mustEvent(t, 5, "2026-11-22T10:00:00Z")
	ev.Payload = json.RawMessage(`{"notes":"` + notes + `"}`)
	in, err := w.Outbox().AppendIntent(context.Background(), ev, nil)
	if err == nil {
		_, err = w.Outbox().ConfirmIntent(context.Background(), in.SourceKey)
	}
	if err != nil {
		t.Fatal(err)
	}
	drain(t, w)
	rows := timeline(t, w, 1, "5")
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	if string(rows[0].Snapshot) != string(ev.Payload) {
		t.Fatalf("snapshot of %d bytes, want %d", len(rows[0].Snapshot), len(ev.Payload))
	}
}

// lapsingLease slows every enqueue to entity-events and lets the materializer acquire its
// lease once, then refuses every renewal and acquisition: the lease runs out mid-batch.
type lapsingLease struct {
	mu       sync.Mutex
	acquired time.Time
	enqueues []time.Time
}

func (l *lapsingLease) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	action := r.Header.Get("x-ms-lease-action")
	//lint:ignore SA1008 the SDK sets it under its lowercase name, so it is looked up as such
	if v := r.Header["x-ms-lease-action"]; len(v) > 0 { // the SDK sets it under its lowercase name
		action = v[0]
	}
	if action == "acquire" || action == "renew" {
		l.mu.Lock()
		first := l.acquired.IsZero() && action == "acquire"
		l.mu.Unlock()
		if !first {
			return nil, errors.New("injected: the lease service is unreachable from this replica")
		}
		resp, err := req.Next()
		if err == nil && resp.StatusCode < 300 {
			l.mu.Lock()
			l.acquired = time.Now()
			l.mu.Unlock()
		}
		return resp, err
	}
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "-entity-events/messages") {
		time.Sleep(500 * time.Millisecond)
		resp, err := req.Next()
		l.mu.Lock()
		l.enqueues = append(l.enqueues, time.Now())
		l.mu.Unlock()
		return resp, err
	}
	return req.Next()
}

// A materializer whose lease runs out in the middle of a batch stops there: past the lease,
// another replica leads and publishes the same intents, so going on would publish them again
// after the queues looked drained (found by make chaos at 10 % faults).
func TestMaterializerStopsWhenItsLeaseLapsesMidBatch(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	service, err := worker.New(outboxConfig(env))
	if err != nil {
		t.Fatal(err)
	}
	if err := service.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		ev := mustEvent(t, i+1, "2026-11-22T10:00:00Z")
		in, err := service.Outbox().AppendIntent(context.Background(), ev, nil)
		if err == nil {
			_, err = service.Outbox().ConfirmIntent(context.Background(), in.SourceKey)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	lease := &lapsingLease{}
	cfg := outboxConfig(env)
	cfg.Account = storage.Account{Policies: []policy.Policy{lease}, Retry: &policy.RetryOptions{MaxRetries: -1}}
	env.start(cfg)
	time.Sleep(17 * time.Second) // past the 15 s lease
	lease.mu.Lock()
	defer lease.mu.Unlock()
	if lease.acquired.IsZero() || len(lease.enqueues) == 0 {
		t.Fatalf("acquired at %v, %d enqueues: the materializer never ran", lease.acquired, len(lease.enqueues))
	}
	if last := lease.enqueues[len(lease.enqueues)-1]; !last.Before(lease.acquired.Add(15 * time.Second)) {
		t.Fatalf("published %d events, the last %s after acquiring a 15 s lease it could not renew",
			len(lease.enqueues), last.Sub(lease.acquired).Round(time.Millisecond))
	}
}
