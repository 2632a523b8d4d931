// Package api is the worker's HTTP API, one file per resource: health, history, notification
// jobs and cancellations, traces, webhook endpoints and the change stream. It decodes and
// checks requests, calls the concern that owns the resource, and maps errors to statuses:
// platform.ErrInvalidInput is 400 (404 where it names a resource that does not exist), a
// storage failure 502. It holds no state of its own.
//
// Every response carries an X-Request-Id. A 5xx answer says only what failed and that id: the
// detail (a storage error names the account, method and path) goes to the log line with the
// same id, never to the client. A handler that panics answers 500 the same way.
package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/oklog/ulid/v2"
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
//	GET  /v1/trace?key=K[&showBody=true]           why did this (not) send (bodies only when asked)
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
	return d.withRequestID(mux)
}

// withRequestID gives each request an id, in the X-Request-Id response header (where the error
// helpers find it), and turns a handler's panic into a logged 500 instead of a dropped connection.
func (d Deps) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set(requestIDHeader, ulid.Make().String())
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				d.serverError(rw, "handler panicked", fmt.Errorf("%s %s: panic: %v\n%s", r.Method, r.URL.Path, p, debug.Stack()),
					http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(rw, r)
	})
}

const requestIDHeader = "X-Request-Id"

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
	d.serverError(rw, what, err, http.StatusBadGateway, "storage unavailable")
}

// serverError logs err with the request's id and answers status with only msg and that id: what
// went wrong inside is for the operator, who finds it in the log by the id.
func (d Deps) serverError(rw http.ResponseWriter, what string, err error, status int, msg string) {
	id := rw.Header().Get(requestIDHeader)
	d.Log.WithError(err).WithField("requestId", id).Error(what)
	writeJSON(rw, status, map[string]string{"error": msg + " (" + what + ")", "requestId": id})
}

func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	enc := json.NewEncoder(rw)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
