package delivery

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

const tracerName = "github.com/platform/platform/worker/delivery"

// startSend starts the span of one send attempt to channel's provider, "send {channel}" (kind
// client), as a child of the distributor message's span: what the channel does (an SMTP
// session, a webhook POST that carries its traceparent) is inside it. Without a span in ctx
// (tracing off) it makes none.
func startSend(ctx context.Context, channel string, attempt int) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx, parent
	}
	return parent.TracerProvider().Tracer(tracerName).Start(ctx, "send "+channel, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("platform.channel", channel), attribute.Int("platform.attempt", attempt)))
}

// endSend ends a send's span with its outcome.
func endSend(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
