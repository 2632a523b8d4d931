package api

import (
	"context"
	"net/http"
	"time"
)

func (*server) serveHealth(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, http.StatusOK, map[string]string{"status": "ok"})
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
