package main

import (
	"context"
	"strings"
	"testing"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
)

// With OTEL_EXPORTER_OTLP_ENDPOINT set, publish starts each event's trace (its message carries
// the traceparent) and exports its span before it exits; the worker continues the trace and
// exports its spans by the end of its stop. A protocol it cannot speak (http/json) is bad usage.
func TestPublishAndWorkerExportTracesWhenAnEndpointIsSet(t *testing.T) {
	recv := testenv.StartOTLPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.Endpoint)
	ns := testenv.Namespace(t)
	code, _, errOut := cli(t, ev(11, "2026-11-22T09:00:00Z"), "publish", "--namespace", string(ns), "-")
	if code != 0 {
		t.Fatalf("publish: %d %s", code, errOut)
	}
	published, _, _ := recv.Received()
	if published != 1 {
		t.Fatalf("publish exported %d times, want its span once before exiting", published)
	}
	q, err := queues.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	texts, err := q.Peek(context.Background(), platform.QueueEntityEvents)
	if err != nil || len(texts) != 1 || !strings.HasPrefix(texts[0], `{"traceparent":"00-`) {
		t.Fatalf("entity-events holds %q (%v); want the event with its traceparent first", texts, err)
	}
	if code, _, errOut := cli(t, "", "worker", "--drain", "--namespace", string(ns), "--http-addr", "127.0.0.1:0", "--log-level", "warn"); code != 0 {
		t.Fatalf("worker --drain: %d %s", code, errOut)
	}
	if n, _, refused := recv.Received(); n <= published || refused != 0 {
		t.Fatalf("after the worker: %d exports (%d refused); want the worker's spans exported by its stop", n, refused)
	}

	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	for _, args := range [][]string{{"publish", "--namespace", string(ns), "-"}, {"worker", "--namespace", string(ns), "--http-addr", "127.0.0.1:0"}} {
		code, _, errOut := cli(t, ev(11, "2026-11-22T09:00:00Z"), args...)
		if code != 2 || !strings.Contains(errOut, "OTEL_EXPORTER_OTLP_PROTOCOL=http/json") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%s with http/json: exit %d, stderr %q; want 2 and one line naming the variable", args[0], code, errOut)
		}
	}
}
