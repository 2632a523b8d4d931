package worker_test

import (
	"strings"
	"testing"

	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker"
)

// Every hostile message is poisoned with a reason that names what is wrong, the worker keeps
// going, and a valid event sent after them all is handled.
func TestHostileEventsArePoisonedWithTheirReason(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{})
	cases := testenv.HostileEvents()
	if len(cases) < 25 {
		t.Fatalf("%d hostile cases, want at least 25", len(cases))
	}
	for _, c := range cases {
		send(t, w, c.Body)
	}
	after := event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`)
	send(t, w, after)
	drain(t, w)
	if rows := timeline(t, w, 1, attendee); len(rows) != 1 {
		t.Fatalf("the valid event after the hostile ones left %d rows, want 1", len(rows))
	}
	got := map[string]string{} // body → reason
	for _, rec := range poison(t, w) {
		got[rec.Body] = rec.Reason
	}
	for _, c := range cases {
		reason, ok := got[strings.TrimSpace(c.Body)]
		if !ok {
			reason, ok = got[c.Body]
		}
		switch {
		case !ok:
			t.Errorf("%s: not in the poison queue", c.Name)
		case !strings.Contains(reason, c.Reason):
			t.Errorf("%s: reason %q, want it to mention %q", c.Name, reason, c.Reason)
		}
	}
	if len(got) != len(cases) {
		t.Errorf("%d distinct bodies poisoned, want %d", len(got), len(cases))
	}
}
