package worker_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/platform/platform/auth"
	"github.com/platform/platform/worker"
)

// The metrics listener answers a scraper without credentials, whatever the API asks for; the
// API's own /metrics needs the support role (TestEveryRouteRefusesWhatItShouldAndServesWhatItShould).
func TestTheMetricsListenerServesWithoutCredentials(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Auth: auth.Config{Mode: auth.ModeKeys}})
	resp, err := http.Get("http://" + w.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "go_goroutines") {
		t.Fatalf("GET /metrics on the metrics listener: %d\n%.300s", resp.StatusCode, body)
	}
	if resp, err = http.Get("http://" + w.HTTPAddr() + "/metrics"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /metrics on the API without a credential: %d, want 401", resp.StatusCode)
	}
}
