package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/webhooks"
)

// platform webhooks deliveries ID lists the endpoint's latest deliveries newest first;
// --failed only the failed one; --limit and an unknown endpoint are checked (exit 2).
func TestWebhooksDeliveriesCommand(t *testing.T) {
	t.Parallel()
	ns, w, _ := startCLIWorker(t, 101, "email")
	ctx := context.Background()
	const refused = "00000000-0000-0000-0000-000000000422"
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		var ev platform.EntityEvent
		_ = json.NewDecoder(req.Body).Decode(&ev)
		if ev.EntityGUID == refused {
			rw.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		rw.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	ep, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: srv.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{12}})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, guid := range []string{"00000000-0000-0000-0000-000000000001", refused, "00000000-0000-0000-0000-000000000003"} {
		text := `{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityGuid":"` + guid + `","businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z"}`
		ev, _ := platform.DecodeEvent([]byte(text))
		keys = append(keys, ev.Key())
		if err := w.Queues().Enqueue(ctx, platform.QueueEntityEvents, text, 0); err != nil {
			t.Fatal(err)
		}
		waitLogged(t, w, ep.ID, platform.DeliveryKey(ep.ID, ev.Key()))
	}
	type line struct {
		EventKey     string `json:"eventKey"`
		State        string `json:"state"`
		ResponseCode int    `json:"responseCode"`
	}
	list := func(flags ...string) []line {
		t.Helper()
		args := append([]string{"webhooks", "deliveries", "--namespace", string(ns), ep.ID, "--json"}, flags...)
		code, out, errOut := cli(t, "", args...)
		var lines []line
		if code != 0 || json.Unmarshal([]byte(out), &lines) != nil || strings.Contains(out, srv.URL) {
			t.Fatalf("%v: %d %s %s", args, code, out, errOut)
		}
		return lines
	}
	all := list()
	if len(all) != 3 || all[0] != (line{keys[2], "Sent", 200}) || all[1] != (line{keys[1], "Failed", 0}) || all[2] != (line{keys[0], "Sent", 200}) {
		t.Fatalf("deliveries: %+v, want the three newest first: Sent 200, Failed, Sent 200", all)
	}
	if failed := list("--failed"); len(failed) != 1 || failed[0].EventKey != keys[1] {
		t.Fatalf("deliveries --failed: %+v, want only %s", failed, keys[1])
	}
	if one := list("--limit", "1"); len(one) != 1 || one[0].EventKey != keys[2] {
		t.Fatalf("deliveries --limit 1: %+v, want the newest", one)
	}
	code, out, errOut := cli(t, "", "webhooks", "deliveries", "--namespace", string(ns), "--failed", ep.ID)
	if code != 0 || !strings.Contains(out, "STATE") || !strings.Contains(out, "webhook answered 422") || strings.Count(out, "\n") != 2 {
		t.Fatalf("deliveries --failed (table): %d %q %q", code, out, errOut)
	}
	for _, args := range [][]string{
		{"webhooks", "deliveries", "--namespace", string(ns), ep.ID, "--limit", "0"},
		{"webhooks", "deliveries", "--namespace", string(ns), "01M82BZCKX5JFX81FM1PJ46KQF"},
		{"webhooks", "deliveries", "--namespace", string(ns)},
	} {
		if code, out, errOut := cli(t, "", args...); code != 2 || out != "" || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: %d %q %q, want exit 2 with a one-line reason", args, code, out, errOut)
		}
	}
}

// waitLogged waits until the delivery log of endpoint shows delivery key Sent or Failed: the
// deliveries' order is then known.
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
