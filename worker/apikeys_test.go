package worker_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/api"
	"github.com/platform/platform/worker/webhooks"
)

// A key is created, used on two replicas, revoked on one: the other refuses it within its
// cache TTL, and so does a change stream opened with it, at its next heartbeat.
func TestAPIKeyRevokedOnOneReplicaIsRefusedOnAnother(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	cfg := env.config()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Auth = auth.Config{Mode: auth.ModeKeys, KeyCacheTTL: time.Second}
	cfg.APILimits = api.Limits{StreamHeartbeat: 200 * time.Millisecond}
	a, b := env.start(cfg), env.start(cfg)
	ctx := context.Background()
	key, _, err := a.Keys().Create(ctx, auth.NewKey{Role: auth.HistoryRead, Units: auth.Units{IDs: []int64{42}}, Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	history := func(w *worker.Worker) int {
		code, _ := call(t, "GET", "http://"+w.HTTPAddr()+"/v1/history/1/501", "Bearer "+key, "")
		return code
	}
	if ca, cb := history(a), history(b); ca != http.StatusNotFound || cb != http.StatusNotFound {
		// 404: the key is good, and the timeline does not exist (in its units or anywhere).
		t.Fatalf("a fresh key: replica a %d, b %d, want 404 and 404", ca, cb)
	}
	if code, _ := call(t, "GET", "http://"+b.HTTPAddr()+"/v1/trace?key=x", "Bearer "+key, ""); code != http.StatusForbidden {
		t.Fatalf("a history.read key on the trace route: %d, want 403", code)
	}

	// A support key holds a change stream on b; revoking it on a ends the stream.
	support, _, err := a.Keys().Create(ctx, auth.NewKey{Role: auth.Support, Units: auth.Units{IDs: []int64{42}}})
	if err != nil {
		t.Fatal(err)
	}
	stream := connectAs(t, "http://"+b.HTTPAddr()+"/v1/changes", "Bearer "+support)

	id := key[len(auth.KeyPrefix) : len(auth.KeyPrefix)+26]
	if _, err := a.Keys().Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	if code := history(a); code != http.StatusUnauthorized {
		t.Fatalf("the revoking replica: %d, want 401 at once", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for history(b) != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("the other replica still accepts the revoked key after 5 s (cache TTL 1 s)")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := a.Keys().Revoke(ctx, support[len(auth.KeyPrefix):len(auth.KeyPrefix)+26]); err != nil {
		t.Fatal(err)
	}
	select {
	case ev, ok := <-stream.events:
		if ok && ev.event != "unauthorized" {
			t.Fatalf("the stream sent %q, want it to end", ev.event)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a change stream of a revoked key is still open after 5 s (heartbeat 200 ms, cache TTL 1 s)")
	}
}

// Inside a 200, a principal scoped to business unit 2 still sees only unit 2: the endpoints
// it lists, the changes its stream carries (filtered on the server, whatever it asks), and the
// rows of a timeline that both units wrote on.
func TestScopedPrincipalsSeeOnlyTheirUnitsInsideAnAnswer(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0", Auth: auth.Config{Mode: auth.ModeKeys}, WebhookAllowlist: []string{"127.0.0.1"}})
	ctx := context.Background()
	base := "http://" + w.HTTPAddr()
	key := func(role auth.Role, unit int64) string {
		k, _, err := w.Keys().Create(ctx, auth.NewKey{Role: role, Units: auth.Units{IDs: []int64{unit}}})
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + k
	}
	for _, unit := range []int64{1, 2} {
		if _, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: fmt.Sprintf("http://127.0.0.1:9/unit-%d", unit), BusinessUnitID: unit, EventTypes: []int{99}}); err != nil {
			t.Fatal(err)
		}
	}
	code, body := call(t, "GET", base+"/v1/webhooks", key(auth.WebhooksManage, 2), "")
	var eps []struct{ BusinessUnitID int64 }
	if err := json.Unmarshal([]byte(body), &eps); code != 200 || err != nil || len(eps) != 1 || eps[0].BusinessUnitID != 2 {
		t.Fatalf("unit 2 lists: %d %s, want its one endpoint", code, body)
	}

	stream := connectAs(t, base+"/v1/changes", key(auth.Support, 2))
	// The same entity, written on by both units (one timeline, rows of each).
	send(t, w, changeEvent(1, 900, "2026-11-22T10:00:00Z"), changeEvent(2, 900, "2026-11-22T11:00:00Z"), changeEvent(1, 900, "2026-11-22T12:00:00Z"))
	drain(t, w)
	if _, ch := stream.next(t); ch.BusinessUnitID != 2 {
		t.Fatalf("unit 2's stream carried a change of unit %d", ch.BusinessUnitID)
	}
	select {
	case ev := <-stream.events:
		t.Fatalf("unit 2's stream carried a second change: %+v", ev)
	case <-time.After(time.Second):
	}
	code, body = call(t, "GET", base+"/v1/history/1/900?limit=1", key(auth.HistoryRead, 2), "")
	var page api.HistoryPage
	if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil || len(page.Items) != 1 || page.Items[0].BusinessUnitID != 2 || page.Next != "" {
		t.Fatalf("unit 2 reads the shared timeline: %d %s, want its one row and no next page", code, body)
	}
	code, body = call(t, "GET", base+"/v1/history/1/900", key(auth.HistoryRead, 1), "")
	if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil || len(page.Items) != 2 || page.Items[0].BusinessUnitID != 1 || page.Items[1].BusinessUnitID != 1 {
		t.Fatalf("unit 1 reads the shared timeline: %d %s, want its two rows", code, body)
	}
}

// A history page's next token tells nothing of the rows its reader was not shown (it is
// sealed: unsealed it would be the row key of the last row read, another unit's row included,
// its time to 100 ns), and after= takes nothing else: a token of a caller's own making, which
// could skip the first page's 404 and tell a long timeline of another unit from none, is 400
// for every timeline alike.
func TestHistoryTokensTellNothingOfAnotherUnit(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0", Auth: auth.Config{Mode: auth.ModeKeys}})
	ctx := context.Background()
	newest := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	put := func(identity string, unit int64, i int) {
		r := platform.HistoryRecord{EventTypeID: 12, EntityTypeID: 1, EntityIdentity: identity, ActionTypeID: 2, Action: "Update",
			BusinessUnitID: unit, CreatedOn: newest.Add(-time.Duration(i) * time.Second)}
		r.HistoryEventKey = fmt.Sprintf("entity-history:12:1:%s:%s:2", identity, platform.FormatCreatedOn(r.CreatedOn))
		if err := w.History().Put(ctx, &r); err != nil {
			t.Error(err)
		}
	}
	var wg sync.WaitGroup
	for i := range 210 { // unit 1's long timeline: more rows than a page skips
		wg.Go(func() { put(attendee, 1, i) })
	}
	for i, unit := range []int64{2, 1, 2} { // a shared timeline, newest first: unit 2, unit 1, unit 2
		wg.Go(func() { put("900", unit, i) })
	}
	wg.Wait()
	k, _, err := w.Keys().Create(ctx, auth.NewKey{Role: auth.HistoryRead, Units: auth.Units{IDs: []int64{2}}})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + w.HTTPAddr() + "/v1/history/1/"

	var page api.HistoryPage
	code, body := call(t, "GET", base+"900?limit=1", "Bearer "+k, "")
	if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil || len(page.Items) != 1 || page.Next == "" {
		t.Fatalf("unit 2's first page of the shared timeline: %d %s", code, body)
	}
	unit1Row := platform.HistoryRowKey(newest.Add(-time.Second), 12, 2)
	if raw, _ := base64.RawURLEncoding.DecodeString(page.Next); strings.Contains(string(raw), unit1Row) || strings.Contains(page.Next, unit1Row) {
		t.Errorf("unit 2's next token carries unit 1's row key %s: %q", unit1Row, page.Next)
	}
	next := page.Next
	code, body = call(t, "GET", base+"900?limit=1&after="+next, "Bearer "+k, "")
	if page = (api.HistoryPage{}); json.Unmarshal([]byte(body), &page) != nil || code != 200 || len(page.Items) != 1 || page.Items[0].BusinessUnitID != 2 || page.Next != "" {
		t.Fatalf("unit 2's second page: %d %s, want its other row and no next", code, body)
	}
	if code, body := call(t, "GET", base+attendee+"?limit=1&after="+next, "Bearer "+k, ""); code != http.StatusBadRequest {
		t.Errorf("a token of another timeline: %d %s, want 400", code, body)
	}

	for _, after := range []string{"", "&after=MA", "&after=" + base64.RawURLEncoding.EncodeToString([]byte("!"))} {
		c1, b1 := call(t, "GET", base+attendee+"?limit=1"+after, "Bearer "+k, "")
		c2, b2 := call(t, "GET", base+"902?limit=1"+after, "Bearer "+k, "")
		want := http.StatusBadRequest
		if after == "" {
			want = http.StatusNotFound
		}
		if c1 != want || c2 != want || strings.Contains(b1, `"next"`) || (after != "" && b1 != b2) {
			t.Errorf("after=%q: unit 1's timeline %d %s, none %d %s; want %d for both", after, c1, b1, c2, b2, want)
		}
	}
}
