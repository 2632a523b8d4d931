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
	mux.HandleFunc("POST /v1/notification-jobs", w.serveCreateJob)
	mux.HandleFunc("POST /v1/notification-cancellations", w.serveCancel)
	mux.HandleFunc("GET /v1/trace", w.serveTrace)
	mux.HandleFunc("GET /v1/changes", w.serveChanges)
	mux.HandleFunc("POST /v1/webhooks", w.serveAddWebhook)
	mux.HandleFunc("GET /v1/webhooks", w.serveListWebhooks)
	mux.HandleFunc("POST /v1/webhooks/{id}/disable", w.serveDisableWebhook)
	return mux
}

// serveCreateJob creates a direct notification job. An Idempotency-Key header makes its key
// deterministic: the same request again returns the same job (200), not a second one.
func (w *Worker) serveCreateJob(rw http.ResponseWriter, r *http.Request) {
	var d DirectJob
	dec := json.NewDecoder(http.MaxBytesReader(rw, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		writeError(rw, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	job, created, err := w.CreateNotificationJob(r.Context(), d, r.Header.Get("Idempotency-Key"))
	switch {
	case errors.Is(err, ErrInvalidInput):
		writeError(rw, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrJobConflict):
		writeError(rw, http.StatusConflict, err.Error())
	case err != nil:
		w.log.WithError(err).Error("create notification job")
		writeError(rw, http.StatusBadGateway, "storage: "+err.Error())
	case created:
		writeJSON(rw, http.StatusCreated, map[string]string{"jobKey": job.Key, "state": string(job.State)})
	default:
		writeJSON(rw, http.StatusOK, map[string]string{"jobKey": job.Key, "state": string(job.State)})
	}
}

func (w *Worker) serveCancel(rw http.ResponseWriter, r *http.Request) {
	var body struct {
		CancellationKey string `json:"cancellationKey"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(rw, r.Body, 64<<10)).Decode(&body); err != nil || body.CancellationKey == "" {
		writeError(rw, http.StatusBadRequest, `body: want {"cancellationKey":"…"}`)
		return
	}
	if err := w.CancelNotifications(r.Context(), body.CancellationKey); err != nil {
		writeError(rw, http.StatusBadGateway, "storage: "+err.Error())
		return
	}
	writeJSON(rw, http.StatusOK, map[string]string{"cancelled": body.CancellationKey})
}

// serveAddWebhook subscribes an endpoint; the answer carries its id and its secret, which is
// never shown again.
func (w *Worker) serveAddWebhook(rw http.ResponseWriter, r *http.Request) {
	var ne NewEndpoint
	dec := json.NewDecoder(http.MaxBytesReader(rw, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ne); err != nil {
		writeError(rw, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	e, err := w.AddWebhookEndpoint(r.Context(), ne)
	switch {
	case errors.Is(err, ErrInvalidInput):
		writeError(rw, http.StatusBadRequest, err.Error())
	case err != nil:
		writeError(rw, http.StatusBadGateway, "storage: "+err.Error())
	default:
		writeJSON(rw, http.StatusCreated, map[string]any{"id": e.ID, "secret": e.Secret})
	}
}

func (w *Worker) serveListWebhooks(rw http.ResponseWriter, r *http.Request) {
	all, err := w.WebhookEndpoints(r.Context())
	if err != nil {
		writeError(rw, http.StatusBadGateway, "storage: "+err.Error())
		return
	}
	if all == nil {
		all = []*tables.Endpoint{}
	}
	writeJSON(rw, http.StatusOK, all)
}

func (w *Worker) serveDisableWebhook(rw http.ResponseWriter, r *http.Request) {
	err := w.DisableWebhookEndpoint(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, ErrInvalidInput):
		writeError(rw, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(rw, http.StatusBadGateway, "storage: "+err.Error())
	default:
		writeJSON(rw, http.StatusOK, map[string]string{"disabled": r.PathValue("id")})
	}
}

func (w *Worker) serveTrace(rw http.ResponseWriter, r *http.Request) {
	t, err := w.Trace(r.Context(), r.URL.Query().Get("key"))
	switch {
	case errors.Is(err, ErrInvalidInput):
		writeError(rw, http.StatusBadRequest, err.Error())
	case err != nil:
		writeError(rw, http.StatusBadGateway, "storage: "+err.Error())
	default:
		writeJSON(rw, http.StatusOK, t)
	}
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
