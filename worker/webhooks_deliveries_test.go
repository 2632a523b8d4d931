package worker_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/webhooks"
)

// An endpoint's delivery log (GET /v1/webhooks/{id}/deliveries) lists its latest deliveries
// newest first, with state, attempts, the receiver's status or the last error, and latency;
// failed=true only the failed ones; limit=N the N newest. Never the URL or the body. A
// principal of another business unit gets 404, as for an endpoint that does not exist.
func TestWebhookDeliveryLogListsNewestFirstWithStatesAndIsScoped(t *testing.T) {
	t.Parallel()
	iss := testenv.StartIssuer(t)
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0", WebhookAllowlist: []string{"127.0.0.1"},
		Auth: auth.Config{Issuer: iss.URL, Audience: audience}})
	const refused = "00000000-0000-0000-0000-000000000422"
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if strings.Contains(string(body), refused) {
			rw.WriteHeader(http.StatusUnprocessableEntity) // refused for good: Failed at once
			return
		}
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	ep, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: srv.URL + "/hook?token=SECRET-TOKEN", BusinessUnitID: 1, EventTypes: []int{12}, Secret: strongSecret})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string // oldest first
	for _, guid := range []string{"00000000-0000-0000-0000-000000000001", refused, "00000000-0000-0000-0000-000000000003"} {
		text := strings.Replace(event(12, 1, 2, guid, "2026-11-22T10:00:00Z", `{"firstName":"BODY-TEXT"}`), `"businessUnitId":42`, `"businessUnitId":1`, 1)
		ev, _ := platform.DecodeEvent([]byte(text))
		keys = append(keys, ev.Key())
		send(t, w, text)
		waitLogged(t, w, ep.ID, platform.DeliveryKey(ep.ID, ev.Key())) // one after the other: their order is known
	}

	base := "http://" + w.HTTPAddr() + "/v1/webhooks/" + ep.ID + "/deliveries"
	manage := func(unit int) string {
		return "Bearer " + iss.Token(testenv.Claims{"sub": "svc-test", "aud": audience, "roles": []string{string(auth.WebhooksManage)}, "bu": []int{unit}})
	}
	list := func(query string) []tables.Delivery {
		t.Helper()
		code, body := call(t, "GET", base+query, manage(1), "")
		if code != 200 {
			t.Fatalf("GET deliveries%s: %d %s", query, code, body)
		}
		if strings.Contains(body, srv.Listener.Addr().String()) || strings.Contains(body, "SECRET-TOKEN") || strings.Contains(body, "BODY-TEXT") {
			t.Fatalf("GET deliveries%s shows the URL or the body: %s", query, body)
		}
		var out struct{ Items []tables.Delivery }
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatal(err)
		}
		return out.Items
	}

	all := list("")
	if len(all) != 3 {
		t.Fatalf("%d deliveries listed, want 3: %+v", len(all), all)
	}
	want := []struct {
		event string
		state platform.MessageState
		code  int
		err   string
	}{{keys[2], platform.MessageSent, 204, ""}, {keys[1], platform.MessageFailed, 0, "422"}, {keys[0], platform.MessageSent, 204, ""}}
	for i, d := range all {
		wd := want[i]
		if d.EventKey != wd.event || d.DeliveryKey != platform.DeliveryKey(ep.ID, wd.event) || d.EndpointID != ep.ID {
			t.Fatalf("delivery %d is %s (%s), want the event %s: newest first", i, d.EventKey, d.DeliveryKey, wd.event)
		}
		if d.State != wd.state || d.ResponseCode != wd.code || !strings.Contains(d.LastError, wd.err) || (wd.err == "") != (d.LastError == "") {
			t.Fatalf("delivery %d: %s, code %d, error %q; want %s, %d, an error naming %q", i, d.State, d.ResponseCode, d.LastError, wd.state, wd.code, wd.err)
		}
		if d.Attempts != 1 || d.LatencyMs < 1 || d.CreatedAt.IsZero() || d.UpdatedAt.Before(d.CreatedAt) || time.Since(d.CreatedAt) > time.Minute {
			t.Fatalf("delivery %d: %d attempts, latency %d ms, created %v, updated %v", i, d.Attempts, d.LatencyMs, d.CreatedAt, d.UpdatedAt)
		}
		if i > 0 && !d.CreatedAt.Before(all[i-1].CreatedAt) {
			t.Fatalf("delivery %d created %v, not before the one listed above it (%v)", i, d.CreatedAt, all[i-1].CreatedAt)
		}
	}
	if failed := list("?failed=true"); len(failed) != 1 || failed[0].EventKey != keys[1] {
		t.Fatalf("failed=true lists %+v, want only the failed delivery of %s", failed, keys[1])
	}
	if newest := list("?limit=1"); len(newest) != 1 || newest[0].EventKey != keys[2] {
		t.Fatalf("limit=1 lists %+v, want the newest", newest)
	}
	for _, c := range []struct {
		path, auth string
		code       int
		names      string
	}{
		{base, manage(2), 404, ""}, // another unit's endpoint: as if it did not exist
		{"http://" + w.HTTPAddr() + "/v1/webhooks/01M82BZCKX5JFX81FM1PJ46KQF/deliveries", manage(1), 404, ""},
		{base + "?limit=0", manage(1), 400, "limit"},
		{base + "?limit=101", manage(1), 400, "limit"},
		{base + "?failed=maybe", manage(1), 400, "failed"},
	} {
		code, body := call(t, "GET", c.path, c.auth, "")
		if code != c.code || !strings.Contains(body, c.names) || strings.Contains(body, keys[0]) {
			t.Errorf("GET %s: %d %s, want %d naming %q", c.path, code, body, c.code, c.names)
		}
	}
}

// waitLogged waits until the delivery log of endpoint shows delivery key Sent or Failed.
func waitLogged(t *testing.T, w *worker.Worker, endpoint, key string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		lines, err := w.Webhooks().Deliveries(context.Background(), endpoint, webhooks.DeliveriesQuery{Limit: webhooks.MaxDeliveries})
		if err == nil && slices.ContainsFunc(lines, func(d tables.Delivery) bool { return d.DeliveryKey == key && d.State.Final() }) {
			return
		}
	}
	t.Fatalf("delivery %s was not logged settled within 60 s", key)
}
