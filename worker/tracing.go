package worker

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/platform/platform"
)

// The router's part of a trace (queues, "Traces"): the entity-events process span names the
// event, and each concern's run on it is a child span, so that a trace shows which concern
// took the time or failed. Without a span in the context (tracing off) nothing is made.

const tracerName = "github.com/platform/platform/worker"

// traceEvent names ev on the span of the message that carries it.
func traceEvent(ctx context.Context, ev *platform.EntityEvent) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("platform.event_key", ev.Key()), attribute.Int("platform.event_type_id", ev.EventTypeID))
	}
}

// process runs concern p on ev inside a span of its own, "concern {name}".
func (r *Router) process(ctx context.Context, p PostProcessor, ev *platform.EntityEvent) error {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return p.Process(ctx, ev)
	}
	ctx, span := parent.TracerProvider().Tracer(tracerName).Start(ctx, "concern "+p.Name(),
		trace.WithAttributes(attribute.String("platform.concern", p.Name())))
	defer span.End()
	err := p.Process(ctx, ev)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}
