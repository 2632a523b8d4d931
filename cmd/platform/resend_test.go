package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/tables"
)

// buildChaosPlatform builds the chaos build of the binary: the normal worker, whose send lease
// (PLATFORM_CHAOS_SEND_LEASE) and queue visibility (PLATFORM_CHAOS_VISIBILITY) a test may
// shorten, so that a crash inside the send window is waited out in seconds, not minutes.
func buildChaosPlatform(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "platform-chaos")
	if out, err := exec.Command("go", "build", "-tags", "chaos", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags chaos: %v\n%s", err, out)
	}
	return bin
}

// stallingEndpoint records each request's Idempotency-Key and stalls on the first until its
// connection goes (the worker sending it is killed); later requests are answered 204.
type stallingEndpoint struct {
	srv     *httptest.Server
	stalled chan struct{} // closed when the first request arrived
	mu      sync.Mutex
	keys    []string
}

func newStallingEndpoint(t *testing.T) *stallingEndpoint {
	s := &stallingEndpoint{stalled: make(chan struct{})}
	gone := make(chan struct{})
	s.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		s.mu.Lock()
		s.keys = append(s.keys, req.Header.Get("Idempotency-Key"))
		first := len(s.keys) == 1
		s.mu.Unlock()
		if first {
			close(s.stalled)
			select {
			case <-req.Context().Done():
			case <-gone:
			}
			return
		}
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(func() { close(gone); s.srv.Close() })
	return s
}

func (s *stallingEndpoint) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keys...)
}

// A worker killed (SIGKILL) while an endpoint delivery and an email are both inside their send
// window: the next worker sends the delivery again, with the same Idempotency-Key, and it ends
// Sent after two attempts (at-least-once: integrators deduplicate); the email becomes Unknown
// and is not resent (at-most-once). The trace of each says which rule applied.
func TestAKilledWorkersEndpointDeliveryIsSentAgainAndItsEmailIsNot(t *testing.T) {
	t.Parallel()
	e := newStopEnv(t)
	e.binary = buildChaosPlatform(t)
	e.smtp.Delay = 20 * time.Second // the mail hangs in DATA past the kill
	hook := newStallingEndpoint(t)
	const unit = 43
	endpoint := strings.TrimSpace(e.runTool(t, "webhooks", "add", "--url", hook.srv.URL+"/hook",
		"--business-unit", fmt.Sprint(unit), "--event-types", fmt.Sprint(mappings.EventCreateAttendee), "--secret", endpointSecret))
	var events []*platform.EntityEvent
	for _, body := range []string{
		fmt.Sprintf(`{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"entityGuid":"5e0b7a1c-57a7-4000-8000-000000000043","businessUnitId":%d,"createdOn":"2026-11-22T08:00:00Z","payload":{"firstName":"Grace"}}`, unit),
		fmt.Sprintf(`{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"entityGuid":"5e0b7a1c-57a7-4000-8000-000000000007","businessUnitId":%d,"createdOn":"2026-11-22T08:00:00Z","notificationEventTypeId":101,`+
			`"payload":{"firstName":"Ada","guardianEmail":"guardian@example.com","guardianName":"Byron"}}`, mailUnit),
	} {
		ev, err := platform.DecodeEvent([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	deliveryKey := platform.DeliveryKey(endpoint, events[0].Key())
	mailKey := platform.MessageKey(platform.EventJobKey(mappings.NotificationAttendeeNewProfile, events[1].Key()),
		platform.Recipient{Channel: platform.ChannelEmail, Address: "guardian@example.com"})
	tc, err := tables.New(storage.Account{}, e.ns)
	if err != nil {
		t.Fatal(err)
	}
	row := func(key string) *platform.OutgoingMessage {
		m, _, err := tc.Messages().Get(context.Background(), key)
		if err != nil {
			return &platform.OutgoingMessage{}
		}
		return m
	}
	e.publish(t, events)

	short := []string{"PLATFORM_CHAOS_SEND_LEASE=10s", "PLATFORM_CHAOS_VISIBILITY=2s"}
	first := e.startWorker(t, "first", short, "--http-addr", "127.0.0.1:0")
	waitFor(t, first, time.Minute, "the delivery stalled at the endpoint and the email Sending", func() bool {
		select {
		case <-hook.stalled:
			return row(mailKey).State == platform.MessageSending
		default:
			return false
		}
	})
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done
	if st := row(deliveryKey).State; st != platform.MessageSending {
		t.Fatalf("the delivery is %s after the kill, want Sending (cut off inside the send window)", st)
	}

	second := e.startWorker(t, "second", short, "--http-addr", "127.0.0.1:0")
	waitFor(t, second, time.Minute, "the delivery settled and the email Unknown", func() bool {
		return row(deliveryKey).State.Final() && row(mailKey).State.Final()
	})
	d, m := row(deliveryKey), row(mailKey)
	if got := hook.received(); d.State != platform.MessageSent || d.Attempts != 2 || len(got) != 2 || got[0] != deliveryKey || got[1] != deliveryKey {
		t.Errorf("delivery %s after %d attempts, the endpoint got Idempotency-Keys %q; want Sent after 2, the key %s twice", d.State, d.Attempts, got, deliveryKey)
	}
	if m.State != platform.MessageUnknown || m.Attempts != 1 {
		t.Errorf("email %s after %d attempts, want Unknown after 1 (at most once)", m.State, m.Attempts)
	}
	for key, want := range map[string]string{deliveryKey: "at-least-once", mailKey: "at-most-once"} {
		out := e.runTool(t, "trace", key, "--json")
		if !json.Valid([]byte(out)) {
			t.Fatalf("platform trace %s --json is not JSON:\n%s", key, out)
		}
		if !strings.Contains(out, want) {
			t.Errorf("platform trace %s does not name the rule %q:\n%s", key, want, out)
		}
		if text := e.runTool(t, "trace", key); !strings.Contains(text, want) {
			t.Errorf("platform trace %s (text) does not name the rule %q:\n%s", key, want, text)
		}
	}
}
