package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// failingExporter is a collector that refuses every export.
type failingExporter struct{}

func (failingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	return errors.New("collector unavailable")
}
func (failingExporter) Shutdown(context.Context) error { return nil }

type warnings []string

func (w *warnings) Warn(args ...any) { *w = append(*w, fmt.Sprint(args...)) }

// A collector that is down does not make the stop fail: the flush is logged and bounded.
func TestAFailedFlushIsLoggedNotTheStopsFailure(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(failingExporter{}))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	_, span := tp.Tracer("test").Start(context.Background(), "work")
	span.End()
	var logged warnings
	began := time.Now()
	if err := (Flusher{Provider: tp, Log: &logged}).Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v, want nil (a telemetry outage is not the worker's failure)", err)
	}
	if took := time.Since(began); took > FlushTimeout+time.Second {
		t.Fatalf("the flush took %s, want at most %s", took, FlushTimeout)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "collector unavailable") {
		t.Fatalf("logged %q, want the export's failure once", logged)
	}
}
