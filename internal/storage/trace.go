package storage

import (
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracePolicy makes each request a client span, named by its kind (classify: "queue.enqueue",
// "table.write", "blob", …), the child of the span in the request's context: a message's
// handling shows the storage calls it made, retries each their own. A request whose context has
// no span (tracing off, or a background loop) makes none, at the cost of one context lookup.
// (azcore's own tracing provider is not used: of the three SDKs only aztables makes spans.)
// The span names the host, never the URL: a SAS or a blob name is no trace's business.
type tracePolicy struct{ service Service }

const tracerName = "github.com/platform/platform/internal/storage"

func (p tracePolicy) Do(req *policy.Request) (*http.Response, error) {
	parent := trace.SpanFromContext(req.Raw().Context())
	if !parent.SpanContext().IsValid() {
		return req.Next()
	}
	kind := classify(p.service, req.Raw())
	ctx, span := parent.TracerProvider().Tracer(tracerName).Start(req.Raw().Context(), kind, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("az.namespace", "Microsoft.Storage"), attribute.String("http.request.method", req.Raw().Method),
			attribute.String("server.address", req.Raw().URL.Host)))
	defer span.End()
	resp, err := req.WithContext(ctx).Next()
	switch {
	case err != nil:
		span.SetStatus(codes.Error, "no answer") // the error names the URL: left to the caller's span
	case resp.StatusCode >= 400:
		span.SetStatus(codes.Error, resp.Status)
	}
	if resp != nil {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	}
	return resp, err
}
