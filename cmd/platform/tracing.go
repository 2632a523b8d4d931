package main

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/platform/platform/internal/telemetry"
)

// startTracing builds the process's traces from the OTEL_* variables (telemetry.NewTracing;
// off when no OTLP endpoint is set). A setting it cannot honour is bad usage (exit 2). The
// returned stop exports the last spans (within ctx, the stop's own deadline); call it once the
// command's work has ended. log receives export failures; nil: standard error (the SDK's).
func startTracing(ctx context.Context, role string, log logrus.FieldLogger) (*telemetry.Tracing, func(context.Context), error) {
	t, err := telemetry.NewTracing(ctx, telemetry.TracingOptions{Version: version, Role: role})
	if err != nil {
		return nil, nil, usageError{err}
	}
	stop := func(ctx context.Context) {
		if err := t.Shutdown(ctx); err != nil && log != nil {
			log.WithError(err).Warn("tracing: the last spans were not exported")
		}
	}
	if !t.Enabled() {
		return t, stop, nil
	}
	otel.SetTextMapPropagator(propagation.TraceContext{})
	if log != nil {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.WithError(err).Warn("tracing: exporting spans failed (the work goes on; its spans are dropped)")
		}))
	}
	return t, stop, nil
}

// stopTracingSoon is a stop for commands that have no stop deadline of their own.
func stopTracingSoon(stop func(context.Context)) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stop(ctx)
}
