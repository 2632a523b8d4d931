// Package api is the worker's HTTP API, one file per resource: health, history, notification
// jobs and cancellations, traces, timelines with their effects, what needs attention and
// support's actions on it, webhook endpoints, automation rules, agent runs and the change
// stream. It decodes and
// checks requests, calls the concern that owns the resource, and maps errors to statuses:
// platform.ErrInvalidInput is 400 (404 where it names a resource that does not exist), a
// storage failure 502. Its only state is the limits it keeps (limits.go).
//
// Every route declares who may call it (routes.go): anyone, or a principal holding one role
// (package auth). guard.go authenticates and authorizes before a handler runs, and writes the
// audit line of every mutating request. A principal scoped to business units sees only
// those: what belongs to another answers 404, as if it did not exist, and what it would
// create there 403.
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

	"github.com/platform/platform/auth"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/automations"
	"github.com/platform/platform/worker/delivery"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/realtime"
	"github.com/platform/platform/worker/runs"
	"github.com/platform/platform/worker/webhooks"
)

// Deps are what the API serves from, wired by the host.
type Deps struct {
	Log logrus.FieldLogger
	// Ready reports whether the worker runs and what it depends on answers (GET /readyz).
	Ready   func(ctx context.Context) error
	History *tables.History
	Blobs   *blobs.Client
	Notify  *notify.Service
	// Distributor sends and settles outgoing messages: support's actions on them.
	Distributor *delivery.Distributor
	// Jobs, Messages and Queues are read for what needs attention (GET /v1/attention), and
	// Queues' poison redriven.
	Jobs     *tables.Jobs
	Messages *tables.Messages
	Queues   *queues.Client
	Webhooks *webhooks.Service
	Replay   *webhooks.Replayer
	Changes  *realtime.Hub
	// Automations are the automation rules (/v1/automations).
	Automations *automations.Service
	Runs        *runs.Service
	// Auth says who a request is. Required.
	Auth *auth.Authenticator
	// PageKey is the key, shared by every replica, that seals the continuation tokens the API
	// hands out (KeySize random bytes: blobs.Client.Key).
	PageKey func(ctx context.Context) ([]byte, error)
	// Limits bound job creation and change streams.
	Limits Limits
	// Metrics serves the worker's Prometheus metrics (GET /metrics, role support). nil: 404.
	Metrics http.Handler
	// ProbesOnly serves the public routes alone (/healthz, /readyz): a worker process that
	// does not run the API role still answers its platform's probes.
	ProbesOnly bool
}

// server is the API's handlers over Deps, with the limits it keeps.
type server struct {
	Deps
	jobs    *rateLimits
	streams *streamSlots
	pages   *pageTokens
}

// Handler serves the API: the routes of Routes, each behind its policy. It panics on a route
// that declares no policy (a programming error, caught by the tests).
func Handler(d Deps) http.Handler {
	d.Limits = d.Limits.withDefaults()
	s := &server{Deps: d, jobs: newRateLimits(d.Limits.JobsPerSecond),
		streams: newStreamSlots(d.Limits.Streams, d.Limits.StreamsPerPrincipal), pages: &pageTokens{key: d.PageKey}}
	mux := http.NewServeMux()
	for _, rt := range routes {
		if err := rt.Policy.Check(); err != nil {
			panic(fmt.Sprintf("api: route %s: %v", rt.Pattern, err))
		}
		if d.ProbesOnly && !rt.Policy.Public {
			continue
		}
		mux.Handle(rt.Pattern, s.guard(rt))
	}
	return s.withRequestID(mux)
}

// withRequestID gives each request an id, in the X-Request-Id response header (where the error
// helpers find it), and turns a handler's panic into a logged 500 instead of a dropped connection.
func (d *server) withRequestID(next http.Handler) http.Handler {
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

// forbidUnit answers 403 for a request that would act in a business unit its principal does
// not hold. It names only the unit the caller gave: whether the unit exists is not said.
func forbidUnit(rw http.ResponseWriter, unit int64) {
	writeError(rw, http.StatusForbidden, fmt.Sprintf("businessUnitId %d: not one of this principal's business units", unit))
}

func writeError(rw http.ResponseWriter, status int, msg string) {
	writeJSON(rw, status, map[string]string{"error": msg})
}

// storageError answers 502 for a failure of storage behind the API, and logs it.
func (d *server) storageError(rw http.ResponseWriter, what string, err error) {
	d.serverError(rw, what, err, http.StatusBadGateway, "storage unavailable")
}

// serverError logs err with the request's id and answers status with only msg and that id: what
// went wrong inside is for the operator, who finds it in the log by the id.
func (d *server) serverError(rw http.ResponseWriter, what string, err error, status int, msg string) {
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
