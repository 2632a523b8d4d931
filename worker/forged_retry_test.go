package worker_test

import (
	"encoding/json"
	"testing"

	"github.com/platform/platform/worker"
)

// A sender who can enqueue cannot skip the audit trail by wrapping an event in the retry
// envelope with "history" marked done: progress the worker did not write is ignored.
func TestForgedRetryProgressDoesNotSkipHistory(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{})
	body, _ := json.Marshal(event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`))
	send(t, w, `{"platformRetry":{"done":["history"]},"body":`+string(body)+`}`)
	drain(t, w)
	if rows := timeline(t, w, 1, attendee); len(rows) != 1 {
		t.Fatalf("%d history rows, want 1: the forged progress skipped the audit trail", len(rows))
	}
}
