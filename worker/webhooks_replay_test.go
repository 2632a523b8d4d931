package worker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/webhooks"
)

// waitReceived waits until r has accepted n deliveries and returns their Idempotency-Keys and
// bodies, in order.
func (r *receiver) waitReceived(t *testing.T, n int) ([]string, []string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		got := len(r.got)
		var keys []string
		for _, h := range r.got {
			keys = append(keys, h.Get("Idempotency-Key"))
		}
		bodies := slices.Clone(r.bodies)
		r.mu.Unlock()
		switch {
		case got > n:
			t.Fatalf("the receiver got %d deliveries, want %d: %v", got, n, keys)
		case got == n:
			return keys, bodies
		case time.Now().After(deadline):
			t.Fatalf("the receiver got %d deliveries in 30 s, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func replay(t *testing.T, w *worker.Worker, id string, opts webhooks.ReplayOptions) *webhooks.ReplayResult {
	t.Helper()
	res, err := w.WebhookReplay().Replay(context.Background(), id, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func sortedCopy(s []string) []string { c := slices.Clone(s); slices.Sort(c); return c }

// A replay re-sends exactly the endpoint's events of the window (its unit, its types), under
// their original delivery keys, as often as it is asked; a bounded call returns a cursor and the
// resumed call finishes the rest without repeats.
func TestWebhookReplayResendsTheWindowUnderTheOriginalKeys(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	ctx := context.Background()
	rc := newReceiver(t, strongSecret, 0)
	e, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: rc.srv.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{11, 12}, Secret: strongSecret})
	if err != nil {
		t.Fatal(err)
	}
	guid := func(i int) string { return fmt.Sprintf("00000000-0000-0000-0000-%012d", i) }
	send(t, w, event(12, 1, 2, guid(0), "2026-11-22T09:00:00Z", `{"n":0}`)) // before the window
	drain(t, w)
	rc.waitReceived(t, 1)

	since := time.Now()
	send(t, w,
		event(11, 1, 1, guid(1), "2026-11-22T10:00:00Z", `{"n":1}`),
		event(12, 1, 2, guid(2), "2026-11-22T10:00:00Z", `{"n":2}`),
		event(12, 1, 2, guid(3), "2026-11-22T10:00:00Z", `{"n":3}`),
		event(21, 2, 1, guid(4), "2026-11-22T10:00:00Z", `{"n":4}`),                                                                   // a type it does not subscribe to
		strings.Replace(event(12, 1, 2, guid(5), "2026-11-22T10:00:00Z", `{"n":5}`), `"businessUnitId":42`, `"businessUnitId":43`, 1)) // another unit
	drain(t, w)
	keys, bodies := rc.waitReceived(t, 4)
	original := sortedCopy(keys[1:])
	bodyOf := map[string]string{}
	for i, k := range keys {
		bodyOf[k] = bodies[i]
	}

	for round := 1; round <= 2; round++ { // a second replay sends them again: receivers dedup on the key
		res := replay(t, w, e.ID, webhooks.ReplayOptions{Since: since})
		if res.Resent != 3 || res.Created != 0 || res.Skipped != 0 || res.Next != "" {
			t.Fatalf("replay %d: %+v, want 3 resent and done", round, res)
		}
		drain(t, w)
		keys, bodies = rc.waitReceived(t, 4+3*round)
		again := keys[len(keys)-3:]
		if got := sortedCopy(again); !slices.Equal(got, original) {
			t.Fatalf("replay %d sent %v, want the original keys %v", round, got, original)
		}
		for i, k := range again {
			if bodies[len(bodies)-3+i] != bodyOf[k] {
				t.Fatalf("replay %d: %s carried another body than its original", round, k)
			}
		}
	}
	tr := trace(t, w, strings.TrimPrefix(original[0], "webhook:"+e.ID+":"))
	if len(tr.Deliveries) != 1 || tr.Deliveries[0].State != platform.MessageSent || tr.Deliveries[0].Attempts != 1 ||
		!slices.ContainsFunc(tr.Deliveries[0].Trail, func(s platform.Step) bool { return s.Decision == "replayed" }) {
		t.Fatalf("a replayed delivery's trace: %+v", tr.Deliveries)
	}

	first := replay(t, w, e.ID, webhooks.ReplayOptions{Since: since, Max: 2})
	if first.Resent != 2 || first.Next == "" {
		t.Fatalf("replay with max 2: %+v, want 2 resent and a cursor", first)
	}
	rest := replay(t, w, e.ID, webhooks.ReplayOptions{Since: since, After: first.Next})
	if rest.Resent != 1 || rest.Next != "" {
		t.Fatalf("the resumed replay: %+v, want the 1 left and done", rest)
	}
	drain(t, w)
	keys, _ = rc.waitReceived(t, 4+3*3)
	if got := sortedCopy(keys[len(keys)-3:]); !slices.Equal(got, original) {
		t.Fatalf("the bounded replay and its resumption sent %v, want each of %v once", got, original)
	}
}

// An endpoint added after the events gets them by replay: its deliveries are created from the
// events' history rows, under the keys the worker would have given them.
func TestWebhookReplayCreatesTheDeliveriesOfAnEndpointAddedLater(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	ctx := context.Background()
	since := time.Now()
	body := event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`)
	send(t, w, body)
	drain(t, w)
	rc := newReceiver(t, strongSecret, 0)
	e, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: rc.srv.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{12}, Secret: strongSecret})
	if err != nil {
		t.Fatal(err)
	}
	res := replay(t, w, e.ID, webhooks.ReplayOptions{Since: since})
	if res.Created != 1 || res.Resent != 0 || res.Skipped != 0 {
		t.Fatalf("replay: %+v, want 1 created", res)
	}
	drain(t, w)
	keys, bodies := rc.waitReceived(t, 1)
	ev, _ := platform.DecodeEvent([]byte(body))
	if keys[0] != platform.DeliveryKey(e.ID, ev.Key()) || !strings.Contains(bodies[0], `"firstName":"Ada"`) || !strings.Contains(bodies[0], `"eventTypeId":12`) {
		t.Fatalf("created delivery: key %s body %s", keys[0], bodies[0])
	}
}

// A window that is too long, backwards, or a cursor of another window is bad input, as is an
// endpoint that does not exist.
func TestWebhookReplayRefusesABadWindow(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	e, err := w.Webhooks().Add(context.Background(), webhooks.NewEndpoint{URL: "http://127.0.0.1:9/hook", BusinessUnitID: 42, EventTypes: []int{12}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, c := range []struct {
		id    string
		opts  webhooks.ReplayOptions
		field string
	}{
		{e.ID, webhooks.ReplayOptions{}, "since"},
		{e.ID, webhooks.ReplayOptions{Since: now.Add(time.Hour)}, "since"},
		{e.ID, webhooks.ReplayOptions{Since: now.Add(-8 * 24 * time.Hour)}, "until"},
		{e.ID, webhooks.ReplayOptions{Since: now.Add(-time.Hour), Until: now.Add(-2 * time.Hour)}, "until"},
		{e.ID, webhooks.ReplayOptions{Since: now.Add(-time.Hour), Max: 5000}, "max"},
		{e.ID, webhooks.ReplayOptions{Since: now.Add(-time.Hour), After: platform.SourceKeyAt(now.Add(-2 * time.Hour))}, "after"},
		{e.ID, webhooks.ReplayOptions{Since: now.Add(-time.Hour), After: "not-a-cursor"}, "after"},
		{"01JUNKNOWNENDPOINT00000000", webhooks.ReplayOptions{Since: now.Add(-time.Hour)}, "no webhook endpoint"},
	} {
		_, err := w.WebhookReplay().Replay(context.Background(), c.id, c.opts)
		if !errors.Is(err, platform.ErrInvalidInput) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: %v, want invalid input naming %s", c.opts, err, c.field)
		}
	}
}

// Over HTTP, bad input is a 400 naming the field, and a good call answers the counts and the
// cursor.
func TestWebhookReplayOverHTTP(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0", Auth: auth.Config{Mode: auth.ModeKeys}, WebhookAllowlist: []string{"127.0.0.1"}})
	ctx := context.Background()
	k, _, err := w.Keys().Create(ctx, auth.NewKey{Role: auth.WebhooksManage, Units: auth.Units{IDs: []int64{42}}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: "http://127.0.0.1:9/hook", BusinessUnitID: 42, EventTypes: []int{12}})
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + w.HTTPAddr() + "/v1/webhooks/" + e.ID + "/replay"
	at := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }
	for body, field := range map[string]string{
		`{"since":"yesterday"}`:                                                 "since",
		`{"since":"` + at(-time.Hour) + `","until":"soon"}`:                     "until",
		`{"since":"` + at(-8*24*time.Hour) + `"}`:                               "until",
		`{"since":"` + at(-time.Hour) + `","until":"` + at(-2*time.Hour) + `"}`: "until",
		`{"since":"` + at(-time.Hour) + `","after":"x"}`:                        "after",
		`{"since":"` + at(-time.Hour) + `","max":0.5}`:                          "max",
		`{"from":"` + at(-time.Hour) + `"}`:                                     "from",
	} {
		if code, answer := call(t, "POST", url, "Bearer "+k, body); code != http.StatusBadRequest || !strings.Contains(answer, field) {
			t.Errorf("%s: %d %s, want 400 naming %s", body, code, answer, field)
		}
	}
	code, answer := call(t, "POST", url, "Bearer "+k, `{"since":"`+at(-time.Hour)+`"}`)
	if code != http.StatusOK || answer != `{"resent":0,"created":0,"skipped":0,"next":""}`+"\n" {
		t.Errorf("an empty window: %d %s", code, answer)
	}
}

// A call ends after reading its share of the window (20 rows per event it may handle), even
// when none of them is the endpoint's: a window full of other units' events cannot hold one
// call for ever. The calls that follow reach the endpoint's event.
func TestWebhookReplayBoundsTheRowsOneCallReads(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	rc := newReceiver(t, strongSecret, 0)
	e, err := w.Webhooks().Add(context.Background(), webhooks.NewEndpoint{URL: rc.srv.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{12}, Secret: strongSecret})
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	var others []string
	for i := range 25 {
		others = append(others, strings.Replace(event(12, 1, 2, fmt.Sprintf("00000000-0000-0000-0000-%012d", i), "2026-11-22T10:00:00Z", `{}`),
			`"businessUnitId":42`, `"businessUnitId":43`, 1))
	}
	send(t, w, others...)
	drain(t, w)
	send(t, w, event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{}`))
	drain(t, w)
	rc.waitReceived(t, 1)

	res := replay(t, w, e.ID, webhooks.ReplayOptions{Since: since, Max: 1})
	if res.Resent+res.Created+res.Skipped != 0 || res.Next == "" {
		t.Fatalf("first call: %+v, want none handled after 20 rows, and a cursor", res)
	}
	for calls := 2; res.Next != ""; calls++ {
		if calls > 3 {
			t.Fatalf("still not done after %d calls", calls)
		}
		after := res.Next
		if res = replay(t, w, e.ID, webhooks.ReplayOptions{Since: since, Max: 1, After: after}); res.Resent == 1 {
			break
		}
	}
	if res.Resent != 1 {
		t.Fatalf("the calls after it: %+v, want the endpoint's event re-sent", res)
	}
	drain(t, w)
	rc.waitReceived(t, 2)
}
