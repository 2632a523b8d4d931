package worker_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/platform/platform/auth"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/api"
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
