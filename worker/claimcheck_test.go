package worker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/api"
	"github.com/platform/platform/worker/history"
	"github.com/platform/platform/worker/webhooks"
)

// Hostile input, round two (issue 20): claim-checked payloads, history bounds, the
// related-timeline cap and Azure's table batch limits.

// blobReads records the bytes each blob download brought back, so that a test can assert
// that no read went past the payload limit.
type blobReads struct {
	mu  sync.Mutex
	max int64
}

func (b *blobReads) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	if err == nil && req.Raw().Method == http.MethodGet && strings.Contains(req.Raw().URL.Path, platform.ContainerEventPayloads) {
		b.mu.Lock()
		b.max = max(b.max, resp.ContentLength)
		b.mu.Unlock()
	}
	return resp, err
}

// The memory-exhaustion attack, small: a claim-checked blob ten times the payload limit (as a
// publisher with a higher limit, or anyone with write access to the container, could leave)
// and ten small events naming it. Publishing the large payload is refused; each event naming
// the blob is poisoned with its reason; no download brings back more than the limit + 1 byte.
func TestOversizedPayloadsAreRefusedAndReadBounded(t *testing.T) {
	t.Parallel()
	const limit = 8 << 10
	reads := &blobReads{}
	w := newWorker(t, worker.Config{MaxPayloadBytes: limit, Account: storage.Account{Policies: []policy.Policy{reads}}})
	ctx := context.Background()
	big := []byte(`{"notes":"` + strings.Repeat("x", 10*limit) + `"}`)
	ev, err := platform.DecodeEvent([]byte(event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", string(big))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Queues().Publish(ctx, ev); !errors.Is(err, platform.ErrInvalidInput) || !strings.Contains(err.Error(), "PLATFORM_MAX_PAYLOAD_BYTES") {
		t.Fatalf("publishing %d bytes over a %d-byte limit: %v, want it refused naming the limit", len(big), limit, err)
	}
	name := platform.PayloadBlobName(42, big)
	if err := w.Blobs().Put(ctx, platform.ContainerEventPayloads, name, big); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		send(t, w, fmt.Sprintf(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityGuid":%q,"businessUnitId":42,"createdOn":"2026-11-22T10:00:0%dZ","payloadBlob":%q,"source":%q}`,
			attendee, i, name, strings.Repeat("s", 2000)))
	}
	drain(t, w)
	if rows := timeline(t, w, 1, attendee); len(rows) != 0 {
		t.Fatalf("%d rows written from a blob over the limit, want none", len(rows))
	}
	recs := poison(t, w)
	if len(recs) != 10 {
		t.Fatalf("%d poisoned, want 10", len(recs))
	}
	for _, rec := range recs {
		if !strings.Contains(rec.Reason, "payloadBlob") || !strings.Contains(rec.Reason, fmt.Sprintf("over the %d-byte limit", limit)) {
			t.Fatalf("reason %q, want payloadBlob over the limit", rec.Reason)
		}
	}
	if reads.max > limit+1 {
		t.Fatalf("a blob download brought back %d bytes, the limit is %d", reads.max, limit)
	}
}

// A history page is bounded in bytes as well as rows: ten 40 KB snapshots asked for with
// limit=10 come back over several pages (each under 4 × the payload limit, next set), every row
// once. A snapshot over the limit at read time (the limit lowered since) is not read: the row
// comes with snapshotError, and no blob name is ever in the JSON.
func TestHistoryPagesAreBoundedInBytes(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	w := newWorker(t, worker.Config{MaxPayloadBytes: limit})
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	for i := range 10 {
		payload := fmt.Sprintf(`{"n":%d,"notes":%q}`, i, strings.Repeat("n", 40_000))
		ev, err := platform.DecodeEvent([]byte(event(12, 1, 2, attendee, fmt.Sprintf("2026-11-22T10:00:0%dZ", i), payload)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Queues().Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, w)
	seen := map[string]bool{}
	pages := 0
	for after := ""; ; {
		pages++
		resp, err := http.Get(srv.URL + "/v1/history/1/" + attendee + "?limit=10&after=" + after)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(body) > history.PagePayloads*limit {
			t.Fatalf("a page of %d bytes (limit=10), over the %d-byte budget", len(body), history.PagePayloads*limit)
		}
		var page api.HistoryPage
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Items {
			if seen[r.HistoryEventKey] || len(r.Snapshot) < 40_000 {
				t.Fatalf("row %s: seen before %v, snapshot of %d bytes", r.HistoryEventKey, seen[r.HistoryEventKey], len(r.Snapshot))
			}
			seen[r.HistoryEventKey] = true
		}
		if strings.Contains(string(body), "snapshotBlob") || strings.Contains(string(body), "sha256-") {
			t.Fatalf("a blob name in the history JSON: %.300s", body)
		}
		if after = page.Next; after == "" {
			break
		}
	}
	if len(seen) != 10 || pages < 2 {
		t.Fatalf("%d rows over %d pages, want 10 over more than one", len(seen), pages)
	}
	w.Blobs().SetMaxPayloadBytes(16 << 10) // as if restarted with a lower limit
	var page api.HistoryPage
	getJSON(t, srv.URL+"/v1/history/1/"+attendee+"?limit=1", &page)
	if len(page.Items) != 1 || page.Items[0].Snapshot != nil || !strings.Contains(page.Items[0].SnapshotError, "PLATFORM_MAX_PAYLOAD_BYTES") {
		t.Fatalf("a snapshot over the lowered limit: %+v", page.Items)
	}
}

// Borrowed payloads: business unit 666 names business unit 1's claim-checked payload, with an
// inline payload beside it (the blob was then not even read, yet stored as the row's
// snapshot), or alone, by its scoped or its old unscoped name; or names a blob of its own
// whose content is not what the name's hash says. Each is poisoned with its reason, and 666's
// timeline never shows 1's data.
func TestBorrowedPayloadsAreRefused(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{})
	ctx := context.Background()
	secret := []byte(`{"ssn":"123-45-6789","notes":"` + strings.Repeat("v", 70_000) + `"}`)
	victim, err := platform.DecodeEvent([]byte(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityId":1,"businessUnitId":1,"createdOn":"2026-11-22T09:00:00Z","payload":` + string(secret) + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Queues().Publish(ctx, victim); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(secret)
	unscoped := "sha256-" + hex.EncodeToString(sum[:]) + ".json"
	scoped := "bu-1/" + unscoped
	// The old publisher's name, as an older version would have left it.
	if err := w.Blobs().Put(ctx, platform.ContainerEventPayloads, unscoped, secret); err != nil {
		t.Fatal(err)
	}
	forged := []byte(`{"ssn":"000-00-0000"}`)
	fsum := sha256.Sum256(forged)
	mismatched := "bu-666/sha256-" + hex.EncodeToString(fsum[:]) + ".json"
	if err := w.Blobs().Put(ctx, platform.ContainerEventPayloads, mismatched, secret); err != nil {
		t.Fatal(err)
	}
	junk := `{"junk":"` + strings.Repeat("j", 31_000) + `"}` // over a row's inline limit
	attack := func(second int, payload, blob string) string {
		p := ""
		if payload != "" {
			p = `,"payload":` + payload
		}
		return fmt.Sprintf(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityId":666,"businessUnitId":666,"createdOn":"2026-11-22T10:00:0%dZ","payloadBlob":%q%s}`, second, blob, p)
	}
	cases := []struct{ body, reason string }{
		{attack(1, junk, scoped), "never both"},
		{attack(2, junk, unscoped), "never both"},
		{attack(3, "", scoped), "not a claim-check name of business unit 666"},
		{attack(4, "", unscoped), "not a claim-check name of business unit 666"},
		{attack(5, "", mismatched), "does not match the hash"},
	}
	for _, c := range cases {
		send(t, w, c.body)
	}
	drain(t, w)
	for _, r := range timeline(t, w, 1, "666") {
		if strings.Contains(string(r.Snapshot), "123-45-6789") {
			t.Fatalf("business unit 666's timeline shows business unit 1's payload (row %s)", r.HistoryEventKey)
		}
	}
	got := map[string]string{}
	for _, rec := range poison(t, w) {
		got[rec.Body] = rec.Reason
	}
	for i, c := range cases {
		if !strings.Contains(got[c.body], c.reason) {
			t.Errorf("case %d: reason %q, want it to mention %q", i+1, got[c.body], c.reason)
		}
	}
	rows := timeline(t, w, 1, "1")
	if len(rows) != 1 || !strings.Contains(string(rows[0].Snapshot), "123-45-6789") {
		t.Fatalf("business unit 1's own row: %d rows", len(rows))
	}
	if !strings.HasPrefix(rows[0].SnapshotBlob, "bu-1/sha256-") {
		t.Fatalf("the row's own snapshot blob is %q, want it under bu-1/", rows[0].SnapshotBlob)
	}
	if b, _ := json.Marshal(rows[0]); strings.Contains(string(b), "sha256-") {
		t.Fatalf("the record's JSON names its blob: %.200s", b)
	}
}

// An event naming more related timelines than the cap is refused before its first row: no
// row on its own timeline nor on any related one. One at the cap writes them all.
func TestRelatedTimelinesAreCapped(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{MaxRelated: 5})
	incident := func(guid string, n int) (string, []string) {
		var related []string
		for i := range n {
			related = append(related, fmt.Sprintf("aaaaaaaa-0000-0000-0000-%012d", i+1))
		}
		list, _ := json.Marshal(related)
		return event(31, 3, 4, guid, "2026-11-22T10:00:00Z", `{"attendeeGuids":`+string(list)+`}`), related
	}
	over, overRelated := incident("11111111-2222-3333-4444-000000000006", 6)
	at, atRelated := incident("11111111-2222-3333-4444-000000000005", 5)
	send(t, w, over, at)
	drain(t, w)
	if rows := timeline(t, w, 3, "11111111-2222-3333-4444-000000000006"); len(rows) != 0 {
		t.Fatalf("the refused event wrote its own row")
	}
	for _, g := range overRelated {
		for _, r := range timeline(t, w, 1, g) {
			if strings.Contains(r.EventKey, "000000000006") {
				t.Fatalf("the refused event wrote on related timeline %s", g)
			}
		}
	}
	for _, g := range atRelated {
		if rows := timeline(t, w, 1, g); len(rows) != 1 {
			t.Fatalf("the event at the cap: %d rows on %s, want 1", len(rows), g)
		}
	}
	recs := poison(t, w)
	if len(recs) != 1 || !strings.Contains(recs[0].Reason, "6 related timelines, at most 5 (PLATFORM_MAX_RELATED)") {
		t.Fatalf("poison %+v, want the over-cap event with its reason", recs)
	}
}

// The cap is checked before any concern runs: an incident over it, with a notification hint
// and a webhook subscriber, is poisoned with nothing done (no row, no mail, no delivery),
// where the concerns running at once used to mail and deliver an event whose audit row was
// refused. One at the cap does all three.
func TestRelatedTimelinesCapStopsEveryConcern(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 102, true, "email", 0), subscriber(42, 102, "email", "staff@example.com"))
	cfg := env.config()
	cfg.MaxRelated = 2
	w := env.start(cfg)
	hook := newReceiver(t, strongSecret, 0)
	if _, err := w.Webhooks().Add(context.Background(), webhooks.NewEndpoint{URL: hook.srv.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{31}, Secret: strongSecret}); err != nil {
		t.Fatal(err)
	}
	incident := func(guid string, n int) string {
		var related []string
		for i := range n {
			related = append(related, fmt.Sprintf("bbbbbbbb-0000-0000-0000-%012d", i+1))
		}
		list, _ := json.Marshal(related)
		body := event(31, 3, 4, guid, "2026-11-22T10:00:00Z", `{"attendeeGuids":`+string(list)+`}`)
		return strings.Replace(body, `"payload"`, `"notificationEventTypeId":102,"payload"`, 1)
	}
	over, at := "11111111-2222-3333-4444-000000000003", "11111111-2222-3333-4444-000000000002"
	send(t, w, incident(over, 3), incident(at, 2))
	drain(t, w)
	recs := poison(t, w)
	if len(recs) != 1 || !strings.Contains(recs[0].Body, over) || !strings.Contains(recs[0].Reason, "3 related timelines, at most 2 (PLATFORM_MAX_RELATED)") {
		t.Fatalf("poison %+v, want the over-cap incident with its reason", recs)
	}
	if rows := timeline(t, w, 3, over); len(rows) != 0 {
		t.Fatalf("the refused incident wrote %d rows", len(rows))
	}
	if rows := timeline(t, w, 3, at); len(rows) != 1 {
		t.Fatalf("the incident at the cap wrote %d rows, want 1", len(rows))
	}
	if n := len(env.smtp.Mails()); n != 1 {
		t.Fatalf("%d mails, want 1 (the incident at the cap's)", n)
	}
	if got, calls := hook.received(); got != 1 || calls != 1 {
		t.Fatalf("%d webhook deliveries in %d calls, want 1 (the incident at the cap's)", got, calls)
	}
	ev, _ := platform.DecodeEvent([]byte(incident(over, 3)))
	if tr := trace(t, w, ev.Key()); len(tr.Jobs) != 0 || len(tr.Deliveries) != 0 {
		t.Fatalf("the refused incident has %d jobs and %d deliveries", len(tr.Jobs), len(tr.Deliveries))
	}
}

// batchBodies records the size of every entity group transaction sent.
type batchBodies struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batchBodies) Do(req *policy.Request) (*http.Response, error) {
	if strings.HasSuffix(req.Raw().URL.Path, "$batch") && req.Body() != nil {
		body, _ := io.ReadAll(req.Body())
		if err := req.RewindBody(); err != nil {
			return nil, err
		}
		b.mu.Lock()
		b.sizes = append(b.sizes, len(body))
		b.mu.Unlock()
	}
	return req.Next()
}

// The change bus keeps to Azure's limits, which Azurite does not enforce: a hundred changes of
// about 60 KB of UTF-16 each go in transactions of at most 4 MiB, a change that fits a 64 KiB
// property is kept whole, one too long for it is clipped (and says so), and an atomic
// transaction with a property over 64 KiB is refused.
func TestTableBatchesKeepAzureLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bodies := &batchBodies{}
	ns := testenv.Namespace(t)
	tc, err := tables.New(storage.Account{Policies: []policy.Policy{bodies}}, ns)
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.CreateTables(ctx, tables.TableChanges, tables.TableOutboxIntents, "Bookings"); err != nil {
		t.Fatal(err)
	}
	var rows []tables.ChangeRow
	for len(rows) < 100 {
		id := platform.NewSourceKey()
		if len(rows) > 0 && tables.ChangePartition(id) != tables.ChangePartition(rows[0].ID) {
			rows = rows[:0] // crossed a minute: start again in the new one
		}
		// A field is 33 characters of JSON ("champ-é…",): 900 of them are 59,400 bytes of
		// UTF-16, which with the change's ids fits a property's 64 KiB whole.
		n := 900
		if len(rows) == 0 {
			n = 4_000 // 264,000 bytes: too long for one property
		}
		fields := make([]string, n)
		for i := range fields {
			fields[i] = fmt.Sprintf("champ-é%023d", i)
		}
		rows = append(rows, tables.ChangeRow{ID: id, Change: &platform.Change{EventKey: "k", EntityTypeID: 1, EntityIdentity: "1", BusinessUnitID: 42, ActionTypeID: 2, ChangedFields: fields}})
	}
	if err := tc.Changes().PutBatch(ctx, rows); err != nil {
		t.Fatal(err)
	}
	bodies.mu.Lock()
	sizes := slices.Clone(bodies.sizes)
	bodies.mu.Unlock()
	for _, n := range sizes {
		if n > tables.MaxBatchBytes {
			t.Fatalf("a transaction of %d bytes, over Azure's %d (all: %v)", n, tables.MaxBatchBytes, sizes)
		}
	}
	stored, err := tc.Changes().Since(ctx, time.Now().Add(-2*time.Minute), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 100 {
		t.Fatalf("%d changes stored, want 100", len(stored))
	}
	whole, clipped := 0, 0
	for _, r := range stored {
		ch := r.Change
		b, _ := json.Marshal(ch)
		if n := tables.UTF16Bytes(string(b)); n > tables.MaxPropertyBytes {
			t.Fatalf("a change of %d bytes of UTF-16 stored in one property, over %d", n, tables.MaxPropertyBytes)
		}
		switch {
		case len(ch.ChangedFields) == 900 && !ch.ChangedFieldsTruncated:
			whole++
		case ch.ChangedFieldsTruncated && len(ch.ChangedFields) >= 900 && len(ch.ChangedFields) < 4_000:
			clipped++ // as many as fit: more than a change that fits whole
		default:
			t.Fatalf("a change kept %d fields, truncated %v: want 900 whole, or the long one clipped to what fits", len(ch.ChangedFields), ch.ChangedFieldsTruncated)
		}
	}
	if whole != 99 || clipped != 1 {
		t.Fatalf("%d changes kept whole and %d clipped, want 99 and 1", whole, clipped)
	}
	wide, _ := json.Marshal(map[string]string{"PartitionKey": "bu-42", "RowKey": "wide", "Notes": strings.Repeat("n", 40_000)})
	_, err = tc.Outbox().AppendWithEntities(ctx, string(ns)+"Bookings", "bu-42", []tables.EntityAction{{Kind: aztables.TransactionTypeAdd, Entity: wide}},
		mustEvent(t, 9, "2026-11-22T10:00:00Z"))
	if !errors.Is(err, tables.ErrBatchLimit) || !strings.Contains(err.Error(), "property Notes") {
		t.Fatalf("a 40,000-character property (80 KB of UTF-16) in a transaction: %v, want ErrBatchLimit naming it", err)
	}
}

// tableReads counts the bytes of the EntityHistory rows read back.
type tableReads struct {
	mu sync.Mutex
	n  int
}

type countingBody struct {
	io.ReadCloser
	r *tableReads
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.r.mu.Lock()
	c.r.n += n
	c.r.mu.Unlock()
	return n, err
}

func (r *tableReads) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	if err == nil && req.Raw().Method == http.MethodGet && strings.Contains(req.Raw().URL.Path, platform.TableEntityHistory) {
		resp.Body = countingBody{resp.Body, r}
	}
	return resp, err
}

func (r *tableReads) take() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.n
	r.n = 0
	return n
}

// A history page is bounded in what it reads from the table, not only in what it returns:
// thirty 20 KB rows asked for with limit=1000 under a 128 KB budget read about a budget's worth
// per page (the old read took all thirty, and each next page all the rest again), and every
// row comes once over the pages.
func TestHistoryPagesReadBoundedFromTheTable(t *testing.T) {
	t.Parallel()
	const limit = 32 << 10
	reads := &tableReads{}
	w := newWorker(t, worker.Config{MaxPayloadBytes: limit, Account: storage.Account{Policies: []policy.Policy{reads}}})
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	var bodies []string
	for i := range 30 {
		bodies = append(bodies, event(12, 1, 2, attendee, fmt.Sprintf("2026-11-22T10:00:%02dZ", i), fmt.Sprintf(`{"n":%d,"notes":%q}`, i, strings.Repeat("r", 20_000))))
	}
	send(t, w, bodies...)
	drain(t, w)
	budget := history.PagePayloads * limit
	seen := map[string]bool{}
	reads.take()
	for after := ""; ; {
		var page api.HistoryPage
		getJSON(t, srv.URL+"/v1/history/1/"+attendee+"?limit=1000&after="+after, &page)
		if n := reads.take(); n > 2*budget {
			t.Fatalf("a page read %d bytes of rows from the table, over twice its %d-byte budget", n, budget)
		}
		for _, r := range page.Items {
			if seen[r.HistoryEventKey] {
				t.Fatalf("row %s on two pages", r.HistoryEventKey)
			}
			seen[r.HistoryEventKey] = true
		}
		if after = page.Next; after == "" {
			break
		}
	}
	if len(seen) != 30 {
		t.Fatalf("%d rows over the pages, want 30", len(seen))
	}
}
