package queues

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Traces (OpenTelemetry) follow a message across every queue hop. A message the platform
// writes carries the W3C traceparent of the span that enqueued it ("{queue} publish", kind
// producer), as the first member of its JSON object: {"traceparent":"00-…-…-01",…}. The
// consumer continues that trace: its "{queue} process" span (kind consumer) is a child of the
// publish span, and the handler's context carries it, so the next hop's publish is its child in
// turn. A redelivery carries the same traceparent (a retry keeps the body), so it joins the same
// trace. A message without one (another sender, or written with tracing off) starts a new
// trace; a malformed one is ignored, never an error.
//
// With no tracer provider (the default) the client makes no span and adds nothing to a message:
// what it writes is byte for byte what it wrote before traces existed.

const tracerName = "github.com/platform/platform/queues"

// traceContext is the W3C Trace Context propagator: traceparent (tracestate is not carried).
var traceContext = propagation.TraceContext{}

// SetTracerProvider makes the client trace what it publishes and what its consumers handle;
// nil turns tracing off (the default). Call it before the client is used.
func (c *Client) SetTracerProvider(tp trace.TracerProvider) {
	c.tracer = nil
	if tp != nil {
		c.tracer = tp.Tracer(tracerName)
	}
}

// EnqueueTraced enqueues on work queue queue, on the shard of shard key key (Route), visible
// after delay, the text encode makes given the traceparent of the message's publish span: ""
// when tracing is off, and then the text must be what the message is without tracing. Publish
// and EnqueueCarrying put it first in their JSON; a queue whose messages are not JSON
// (agent-runs) chooses its own form.
func (c *Client) EnqueueTraced(ctx context.Context, queue, key string, delay time.Duration, encode func(ctx context.Context, traceparent string) (string, error)) error {
	physical := c.Route(queue, key)
	if c.tracer == nil {
		text, err := encode(ctx, "")
		if err != nil {
			return err
		}
		_, err = c.enqueue(ctx, physical, text, delay)
		return err
	}
	ctx, span := c.tracer.Start(ctx, queue+" publish", trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
		attribute.String("messaging.system", "azure_queues"),
		attribute.String("messaging.operation.type", "send"),
		attribute.String("messaging.destination.name", physical),
	))
	defer span.End()
	text, err := encode(ctx, traceparent(span.SpanContext()))
	var id string
	if err == nil {
		id, err = c.enqueue(ctx, physical, text, delay)
	}
	if id != "" {
		span.SetAttributes(attribute.String("messaging.message.id", id))
	}
	failed(span, err)
	return err
}

// startProcess starts the "{queue} process" span of a message received from physical queue
// physical: the child of the span that published it, or a new trace's root. Without a tracer
// it returns ctx and its (no-op) span, at no cost.
func (c *Consumer) startProcess(ctx context.Context, physical string, m *Message) (context.Context, trace.Span) {
	t := c.client.tracer
	if t == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		attribute.String("messaging.system", "azure_queues"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", physical),
		attribute.String("messaging.message.id", m.ID),
		attribute.Int64("messaging.azure_queues.message.dequeue_count", m.DequeueCount),
	)}
	if tp := messageTraceparent(m.Body); tp != "" {
		ctx = traceContext.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
	}
	if !trace.SpanContextFromContext(ctx).IsRemote() {
		opts = append(opts, trace.WithNewRoot()) // whatever span started the consumer is not this message's parent
	}
	return t.Start(ctx, c.cfg.Queue+" process", opts...)
}

// failed marks span as failed with err, when there is one.
func failed(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}

// TraceLog is l with the trace id of ctx's span (traceId), when ctx has one: every line written
// while a message is handled names the message's trace.
func TraceLog(ctx context.Context, l logrus.FieldLogger) logrus.FieldLogger {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return l.WithField("traceId", sc.TraceID().String())
	}
	return l
}

// traceparent is sc as a W3C traceparent, "" when it is not valid.
func traceparent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	carrier := propagation.MapCarrier{}
	traceContext.Inject(trace.ContextWithSpanContext(context.Background(), sc), carrier)
	return carrier["traceparent"]
}

const traceparentFirst = `{"traceparent":"`

// withTraceparent puts "traceparent": tp first in b, a JSON object the platform encoded
// (without a traceparent of its own). b is returned as it is when tp is "".
func withTraceparent(b []byte, tp string) []byte {
	if tp == "" || len(b) < 2 || b[0] != '{' {
		return b
	}
	out := make([]byte, 0, len(b)+len(traceparentFirst)+len(tp)+2)
	out = append(append(append(out, traceparentFirst...), tp...), '"')
	if rest := bytes.TrimSpace(b[1:]); len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, b[1:]...)
}

// messageTraceparent is the traceparent a message body carries, "" when none: first in its JSON
// object, as the platform writes it (found without parsing), or anywhere at the top level of an
// object another sender wrote, raw or base64 (as for events: docs/contracts.md). It is not
// checked here: the propagator ignores a malformed one.
func messageTraceparent(body []byte) string {
	if rest, ok := bytes.CutPrefix(body, []byte(traceparentFirst)); ok {
		if i := bytes.IndexByte(rest, '"'); i > 0 && i <= 128 {
			return string(rest[:i])
		}
		return ""
	}
	b := bytes.TrimSpace(body)
	if len(b) > 0 && b[0] != '{' {
		decoded, err := base64.StdEncoding.DecodeString(string(b))
		if err != nil {
			return ""
		}
		b = bytes.TrimSpace(decoded)
	}
	if len(b) == 0 || b[0] != '{' || !containsFold(b, "traceparent") {
		return ""
	}
	var v struct {
		Traceparent any `json:"traceparent"` // any: a number or an object is ignored, not an error
	}
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	s, _ := v.Traceparent.(string)
	return s
}

// containsFold reports whether b contains word (lowercase ASCII) in any case, as encoding/json
// matches field names.
func containsFold(b []byte, word string) bool {
	for i := 0; i+len(word) <= len(b); i++ {
		if b[i]|0x20 == word[0] && bytes.EqualFold(b[i:i+len(word)], []byte(word)) {
			return true
		}
	}
	return false
}
