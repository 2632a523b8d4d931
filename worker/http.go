package worker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// Handler serves the worker's HTTP API:
//
//	GET /healthz                                   the process is alive
//	GET /readyz                                    the worker runs and storage answers
//	GET /v1/history/{entityTypeId}/{identity}      a timeline page, newest first (?limit=&after=)
func (w *Worker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		writeJSON(rw, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := w.Ready(ctx); err != nil {
			writeJSON(rw, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
			return
		}
		writeJSON(rw, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("GET /v1/history/{entityTypeId}/{identity}", w.serveHistory)
	return mux
}

// HistoryPage is the JSON body of GET /v1/history/...: Next, when set, is the after= of the
// next page.
type HistoryPage struct {
	Items []platform.HistoryRecord `json:"items"`
	Next  string                   `json:"next,omitempty"`
}

func (w *Worker) serveHistory(rw http.ResponseWriter, r *http.Request) {
	entityTypeID, err := strconv.Atoi(r.PathValue("entityTypeId"))
	if err != nil || entityTypeID <= 0 {
		writeError(rw, http.StatusBadRequest, "entityTypeId: want a positive integer")
		return
	}
	identity, err := platform.ParseIdentity(r.PathValue("identity"))
	if err != nil {
		writeError(rw, http.StatusBadRequest, err.Error())
		return
	}
	opts := &tables.TimelineOptions{After: r.URL.Query().Get("after")}
	if s := r.URL.Query().Get("limit"); s != "" {
		if opts.Limit, err = strconv.Atoi(s); err != nil || opts.Limit < 1 || opts.Limit > 1000 {
			writeError(rw, http.StatusBadRequest, "limit: want 1-1000")
			return
		}
	}
	rows, next, err := Timeline(r.Context(), w.history, w.Blobs(), entityTypeID, identity, opts)
	switch {
	case errors.Is(err, tables.ErrInvalidToken):
		writeError(rw, http.StatusBadRequest, "after: "+err.Error())
		return
	case err != nil:
		w.log.WithError(err).Error("read timeline")
		writeError(rw, http.StatusBadGateway, "storage: "+err.Error())
		return
	}
	if rows == nil {
		rows = []platform.HistoryRecord{}
	}
	writeJSON(rw, http.StatusOK, HistoryPage{Items: rows, Next: next})
}

func writeError(rw http.ResponseWriter, status int, msg string) {
	writeJSON(rw, status, map[string]string{"error": msg})
}

func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	enc := json.NewEncoder(rw)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
