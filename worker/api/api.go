// Package api is the worker's HTTP API, one file per resource: health, history, notification
// jobs and cancellations, traces, webhook endpoints and the change stream. It decodes and
// checks requests, calls the concern that owns the resource, and maps errors to statuses:
// platform.ErrInvalidInput is 400 (404 where it names a resource that does not exist), a
// storage failure 502. It holds no state of its own.
package api

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform/blobs"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/realtime"
	"github.com/platform/platform/worker/webhooks"
)

// Deps are what the API serves from, wired by the host.
type Deps struct {
	Log logrus.FieldLogger
	// Ready reports whether the worker runs and what it depends on answers (GET /readyz).
	Ready    func(ctx context.Context) error
	History  *tables.History
	Blobs    *blobs.Client
	Notify   *notify.Service
	Webhooks *webhooks.Service
	Changes  *realtime.Hub
}

// Handler serves the API:
//
//	GET  /healthz                                  the process is alive
//	GET  /readyz                                   the worker runs and storage answers
//	GET  /v1/history/{entityTypeId}/{identity}     a timeline page, newest first (?limit=&after=)
//	POST /v1/notification-jobs                     a direct notification job
//	POST /v1/notification-cancellations            cancel by cancellation key
//	GET  /v1/trace?key=K                           why did this (not) send
//	POST /v1/webhooks, GET /v1/webhooks, POST /v1/webhooks/{id}/disable
//	GET  /v1/changes                               the change stream (Server-Sent Events)
func Handler(d Deps) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", serveHealth)
	mux.HandleFunc("GET /readyz", d.serveReady)
	mux.HandleFunc("GET /v1/history/{entityTypeId}/{identity}", d.serveHistory)
	mux.HandleFunc("POST /v1/notification-jobs", d.serveCreateJob)
	mux.HandleFunc("POST /v1/notification-cancellations", d.serveCancel)
	mux.HandleFunc("GET /v1/trace", d.serveTrace)
	mux.HandleFunc("GET /v1/changes", d.serveChanges)
	mux.HandleFunc("POST /v1/webhooks", d.serveAddWebhook)
	mux.HandleFunc("GET /v1/webhooks", d.serveListWebhooks)
	mux.HandleFunc("POST /v1/webhooks/{id}/disable", d.serveDisableWebhook)
	return mux
}

// decode reads a JSON body of at most limit bytes into v, refusing unknown fields (a typo in a
// field name is an error, not a silent default); on failure it answers 400 and reports false.
func decode(rw http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(rw, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(rw, http.StatusBadRequest, "body: "+err.Error())
		return false
	}
	return true
}

func writeError(rw http.ResponseWriter, status int, msg string) {
	writeJSON(rw, status, map[string]string{"error": msg})
}

// storageError answers 502 for a failure of storage behind the API, and logs it.
func (d Deps) storageError(rw http.ResponseWriter, what string, err error) {
	d.Log.WithError(err).Error(what)
	writeError(rw, http.StatusBadGateway, "storage: "+err.Error())
}

func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	enc := json.NewEncoder(rw)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
