package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/webhooks"
)

// answerer is an endpoint that answers each request as its script says (the last entry
// repeats) and records when each came, by Idempotency-Key.
type answerer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	script []func(rw http.ResponseWriter)
	at     map[string][]time.Time
}

func newAnswerer(t *testing.T, script ...func(rw http.ResponseWriter)) *answerer {
	a := &answerer{script: script, at: map[string][]time.Time{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		a.mu.Lock()
		key := req.Header.Get("Idempotency-Key")
		a.at[key] = append(a.at[key], time.Now())
		answer := a.script[min(len(a.at[key]), len(a.script))-1]
		a.mu.Unlock()
		answer(rw)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *answerer) times(key string) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.at[key])
}

func answer(code int, retryAfter string) func(http.ResponseWriter) {
	return func(rw http.ResponseWriter) {
		if retryAfter != "" {
			rw.Header().Set("Retry-After", retryAfter)
		}
		rw.WriteHeader(code)
	}
}

// addEndpoint subscribes a to event type 12 of business unit 42 and returns the key of the
// delivery of body to it.
func addEndpoint(t *testing.T, w *worker.Worker, a *answerer, body string) string {
	t.Helper()
	e, err := w.Webhooks().Add(context.Background(), webhooks.NewEndpoint{URL: a.srv.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{12}, Secret: strongSecret})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := platform.DecodeEvent([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return platform.DeliveryKey(e.ID, ev.Key())
}

// storedMessage reads message key of namespace ns as stored (empty before it is made).
func storedMessage(t *testing.T, ns platform.Namespace, key string) *platform.OutgoingMessage {
	t.Helper()
	tc, err := tables.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := tc.Messages().Get(context.Background(), key)
	if errors.Is(err, platform.ErrNotFound) {
		return &platform.OutgoingMessage{} // not made yet
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A receiver answering 503 / 429 with Retry-After (seconds, and an HTTP date) gets its next
// attempt no sooner than it asked, though the schedule's steps (1 s) and the queue's retry
// backoff (1 s, doubling) are shorter: the waits are holds on the queue, not the consumer's retries.
// One success, after exactly the attempts the answers call for: no tight loop.
func TestEndpointRetriesWaitAsTheReceiverAsks(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	cfg := env.config()
	cfg.Webhooks.RetrySchedule = []time.Duration{time.Second, time.Second, time.Second, 5 * time.Second, 5 * time.Second}
	w := env.start(cfg)
	a := newAnswerer(t,
		answer(http.StatusServiceUnavailable, "4"),
		func(rw http.ResponseWriter) {
			answer(http.StatusTooManyRequests, time.Now().Add(4*time.Second).UTC().Format(http.TimeFormat))(rw)
		},
		answer(http.StatusServiceUnavailable, "2"),
		answer(http.StatusNoContent, ""))
	body := event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`)
	key := addEndpoint(t, w, a, body)
	send(t, w, body)
	testenv.Eventually(t, 45*time.Second, "the delivery Sent", func() bool { return storedMessage(t, env.ns, key).State == platform.MessageSent })

	at := a.times(key)
	if len(at) != 4 {
		t.Fatalf("%d attempts, want 4 (three refusals, one success)", len(at))
	}
	// An HTTP date has whole seconds: "now + 4 s" is at least 3 s away.
	for i, least := range []time.Duration{4 * time.Second, 3 * time.Second, 2 * time.Second} {
		if gap := at[i+1].Sub(at[i]); gap < least {
			t.Errorf("attempt %d came %s after attempt %d, want at least %s (the receiver's Retry-After)", i+2, gap.Round(time.Millisecond), i+1, least)
		}
	}
	m := storedMessage(t, env.ns, key)
	if m.Attempts != 4 || !m.RetryAt.IsZero() {
		t.Errorf("delivery after %d attempts, retryAt %s; want 4 attempts and no retry pending", m.Attempts, m.RetryAt)
	}
	if n := countSteps(m.Trail, "will retry", "Retry-After"); n != 3 {
		t.Errorf("%d 'will retry' steps naming the Retry-After, want 3: %+v", n, m.Trail)
	}
	time.Sleep(3 * time.Second) // a stray hold would show now
	if n := len(a.times(key)); n != 4 {
		t.Errorf("%d attempts after the success, want it to stay 4", n)
	}
}

// A receiver that always fails gets len(schedule)+1 attempts, spaced as scheduled, then the
// delivery is Failed: the schedule, not the email's MaxAttempts (5), decides. A Retry-After
// longer than the schedule's longest step is cut to that step.
func TestEndpointDeliveryFailingAlwaysIsFailedAfterItsSchedule(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	cfg := env.config()
	cfg.Webhooks.RetrySchedule = []time.Duration{time.Second, 2 * time.Second}
	w := env.start(cfg)
	a := newAnswerer(t, answer(http.StatusServiceUnavailable, "3600"))
	body := event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`)
	key := addEndpoint(t, w, a, body)
	send(t, w, body)
	testenv.Eventually(t, 30*time.Second, "the delivery Failed", func() bool { return storedMessage(t, env.ns, key).State == platform.MessageFailed })

	at := a.times(key)
	if len(at) != 3 {
		t.Fatalf("%d attempts, want 3 (a schedule of 2 retries)", len(at))
	}
	for i, step := range []time.Duration{time.Second, 2 * time.Second} {
		// The Retry-After (an hour) is cut to the longest step (2 s), plus up to a fifth.
		// At most 30 s: a slow machine polls late, but no one waits an hour.
		if gap := at[i+1].Sub(at[i]); gap < 2*time.Second || gap > 30*time.Second {
			t.Errorf("attempt %d came %s after the one before (step %s), want from 2 s (the longest step) to well under the hour asked", i+2, gap.Round(time.Millisecond), step)
		}
	}
	if m := storedMessage(t, env.ns, key); m.Attempts != 3 || !strings.Contains(m.LastError, "gave up after 3 attempts") {
		t.Errorf("delivery after %d attempts, last error %q", m.Attempts, m.LastError)
	}
	time.Sleep(3 * time.Second)
	if n := len(a.times(key)); n != 3 {
		t.Errorf("%d attempts after Failed, want it to stay 3", n)
	}
}

// An endpoint whose every attempt fails for DisableAfter is disabled, with its reason, shown
// in the list (and GET /v1/webhooks); one that succeeds now and then is not.
func TestAnEndpointFailingForTooLongIsDisabled(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	cfg := env.config()
	cfg.Webhooks.RetrySchedule = []time.Duration{time.Second, time.Second, time.Second, time.Second, time.Second, time.Second}
	cfg.Webhooks.DisableAfter = 3 * time.Second
	var logs *syncBuffer
	cfg.Logger, logs = teeLogger(t)
	w := env.start(cfg)
	down := newAnswerer(t, answer(http.StatusInternalServerError, ""))
	// Each delivery to flaky fails once, then succeeds.
	flaky := newAnswerer(t, answer(http.StatusInternalServerError, ""), answer(http.StatusNoContent, ""))
	ctx := context.Background()
	var ids []string
	for _, a := range []*answerer{down, flaky} {
		e, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: a.srv.URL + "/hook?token=SECRET", BusinessUnitID: 42, EventTypes: []int{12}, Secret: strongSecret})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	// Six events, one after the other: the flaky endpoint's attempts never overlap, so each
	// failure follows a success, however slow the machine, and its failing mark is never
	// older than one failure. The one that is down fails all along (its retries every second).
	start := time.Now()
	for i := range 6 {
		body := event(12, 1, 2, attendee, time.Date(2026, 11, 22, 10, 0, i, 0, time.UTC).Format(time.RFC3339), `{"firstName":"Ada"}`)
		ev, _ := platform.DecodeEvent([]byte(body))
		send(t, w, body)
		key := platform.DeliveryKey(ids[1], ev.Key())
		testenv.Eventually(t, 30*time.Second, "the flaky endpoint's delivery Sent", func() bool { return storedMessage(t, env.ns, key).State == platform.MessageSent })
	}
	if took := time.Since(start); took < cfg.Webhooks.DisableAfter {
		t.Fatalf("the flaky endpoint's deliveries took %s, less than DisableAfter: nothing to prove", took)
	}
	endpoint := func(id string) *tables.Endpoint {
		all, err := w.Webhooks().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(all, func(e *tables.Endpoint) bool { return e.ID == id })
		return all[i]
	}
	testenv.Eventually(t, 20*time.Second, "the failing endpoint disabled", func() bool { return !endpoint(ids[0]).Enabled })
	e := endpoint(ids[0])
	if !strings.Contains(e.DisabledReason, "every delivery failed since") || !strings.Contains(e.DisabledReason, "500") || e.DisabledAt.IsZero() {
		t.Errorf("disabled with reason %q at %s, want why and when", e.DisabledReason, e.DisabledAt)
	}
	api := httptest.NewServer(w.Handler())
	t.Cleanup(api.Close)
	resp, err := http.Get(api.URL + "/v1/webhooks")
	if err != nil {
		t.Fatal(err)
	}
	var listed []map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&listed)
	resp.Body.Close()
	for _, l := range listed {
		if l["id"] == ids[0] && (l["enabled"] != false || !strings.Contains(l["disabledReason"].(string), "every delivery failed")) {
			t.Errorf("GET /v1/webhooks shows the disabled endpoint as %v", l)
		}
	}
	testenv.Eventually(t, 10*time.Second, "the disabling logged", func() bool {
		return strings.Contains(logs.String(), "webhook endpoint disabled") && strings.Contains(logs.String(), ids[0])
	})
	drain(t, w)
	if f := endpoint(ids[1]); !f.Enabled || f.DisabledReason != "" {
		t.Errorf("the endpoint that succeeds now and then is disabled: %q", f.DisabledReason)
	}
	if strings.Contains(logs.String(), "SECRET") {
		t.Errorf("the log shows an endpoint's URL whole")
	}

	// The receiver is fixed; its owner enables the endpoint again: a clean slate, and the
	// next event is delivered.
	resp, err = http.Post(api.URL+"/v1/webhooks/"+ids[0]+"/enable", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if e := endpoint(ids[0]); resp.StatusCode != http.StatusOK || !e.Enabled || e.DisabledReason != "" || !e.DisabledAt.IsZero() || !e.FailingSince.IsZero() {
		t.Fatalf("enable: %d, endpoint %+v; want it enabled with no reason, time or failing mark", resp.StatusCode, e)
	}
	down.mu.Lock()
	down.script = []func(http.ResponseWriter){answer(http.StatusNoContent, "")}
	down.mu.Unlock()
	body := event(12, 1, 2, attendee, "2026-11-22T11:00:00Z", `{"firstName":"Ada"}`)
	ev, _ := platform.DecodeEvent([]byte(body))
	send(t, w, body)
	key := platform.DeliveryKey(ids[0], ev.Key())
	testenv.Eventually(t, 30*time.Second, "the re-enabled endpoint's delivery Sent", func() bool { return storedMessage(t, env.ns, key).State == platform.MessageSent })
}

func countSteps(trail []platform.Step, decision, reason string) int {
	n := 0
	for _, s := range trail {
		if s.Decision == decision && strings.Contains(s.Reason, reason) {
			n++
		}
	}
	return n
}
