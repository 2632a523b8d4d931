//go:build bench

package bench

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/platform/platform/internal/testenv"
)

var flagTracing = flag.Bool("tracing", false, "run the worker with tracing on: OTLP/HTTP to a local receiver the bench starts (it counts and answers 200), "+
	"and publish each event with a traceparent, as a traced service would; compare the worker's CPU with a run without")

// tracingEnv is what the worker's environment gets with -tracing: the endpoint of a receiver
// of its own, whose totals are printed when the worker's test ends.
func tracingEnv(t *testing.T) []string {
	if !*flagTracing {
		return nil
	}
	recv := testenv.StartOTLPReceiver(t)
	t.Cleanup(func() {
		n, size, refused := recv.Received()
		line := fmt.Sprintf("bench tracing %s: %d OTLP exports, %.0f KB, %d refused", t.Name(), n, float64(size)/1024, refused)
		t.Log(line)
		fmt.Println(line)
	})
	return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + recv.Endpoint, "OTEL_SERVICE_NAME=platform-bench"}
}

// traced is an event body as a traced publisher sends it with -tracing: a traceparent of a
// trace of its own first (what queues.Client.Publish writes); as it is otherwise.
func traced(body string) string {
	if !*flagTracing || !strings.HasPrefix(body, "{") {
		return body
	}
	var id [24]byte
	_, _ = rand.Read(id[:])
	return `{"traceparent":"00-` + hex.EncodeToString(id[:16]) + "-" + hex.EncodeToString(id[16:]) + `-01",` + body[1:]
}
