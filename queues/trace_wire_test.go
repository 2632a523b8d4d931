package queues_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
)

func tracedClient(t *testing.T) (*queues.Client, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	c := newClient(t)
	c.SetTracerProvider(tp)
	return c, exp
}

func spanNamed(t *testing.T, exp *tracetest.InMemoryExporter, name string) []tracetest.SpanStub {
	t.Helper()
	var out []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func testEvent(t *testing.T) *platform.EntityEvent {
	t.Helper()
	ev, err := platform.DecodeEvent([]byte(`{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"entityId":7,"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z","payload":{"a":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// Tracing off, what the client writes is what it wrote before traces existed, byte for byte;
// on, the same bytes with the publish span's traceparent as the first member.
func TestMessagesCarryTheirPublishSpanOnlyWithTracingOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ev := testEvent(t)
	canonical, _ := json.Marshal(ev)
	stage := map[string]string{"jobKey": "notification-job:101:x"}
	stageJSON, _ := json.Marshal(stage)

	off := newClient(t)
	if _, err := off.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := off.EnqueueCarrying(ctx, platform.QueueNotificationGenerator, "job", stage, stage, 0); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]string{platform.QueueEntityEvents: string(canonical), platform.QueueNotificationGenerator: string(stageJSON)} {
		if got := peekOne(t, off, q); got != want {
			t.Errorf("tracing off, %s holds %s, want %s unchanged", q, got, want)
		}
	}

	on, exp := tracedClient(t)
	if _, err := on.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := on.EnqueueCarrying(ctx, platform.QueueNotificationGenerator, "job", stage, stage, 0); err != nil {
		t.Fatal(err)
	}
	for q, body := range map[string]string{platform.QueueEntityEvents: string(canonical), platform.QueueNotificationGenerator: string(stageJSON)} {
		spans := spanNamed(t, exp, q+" publish")
		if len(spans) != 1 {
			t.Fatalf("%d %q spans, want 1", len(spans), q+" publish")
		}
		s := spans[0]
		if s.SpanKind != trace.SpanKindProducer || s.Parent.IsValid() {
			t.Errorf("%s publish span: kind %v, parent %v; want a producer starting its trace", q, s.SpanKind, s.Parent)
		}
		want := `{"traceparent":"00-` + s.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + `-01",` + body[1:]
		if got := peekOne(t, on, q); got != want {
			t.Errorf("tracing on, %s holds %s, want %s", q, got, want)
		}
		attrs := map[string]string{}
		for _, a := range s.Attributes {
			attrs[string(a.Key)] = a.Value.String()
		}
		if attrs["messaging.system"] != "azure_queues" || attrs["messaging.destination.name"] != q || attrs["messaging.message.id"] == "" {
			t.Errorf("%s publish span attributes %v", q, attrs)
		}
	}
}

func peekOne(t *testing.T, c *queues.Client, q string) string {
	t.Helper()
	texts, err := c.Peek(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(texts) != 1 {
		t.Fatalf("%s holds %d messages, want 1", q, len(texts))
	}
	return texts[0]
}

// The consumer's process span is the child of the span that published the message, and its
// handler's context carries it; a retry of the message joins the same trace. A message from
// another sender without a traceparent, or with a malformed one, starts a trace of its own and
// is handled as ever.
func TestTheConsumerContinuesTheMessagesTrace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, exp := tracedClient(t)
	var (
		mu      sync.Mutex
		handled = map[string][]trace.SpanContext{} // body's marker → the handler's span, per delivery
	)
	start(t, c, queues.ConsumerConfig{Handler: func(ctx context.Context, m *queues.Message) error {
		var v struct{ Marker string }
		_ = json.Unmarshal(m.Body, &v)
		mu.Lock()
		handled[v.Marker] = append(handled[v.Marker], trace.SpanContextFromContext(ctx))
		n := len(handled[v.Marker])
		mu.Unlock()
		if v.Marker == "retried" && n == 1 {
			return errors.New("fails once")
		}
		return nil
	}})
	for _, marker := range []string{"traced", "retried"} {
		if err := c.EnqueueCarrying(ctx, work, marker, map[string]string{"marker": marker}, nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	// Other senders: no traceparent; a malformed one; one not a string.
	enqueue(t, c, `{"marker":"untraced"}`, `{"traceparent":"00-zz-not-a-trace","marker":"malformed"}`, `{"marker":"number","traceparent":42}`)
	testenv.Eventually(t, 30*time.Second, "every message handled, the retried one twice", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled["traced"]) == 1 && len(handled["retried"]) == 2 && len(handled["untraced"]) == 1 &&
			len(handled["malformed"]) == 1 && len(handled["number"]) == 1
	})
	testenv.Eventually(t, 10*time.Second, "six process spans ended", func() bool { return len(spanNamed(t, exp, work+" process")) == 6 })

	publishes := spanNamed(t, exp, work+" publish")
	if len(publishes) != 2 {
		t.Fatalf("%d publish spans, want 2", len(publishes))
	}
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		byID[s.SpanContext.SpanID()] = s
	}
	mu.Lock()
	defer mu.Unlock()
	seenTraces := map[trace.TraceID]string{}
	for marker, deliveries := range handled {
		for i, sc := range deliveries {
			s, ok := byID[sc.SpanID()]
			if !ok || s.Name != work+" process" || s.SpanKind != trace.SpanKindConsumer {
				t.Fatalf("%s, delivery %d: the handler's context carries span %v, not a consumer's process span", marker, i+1, sc.SpanID())
			}
			parent, traced := byID[s.Parent.SpanID()]
			switch marker {
			case "traced", "retried":
				if !traced || parent.Name != work+" publish" || s.SpanContext.TraceID() != parent.SpanContext.TraceID() || !s.Parent.IsRemote() {
					t.Errorf("%s, delivery %d: parent %v (%s); want the remote publish span of its trace", marker, i+1, s.Parent, parent.Name)
				}
			default:
				if s.Parent.IsValid() {
					t.Errorf("%s: process span has parent %v; want a new trace", marker, s.Parent)
				}
			}
			if other, dup := seenTraces[sc.TraceID()]; dup && other != marker {
				t.Errorf("%s and %s share trace %s", marker, other, sc.TraceID())
			}
			seenTraces[sc.TraceID()] = marker
			if marker == "retried" && i == 1 && sc.TraceID() != deliveries[0].TraceID() {
				t.Errorf("the retry is in trace %s, the first delivery in %s: want one trace", sc.TraceID(), deliveries[0].TraceID())
			}
		}
	}
	first := byID[handled["retried"][0].SpanID()]
	if first.Status.Code != codes.Error || first.Status.Description != "fails once" {
		t.Errorf("the failed delivery's span: status %+v, want the handler's error", first.Status)
	}
}
