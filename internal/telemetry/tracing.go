package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Tracing is a process's OpenTelemetry traces, configured by the standard OTEL_* variables: an
// OTLP exporter behind a batch span processor when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (over HTTP with protobuf, or gRPC when
// OTEL_EXPORTER_OTLP_PROTOCOL or _TRACES_PROTOCOL says grpc), and off otherwise (or with
// OTEL_SDK_DISABLED=true). The exporter reads the rest itself (headers, timeout, compression,
// certificates, insecure).
//
// Off, Provider is nil: the worker and the queue client make no span and write no traceparent,
// so tracing costs nothing (the concerns' spans start from the span in their context: without
// one, the no-op's).
type Tracing struct {
	// Provider is the tracer provider to give worker.Config.TracerProvider and
	// queues.Client.SetTracerProvider; nil when tracing is off.
	Provider trace.TracerProvider
	sdk      *sdktrace.TracerProvider
}

// TracingOptions describe the process in its traces' resource.
type TracingOptions struct {
	// Version is service.version (the binary's version).
	Version string
	// Role is platform.role: the worker's roles, or the command ("publish", "notify").
	Role string
	// Getenv reads the environment. Default: os.Getenv. (The exporter itself always reads the
	// process's environment.)
	Getenv func(string) string
}

// Tracing variables (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/).
const (
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envDisabled       = "OTEL_SDK_DISABLED"
	envTracesExporter = "OTEL_TRACES_EXPORTER"
)

// NewTracing builds the process's tracing from the environment. It refuses, with a one-line
// reason, what it cannot honour rather than export elsewhere than asked: protocol http/json, an
// exporter other than otlp or none.
func NewTracing(ctx context.Context, o TracingOptions) (*Tracing, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if strings.EqualFold(strings.TrimSpace(getenv(envDisabled)), "true") {
		return &Tracing{}, nil
	}
	switch exp := strings.TrimSpace(getenv(envTracesExporter)); exp {
	case "", "otlp":
	case "none":
		return &Tracing{}, nil
	default:
		return nil, fmt.Errorf("%s=%s: only otlp (OTLP over HTTP) or none is supported", envTracesExporter, exp)
	}
	if getenv(envEndpoint) == "" && getenv(envTracesEndpoint) == "" {
		return &Tracing{}, nil
	}
	protocol := "http/protobuf" // the specification's default
	for _, name := range []string{envTracesProtocol, envProtocol} {
		if p := strings.TrimSpace(getenv(name)); p != "" {
			if p != "http/protobuf" && p != "grpc" {
				return nil, fmt.Errorf("%s=%s: want http/protobuf or grpc (http/json is not supported)", name, p)
			}
			protocol = p
			break // the traces variable, when set, overrides the general one
		}
	}
	var (
		exporter sdktrace.SpanExporter
		err      error
	)
	if protocol == "grpc" {
		// What Azure Container Apps' managed OpenTelemetry agent asks for (it sets the
		// endpoint and OTEL_EXPORTER_OTLP_PROTOCOL=grpc in every app).
		exporter, err = otlptracegrpc.New(ctx)
	} else {
		exporter, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter (%s): %w", protocol, err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", "platform")}
	if o.Version != "" {
		attrs = append(attrs, attribute.String("service.version", o.Version))
	}
	if o.Role != "" {
		attrs = append(attrs, attribute.String("platform.role", o.Role))
	}
	// Later options win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the defaults.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithHost(), resource.WithAttributes(attrs...), resource.WithFromEnv())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	return &Tracing{Provider: sdk, sdk: sdk}, nil
}

// Enabled reports whether spans are exported.
func (t *Tracing) Enabled() bool { return t != nil && t.sdk != nil }

// Shutdown exports the spans still buffered and stops the exporter; ctx bounds it (give it what
// is left of the stop's time). Safe when tracing is off, and twice.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: export the last spans: %w", err)
	}
	return nil
}

// Flusher is the lifecycle component a host adds first (so that it stops last): its Stop
// exports the spans its provider has buffered, once every span of the work has ended, for at
// most FlushTimeout of the stop's deadline. It does not shut the provider down: whoever made
// the provider owns it. A provider without ForceFlush (nil, the no-op) makes Stop a no-op.
//
// A flush that fails (the collector is down or slow) is logged and is not the stop's failure:
// an observability outage must not turn every clean stop into an exit 1.
type Flusher struct {
	Provider trace.TracerProvider
	Log      interface{ Warn(args ...any) } // a logrus.FieldLogger; nil: not logged
}

// FlushTimeout bounds the last flush of a stop.
const FlushTimeout = 2 * time.Second

// Start implements lifecycle.Component: nothing to start.
func (Flusher) Start(context.Context) error { return nil }

// Stop exports what is buffered.
func (f Flusher) Stop(ctx context.Context) error {
	p, ok := f.Provider.(interface{ ForceFlush(context.Context) error })
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, FlushTimeout)
	defer cancel()
	if err := p.ForceFlush(ctx); err != nil && f.Log != nil {
		f.Log.Warn(fmt.Sprintf("tracing: the last spans were not exported (%v); the stop goes on", err))
	}
	return nil
}
