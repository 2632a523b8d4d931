package worker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/realtime"
)

type sseEvent struct {
	id, event, data string
}

// sseClient reads a /v1/changes stream; raw keeps every byte received.
type sseClient struct {
	events chan sseEvent
	mu     sync.Mutex
	raw    strings.Builder
	cancel context.CancelFunc
}

func connect(t *testing.T, url, lastEventID string) *sseClient {
	t.Helper()
	h := http.Header{}
	if lastEventID != "" {
		h.Set("Last-Event-ID", lastEventID)
	}
	return openStream(t, url, h)
}

// connectAs opens a stream with credentials (an Authorization header's value).
func connectAs(t *testing.T, url, authorization string) *sseClient {
	t.Helper()
	return openStream(t, url, http.Header{"Authorization": {authorization}})
}

func openStream(t *testing.T, url string, h http.Header) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{events: make(chan sseEvent, 100), cancel: cancel}
	go func() {
		defer resp.Body.Close()
		defer close(c.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.raw.WriteString(line + "\n")
			c.mu.Unlock()
			switch {
			case line == "":
				if ev.event != "" {
					c.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(cancel)
	return c
}

func (c *sseClient) next(t *testing.T) (sseEvent, platform.Change) {
	t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			t.Fatal("the stream ended")
		}
		var ch platform.Change
		if err := json.Unmarshal([]byte(ev.data), &ch); err != nil {
			t.Fatalf("data %q: %v", ev.data, err)
		}
		return ev, ch
	case <-time.After(20 * time.Second):
		t.Fatal("no change on the stream within 20s")
	}
	panic("unreachable")
}

func changeEvent(bu int, entityID int, createdOn string) string {
	return fmt.Sprintf(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityId":%d,"businessUnitId":%d,"createdOn":%q,`+
		`"changedFields":["lastName","allergies"],"payload":{"lastName":"Lovelace-SECRET","allergies":"peanuts-SECRET"}}`, entityID, bu, createdOn)
}

func TestChangeStreamReachesEveryReplicaAndResumes(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	cfg := env.config()
	cfg.Realtime = realtime.Config{PollInterval: 200 * time.Millisecond}
	a, b := env.start(cfg), env.start(cfg)
	srvA, srvB := httptest.NewServer(a.Handler()), httptest.NewServer(b.Handler())
	t.Cleanup(srvA.Close)
	t.Cleanup(srvB.Close)
	ca := connect(t, srvA.URL+"/v1/changes", "")
	cb := connect(t, srvB.URL+"/v1/changes", "")
	send(t, a, changeEvent(42, 1, "2026-11-22T10:00:00Z"))
	// Only one replica handled it; both streams carry it.
	evA, chA := ca.next(t)
	evB, chB := cb.next(t)
	if chA.EventKey != chB.EventKey || evA.id != evB.id {
		t.Fatalf("replicas disagree: %s/%s vs %s/%s", evA.id, chA.EventKey, evB.id, chB.EventKey)
	}
	// A client that drops and comes back with Last-Event-ID gets what it missed, and only that.
	cb.cancel()
	send(t, a, changeEvent(42, 2, "2026-11-22T11:00:00Z"))
	_, missed := ca.next(t)
	resumed := connect(t, srvB.URL+"/v1/changes", evB.id)
	_, got := resumed.next(t)
	if got.EventKey != missed.EventKey || got.EventKey == chB.EventKey {
		t.Fatalf("resumed with %s, want %s", got.EventKey, missed.EventKey)
	}
}

func TestChangeStreamCarriesFieldNamesNeverValues(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	c := connect(t, srv.URL+"/v1/changes?businessUnitId=42&entityTypeId=1", "")
	send(t, w, changeEvent(7, 1, "2026-11-22T10:00:00Z")) // another business unit: filtered out
	send(t, w, changeEvent(42, 3, "2026-11-22T10:00:01Z"))
	_, ch := c.next(t)
	if ch.BusinessUnitID != 42 || ch.EntityTypeID != 1 || ch.EntityIdentity != "3" || ch.ActionTypeID != 2 {
		t.Fatalf("change %+v, want business unit 42, entity 1/3, action 2", ch)
	}
	if strings.Join(ch.ChangedFields, ",") != "lastName,allergies" {
		t.Fatalf("changedFields %v", ch.ChangedFields)
	}
	c.mu.Lock()
	raw := c.raw.String()
	c.mu.Unlock()
	for _, value := range []string{"SECRET", "Lovelace", "peanuts"} {
		if strings.Contains(raw, value) {
			t.Fatalf("the stream carried the payload value %q:\n%s", value, raw)
		}
	}
	if !strings.Contains(raw, `"lastName"`) {
		t.Fatalf("the stream lacks the changed field's name:\n%s", raw)
	}
}
