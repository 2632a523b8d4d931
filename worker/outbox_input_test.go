package worker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
)

// Hostile input, round two (issue 20): what the outbox takes in and what it reads back.

// An intent the worker would refuse once confirmed is refused at append, by AppendIntent and
// AppendWithEntities alike: an inline payload over the limit, or a payloadBlob naming a blob
// over it (or missing). Nothing is reserved, so nothing is poisoned later.
func TestOutboxRefusesPayloadsTheWorkerWouldRefuse(t *testing.T) {
	t.Parallel()
	const limit = 8 << 10
	w := newWorker(t, worker.Config{MaxPayloadBytes: limit})
	ctx := context.Background()
	big := json.RawMessage(`{"notes":"` + strings.Repeat("x", 2*limit) + `"}`)
	if err := w.Blobs().Put(ctx, platform.ContainerEventPayloads, platform.PayloadBlobName(42, big), big); err != nil {
		t.Fatal(err)
	}
	inline := mustEvent(t, 1, "2026-11-22T10:00:00Z")
	inline.Payload = big
	byName := mustEvent(t, 2, "2026-11-22T10:00:00Z")
	byName.PayloadBlob = platform.PayloadBlobName(42, big)
	missing := mustEvent(t, 3, "2026-11-22T10:00:00Z")
	missing.PayloadBlob = platform.PayloadBlobName(42, []byte(`{"never":"stored"}`))
	row, _ := json.Marshal(map[string]string{"PartitionKey": "bu-42", "RowKey": "1"})
	for name, ev := range map[string]*platform.EntityEvent{"inline": inline, "payloadBlob": byName, "missing payloadBlob": missing} {
		want := "PLATFORM_MAX_PAYLOAD_BYTES"
		if name == "missing payloadBlob" {
			want = "not found"
		}
		if _, err := w.Outbox().AppendIntent(ctx, ev, nil); !errors.Is(err, platform.ErrInvalidInput) || !strings.Contains(err.Error(), want) {
			t.Errorf("AppendIntent, %s: %v, want ErrInvalidInput naming %s", name, err, want)
		}
		_, err := w.Outbox().AppendWithEntities(ctx, "Bookings", "bu-42", []tables.EntityAction{{Kind: aztables.TransactionTypeAdd, Entity: row}}, ev)
		if !errors.Is(err, platform.ErrInvalidInput) || !strings.Contains(err.Error(), want) {
			t.Errorf("AppendWithEntities, %s: %v, want ErrInvalidInput naming %s", name, err, want)
		}
	}
	if pending, err := w.Outbox().Store().List(ctx, platform.IntentPending, "", 10); err != nil || len(pending) != 0 {
		t.Fatalf("%d intents reserved (%v), want none", len(pending), err)
	}
}

// legacyPayload stores payload as versions before scoped claim-check names did, under
// "sha256-{hex}.json", and returns that name.
func legacyPayload(t *testing.T, w *worker.Worker, payload []byte) string {
	t.Helper()
	sum := sha256.Sum256(payload)
	name := "sha256-" + hex.EncodeToString(sum[:]) + ".json"
	if err := w.Blobs().Put(context.Background(), platform.ContainerEventPayloads, name, payload); err != nil {
		t.Fatal(err)
	}
	return name
}

// legacyEvent is the canonical JSON of an event of business unit 42 whose payload is claim-checked
// under blob, as an intent or log row of an older version holds it.
func legacyEvent(t *testing.T, entityID int, blob string) string {
	t.Helper()
	ev := mustEvent(t, entityID, "2026-11-22T10:00:00Z")
	ev.PayloadBlob = blob
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Intents written before scoped claim-check names (payloadBlob "sha256-….json") still
// materialize after the upgrade, their payload stored again under the business unit's name;
// one that can be confirmed still is. A row that cannot be read at all, and one whose old blob
// is gone, are parked with their reason, and the intents beside them flow.
func TestOutboxIntentsOfAnOlderVersionStillMaterialize(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(outboxConfig(env))
	ctx := context.Background()
	svc, err := aztables.NewServiceClientFromConnectionString(storage.Account{}.ResolvedConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	intents := svc.NewClient(env.ns.Table(tables.TableOutboxIntents))
	payload := []byte(`{"notes":"` + strings.Repeat("o", 40_000) + `"}`) // over a row's inline limit: claim-checked
	old := legacyPayload(t, w, payload)
	row := func(state platform.IntentState, event string) string {
		key := platform.NewSourceKey()
		body, _ := json.Marshal(map[string]string{"PartitionKey": string(state), "RowKey": key, "SourceKey": key, "Event": event,
			"State": string(state), "CreatedAt": time.Now().UTC().Format(time.RFC3339Nano), "CreatedAt@odata.type": "Edm.DateTime"})
		if _, err := intents.AddEntity(ctx, body, nil); err != nil {
			t.Fatal(err)
		}
		return key
	}
	confirmed := row(platform.IntentConfirmed, legacyEvent(t, 1, old))
	pending := row(platform.IntentPending, legacyEvent(t, 2, old))
	unreadable := row(platform.IntentConfirmed, `{"eventTypeId":12,"entityTypeId":`)
	gone := row(platform.IntentConfirmed, legacyEvent(t, 3, "sha256-"+strings.Repeat("0", 64)+".json"))
	good, err := w.Outbox().AppendIntent(ctx, mustEvent(t, 4, "2026-11-22T10:00:00Z"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{pending, good.SourceKey} {
		if _, err := w.Outbox().ConfirmIntent(ctx, key); err != nil {
			t.Fatalf("confirm %s: %v", key, err)
		}
	}
	drain(t, w)
	for id, key := range map[string]string{"1": confirmed, "2": pending, "4": good.SourceKey} {
		if st := intentState(t, w, key); st != platform.IntentMaterialized {
			t.Fatalf("intent of entity %s is %q, want Materialized", id, st)
		}
		rows := timeline(t, w, 1, id)
		if len(rows) != 1 {
			t.Fatalf("entity %s: %d history rows, want 1", id, len(rows))
		}
		if id != "4" && string(rows[0].Snapshot) != string(payload) {
			t.Fatalf("entity %s: snapshot of %d bytes, want the old payload's %d", id, len(rows[0].Snapshot), len(payload))
		}
	}
	if recs := poison(t, w); len(recs) != 0 {
		t.Fatalf("%d events poisoned, want none: %s", len(recs), recs[0].Reason)
	}
	recs, err := w.Outbox().EventLog().Scan(ctx, time.Now().Add(-time.Hour), time.Now().Add(time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if strings.Contains(r.PayloadJSON, `"payloadBlob":"sha256-`) {
			t.Fatalf("log row %s keeps the unscoped name: %.200s", r.SourceKey, r.PayloadJSON)
		}
	}
	for key, reason := range map[string]string{unreadable: "unreadable", gone: "not published"} {
		resp, err := intents.GetEntity(ctx, string(platform.IntentParked), key, nil)
		if err != nil {
			t.Fatalf("intent %s not parked: %v", key, err)
		}
		var e struct{ Reason string }
		_ = json.Unmarshal(resp.Value, &e)
		if !strings.Contains(e.Reason, reason) {
			t.Fatalf("intent %s parked with reason %q, want it to say %q", key, e.Reason, reason)
		}
		if _, err := intents.GetEntity(ctx, string(platform.IntentConfirmed), key, nil); err == nil {
			t.Fatalf("intent %s is still Confirmed beside its parked row", key)
		}
	}
}

// PlatformEventLog rows written before scoped claim-check names are published again by
// scan-repair, their payload stored under the business unit's name; a row that cannot be read
// is skipped (logged), and neither stops the scan or its watermark.
func TestEventLogRowsOfAnOlderVersionAreRepublished(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	ctx := context.Background()
	payload := []byte(`{"notes":"` + strings.Repeat("l", 40_000) + `"}`)
	old := legacyPayload(t, w, payload)
	at := time.Now().UTC().Add(-10 * time.Minute)
	for i, body := range []string{legacyEvent(t, 1, old), `not json`, legacyEvent(t, 3, "")} {
		key := platform.SourceKeyAt(at.Add(time.Duration(i) * time.Millisecond))
		rec := &tables.LogRecord{SourceKey: key, EventType: 12, ProjectID: 42, EntityName: 1, EntityID: fmt.Sprint(i + 1), Timestamp: at, PayloadJSON: body}
		if err := w.Outbox().EventLog().Insert(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	res, err := w.Outbox().ScanRepair(ctx, "event-log", at.Add(-time.Minute))
	if err != nil || len(res) != 1 || res[0].Published != 2 || !res[0].Watermark.After(at) {
		t.Fatalf("scan-repair: %+v, %v; want 2 published and the watermark past the rows", res, err)
	}
	drain(t, w)
	rows := timeline(t, w, 1, "1")
	if len(rows) != 1 || string(rows[0].Snapshot) != string(payload) {
		t.Fatalf("the old row's event: %d history rows", len(rows))
	}
	if len(timeline(t, w, 1, "3")) != 1 {
		t.Fatal("the row after the unreadable one was not published")
	}
	if recs := poison(t, w); len(recs) != 0 {
		t.Fatalf("%d events poisoned, want none: %s", len(recs), recs[0].Reason)
	}
}
