package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
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
