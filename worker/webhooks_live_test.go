package worker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/webhooks"
)

// handled records which replica handled which event, and when: a concern of its own on each
// replica, seeing every event.
type handled struct {
	replica string
	mu      *sync.Mutex
	at      map[string]handling // by event key
}

type handling struct {
	replica string
	at      time.Time
}

func (*handled) Name() string                       { return "handled-by" }
func (*handled) Accepts(*platform.EntityEvent) bool { return true }
func (*handled) Observer() bool                     { return true }
func (h *handled) Process(_ context.Context, ev *platform.EntityEvent) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.at[ev.Key()]; !ok {
		h.at[ev.Key()] = handling{replica: h.replica, at: time.Now()}
	}
	return nil
}

// liveEnv is two running replicas whose endpoint cache would go stale for a minute (CacheTTL),
// a worker that is not running (as the command line is), and a receiver recording the event
// keys it got.
type liveEnv struct {
	env      *notifyEnv
	a, b     *worker.Worker
	cli      *worker.Worker
	messages *tables.Messages
	mu       sync.Mutex
	handled  map[string]handling
	got      map[string]bool
	url      string
}

func newLiveEnv(t *testing.T, before func(*liveEnv)) *liveEnv {
	le := &liveEnv{env: newNotifyEnv(t, ""), handled: map[string]handling{}, got: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		le.mu.Lock()
		le.got[req.Header.Get("X-Platform-Event-Key")] = true
		le.mu.Unlock()
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	le.url = srv.URL + "/hook"
	cli, err := worker.New(le.env.config())
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	le.cli = cli
	if before != nil {
		before(le)
	}
	replica := func(name string) *worker.Worker {
		cfg := le.env.config()
		cfg.Webhooks.CacheTTL = time.Minute // only the announcement can make a change seen in time
		cfg.PostProcessors = []worker.PostProcessor{&handled{replica: name, mu: &le.mu, at: le.handled}}
		return le.env.start(cfg)
	}
	le.a, le.b = replica("a"), replica("b")
	le.messages = tablesOf(t, le.env).Messages()
	return le
}

func tablesOf(t *testing.T, env *notifyEnv) *tables.Client {
	t.Helper()
	c, err := tables.New(storage.Account{}, env.ns)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// publishFor publishes an event every 50 ms for d, each of a distinct entity, and returns
// their keys once both replicas have handled them all.
func (le *liveEnv) publishFor(t *testing.T, d time.Duration) []string {
	t.Helper()
	var keys []string
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		text := event(12, 1, 2, fmt.Sprintf("00000000-0000-0000-0000-%012d", time.Now().UnixNano()%1e12), "2026-11-22T10:00:00Z", `{}`)
		ev, _ := platform.DecodeEvent([]byte(text))
		keys = append(keys, ev.Key())
		send(t, le.a, text)
	}
	drain(t, le.a)
	drain(t, le.b)
	return keys
}

// handledBy counts the replicas that handled some of keys after since.
func (le *liveEnv) handledBy(keys []string, since time.Time) int {
	le.mu.Lock()
	defer le.mu.Unlock()
	by := map[string]bool{}
	for _, k := range keys {
		if h, ok := le.handled[k]; ok && h.at.After(since) {
			by[h.replica] = true
		}
	}
	return len(by)
}

// TestNewEndpointReceivesEventsOnEveryReplicaWithinASecond: an endpoint added by the command
// line (a process that runs no worker) while two replicas run receives every event either
// replica handles from about a second after the add returned, although neither replica's
// cache would expire for a minute.
func TestNewEndpointReceivesEventsOnEveryReplicaWithinASecond(t *testing.T) {
	t.Parallel()
	le := newLiveEnv(t, nil)
	ctx := context.Background()
	e, err := le.cli.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: le.url, BusinessUnitID: 42, EventTypes: []int{12}, Secret: strongSecret})
	if err != nil {
		t.Fatal(err)
	}
	added := time.Now()
	// Which replica takes an event is the queue's choice: publish until each has handled some
	// (under load one replica can take a whole burst), for at most 4 rounds.
	var keys []string
	for round := 0; round < 4; round++ {
		keys = append(keys, le.publishFor(t, 5*time.Second)...)
		if le.handledBy(keys, added.Add(2*time.Second)) == 2 {
			break
		}
	}
	le.mu.Lock()
	defer le.mu.Unlock()
	late := map[string]int{}
	for _, k := range keys {
		h, ok := le.handled[k]
		if !ok {
			t.Fatalf("event %s was not handled", k)
		}
		if h.at.Sub(added) < 2*time.Second {
			continue // within the ~second the announcement takes: delivered or not
		}
		late[h.replica]++
		if !le.got[k] {
			m, _, err := le.messages.Get(ctx, platform.DeliveryKey(e.ID, k))
			t.Fatalf("event %s, handled by replica %s %v after the endpoint was added, was not delivered (delivery: %+v, %v)",
				k, h.replica, h.at.Sub(added).Round(time.Millisecond), m, err)
		}
	}
	if late["a"] == 0 || late["b"] == 0 {
		t.Fatalf("events handled a second after the add, by replica: %v; want some by each", late)
	}
}

// TestDisabledEndpointStopsOnEveryReplicaWithinASecond: an endpoint every replica has cached
// (it existed when they started) and disabled by the command line gets no delivery created
// for an event handled by either replica from about a second after the disable returned.
func TestDisabledEndpointStopsOnEveryReplicaWithinASecond(t *testing.T) {
	t.Parallel()
	var e *tables.Endpoint
	le := newLiveEnv(t, func(le *liveEnv) {
		var err error
		if e, err = le.cli.Webhooks().Add(context.Background(), webhooks.NewEndpoint{URL: le.url, BusinessUnitID: 42, EventTypes: []int{12}, Secret: strongSecret}); err != nil {
			t.Fatal(err)
		}
	})
	ctx := context.Background()
	if keys := le.publishFor(t, 200*time.Millisecond); !le.delivered(keys[0]) {
		t.Fatalf("before the disable, event %s was not delivered", keys[0])
	}
	if err := le.cli.Webhooks().Disable(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	disabled := time.Now()
	var keys []string
	for round := 0; round < 4; round++ { // until each replica has handled some (see above)
		keys = append(keys, le.publishFor(t, 5*time.Second)...)
		if le.handledBy(keys, disabled.Add(2*time.Second)) == 2 {
			break
		}
	}
	late := map[string]int{}
	for _, k := range keys {
		le.mu.Lock()
		h := le.handled[k]
		le.mu.Unlock()
		if h.at.Sub(disabled) < 2*time.Second {
			continue
		}
		late[h.replica]++
		m, _, err := le.messages.Get(ctx, platform.DeliveryKey(e.ID, k))
		if !errors.Is(err, platform.ErrNotFound) {
			t.Fatalf("event %s, handled by replica %s %v after the endpoint was disabled, has a delivery (%+v, %v)",
				k, h.replica, h.at.Sub(disabled).Round(time.Millisecond), m, err)
		}
	}
	if late["a"] == 0 || late["b"] == 0 {
		t.Fatalf("events handled a second after the disable, by replica: %v; want some by each", late)
	}
}

func (le *liveEnv) delivered(key string) bool {
	le.mu.Lock()
	defer le.mu.Unlock()
	return le.got[key]
}
