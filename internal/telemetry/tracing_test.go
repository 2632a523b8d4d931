package telemetry_test

import (
	"cmp"
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/platform/platform/internal/telemetry"
	"github.com/platform/platform/internal/testenv"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// Off is the default, and what OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none ask for: no
// provider at all. A protocol (http/json) or exporter it cannot honour is refused, naming the
// variable, rather than exported somewhere else than asked.
func TestTracingIsOffUnlessAnEndpointIsSetAndRefusesWhatItCannotHonour(t *testing.T) {
	ctx := context.Background()
	for name, vars := range map[string]map[string]string{
		"nothing set":   {},
		"SDK disabled":  {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
		"exporter none": {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
	} {
		tr, err := telemetry.NewTracing(ctx, telemetry.TracingOptions{Getenv: env(vars)})
		if err != nil || tr.Enabled() || tr.Provider != nil {
			t.Errorf("%s: enabled %v, provider %v, err %v; want off", name, tr.Enabled(), tr.Provider, err)
		}
		if err := tr.Shutdown(ctx); err != nil {
			t.Errorf("%s: shutdown: %v", name, err)
		}
	}
	for name, c := range map[string]struct {
		vars map[string]string
		want string
	}{
		"http/json":             {map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL=http/json"},
		"http/json, for traces": {map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json"},
		"another exporter":      {map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin"},
	} {
		_, err := telemetry.NewTracing(ctx, telemetry.TracingOptions{Getenv: env(c.vars)})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err %v, want one line naming %q", name, err, c.want)
		}
	}
}

// With an endpoint, spans go to it over OTLP/HTTP (protobuf), and Shutdown exports what is
// buffered, under the resource that names the process: service.name platform unless
// OTEL_SERVICE_NAME says otherwise, service.version, platform.role. (The exporter reads the
// process's environment itself.)
func TestTracingExportsToTheOTLPEndpointOnShutdown(t *testing.T) {
	for _, serviceName := range []string{"", "platform-eu"} {
		recv := testenv.StartOTLPReceiver(t)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.Endpoint)
		t.Setenv("OTEL_SERVICE_NAME", serviceName)
		ctx := context.Background()
		tr, err := telemetry.NewTracing(ctx, telemetry.TracingOptions{Version: "v1.2.3", Role: "events"})
		if err != nil || !tr.Enabled() {
			t.Fatalf("enabled %v, err %v", tr.Enabled(), err)
		}
		_, span := tr.Provider.Tracer("test").Start(ctx, "work")
		span.End()
		if n, _, _ := recv.Received(); n != 0 {
			t.Fatalf("%d exports before shutdown: the batcher should hold the span", n)
		}
		if err := tr.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if n, size, refused := recv.Received(); n != 1 || size == 0 || refused != 0 {
			t.Fatalf("receiver got %d exports (%d bytes), refused %d; want 1", n, size, refused)
		}
		// TracesData is ExportTraceServiceRequest's wire form (resource_spans = 1).
		var got tracepb.TracesData
		if err := proto.Unmarshal(recv.Last(), &got); err != nil || len(got.ResourceSpans) != 1 {
			t.Fatalf("export request: %v, %d resource spans", err, len(got.ResourceSpans))
		}
		res := map[string]string{}
		for _, kv := range got.ResourceSpans[0].Resource.Attributes {
			res[kv.Key] = kv.Value.GetStringValue()
		}
		want := cmp.Or(serviceName, "platform")
		if res["service.name"] != want || res["service.version"] != "v1.2.3" || res["platform.role"] != "events" {
			t.Errorf("resource %v: want service.name %s, service.version v1.2.3, platform.role events", res, want)
		}
		ss := got.ResourceSpans[0].ScopeSpans
		if len(ss) != 1 || len(ss[0].Spans) != 1 || ss[0].Spans[0].Name != "work" {
			t.Errorf("exported %v, want the one span", ss)
		}
	}
}

// traceService is an OTLP/gRPC collector that counts export requests and their spans.
type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	requests, spans atomic.Int64
}

func (s *traceService) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.requests.Add(1)
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			s.spans.Add(int64(len(ss.Spans)))
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// OTEL_EXPORTER_OTLP_PROTOCOL=grpc (what Azure Container Apps' managed agent sets) exports over
// gRPC to the endpoint.
func TestTracingExportsOverGRPCWhenTheProtocolSaysSo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, svc := grpc.NewServer(), &traceService{}
	coltracepb.RegisterTraceServiceServer(srv, svc)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	ctx := context.Background()
	tr, err := telemetry.NewTracing(ctx, telemetry.TracingOptions{Role: "events"})
	if err != nil || !tr.Enabled() {
		t.Fatalf("enabled %v, err %v", tr.Enabled(), err)
	}
	_, span := tr.Provider.Tracer("test").Start(ctx, "work")
	span.End()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n, spans := svc.requests.Load(), svc.spans.Load(); n != 1 || spans != 1 {
		t.Fatalf("collector got %d exports with %d spans, want 1 with 1", n, spans)
	}
}
