package api

import (
	"context"
	"net/http"
	"time"
)

func (*server) serveHealth(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, http.StatusOK, map[string]string{"status": "ok"})
}

// serveMetrics answers the worker's Prometheus metrics: counts and durations, no keys or
// addresses, but a stranger should not read a tenant's volume; a scraper without a token uses
// the metrics listener (PLATFORM_METRICS_ADDR) instead.
func (d *server) serveMetrics(rw http.ResponseWriter, r *http.Request) {
	if d.Metrics == nil {
		writeError(rw, http.StatusNotFound, "metrics are not served here")
		return
	}
	d.Metrics.ServeHTTP(rw, r)
}

func (d *server) serveReady(rw http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := d.Ready(ctx); err != nil {
		id := rw.Header().Get(requestIDHeader)
		d.Log.WithError(err).WithField("requestId", id).Warn("not ready")
		writeJSON(rw, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "requestId": id})
		return
	}
	writeJSON(rw, http.StatusOK, map[string]string{"status": "ready"})
}
