package testenv

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// OTLPReceiver is a stand-in for an OpenTelemetry collector's OTLP/HTTP traces endpoint: it
// accepts POST /v1/traces, counts the requests and their bytes, keeps the last one, and answers
// 200. It does not decode them.
type OTLPReceiver struct {
	// Endpoint is the value for OTEL_EXPORTER_OTLP_ENDPOINT (http://127.0.0.1:port).
	Endpoint       string
	requests, size atomic.Int64
	refused        atomic.Int64
	last           atomic.Pointer[[]byte]
}

// StartOTLPReceiver serves a receiver until t ends.
func StartOTLPReceiver(t testing.TB) *OTLPReceiver {
	r := &OTLPReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			r.refused.Add(1)
			rw.WriteHeader(http.StatusNotFound)
			return
		}
		body, _ := io.ReadAll(req.Body)
		r.requests.Add(1)
		r.size.Add(int64(len(body)))
		r.last.Store(&body)
		rw.Header().Set("Content-Type", "application/x-protobuf")
		rw.WriteHeader(http.StatusOK) // an empty ExportTraceServiceResponse: everything accepted
	}))
	t.Cleanup(srv.Close)
	r.Endpoint = srv.URL
	return r
}

// Received is how many export requests and bytes arrived, and how many requests were not an
// OTLP/HTTP traces export (another path, method or content type).
func (r *OTLPReceiver) Received() (requests, bytes, refused int64) {
	return r.requests.Load(), r.size.Load(), r.refused.Load()
}

// Last is the body of the last export request (an ExportTraceServiceRequest, protobuf), nil
// before the first.
func (r *OTLPReceiver) Last() []byte {
	if b := r.last.Load(); b != nil {
		return *b
	}
	return nil
}
