package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform/auth"
)

// guard serves rt to the principals its policy lets in. A request without valid credentials
// answers 401 with a WWW-Authenticate challenge, one whose principal lacks the route's role
// (or holds no business unit at all) 403. A mutating request leaves one audit line, whatever
// its outcome.
func (d *server) guard(rt Route) http.Handler {
	serve := func(rw http.ResponseWriter, r *http.Request) { rt.serve(d, rw, r) }
	if rt.Policy.Public {
		return http.HandlerFunc(serve)
	}
	role := rt.Policy.Role
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec := &auditRecord{route: rt.Pattern, role: role}
		sw := &statusWriter{ResponseWriter: rw}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			defer func() {
				if p := recover(); p != nil {
					sw.status = http.StatusInternalServerError // withRequestID answers it, after this line
					d.audit(sw, rec)
					panic(p)
				}
				d.audit(sw, rec)
			}()
		}
		p, err := d.Auth.Authenticate(r.Context(), r.Header.Get("Authorization"))
		switch {
		case errors.Is(err, auth.ErrUnavailable):
			d.serverError(sw, "authenticate", err, http.StatusServiceUnavailable, "authentication unavailable")
			return
		case err != nil:
			rec.reason = err.Error()
			d.refuse(sw, r, rec, http.StatusUnauthorized, auth.Reason(err))
			return
		}
		rec.principal = p.ID
		switch {
		case p == auth.Anonymous && !fromThisMachine(r):
			d.refuse(sw, r, rec, http.StatusForbidden, "a request without credentials is served only to tools on this machine, not to a web page of another site: send credentials")
			return
		case !p.Has(role):
			d.refuse(sw, r, rec, http.StatusForbidden, fmt.Sprintf("this route needs role %s", role))
			return
		case !p.AllUnits() && len(p.Units.IDs) == 0:
			d.refuse(sw, r, rec, http.StatusForbidden, "no business unit granted: a principal needs a list of units, or * (or the admin role) to see them all")
			return
		}
		ctx := auth.WithPrincipal(context.WithValue(r.Context(), auditKey{}, rec), p)
		serve(sw, r.WithContext(ctx))
	})
}

// crossOrigin refuses a browser's unsafe request (POST) made by a page of another origin.
var crossOrigin = http.NewCrossOriginProtection()

// fromThisMachine reports whether a request without credentials (authentication off, loopback
// only) may be served: it names the server by a loopback host, and it is not a browser's
// request from a page of another site. A listener on loopback is still reached by any web
// page the developer opens: by a cross-site POST that needs no preflight, or by DNS
// rebinding (the page's own name resolved to 127.0.0.1, so its Host is that name).
func fromThisMachine(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = strings.Trim(r.Host, "[]") // no port: "localhost", "[::1]"
	}
	return auth.IsLoopbackHost(host) && crossOrigin.Check(r) == nil
}

// refuse answers a refused request; the detail (which check failed, and why) goes to the log
// line with the request id.
func (d *server) refuse(rw http.ResponseWriter, r *http.Request, rec *auditRecord, status int, msg string) {
	id := rw.Header().Get(requestIDHeader)
	if status == http.StatusUnauthorized {
		rw.Header().Set("WWW-Authenticate", `Bearer realm="platform"`)
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		d.Log.WithFields(logrus.Fields{"requestId": id, "route": rec.route, "principal": cmp.Or(rec.principal, "unauthenticated"), "status": status,
			"reason": rec.reason}).Info("request refused")
	} else if rec.reason == "" {
		rec.reason = msg
	}
	writeJSON(rw, status, map[string]string{"error": msg, "requestId": id})
}

// auditRecord is what the audit line of a mutating request says; the handler adds the
// business unit it acted on (noteUnit), and an action the key it acted on and the reason its
// caller gave (noteAction).
type auditRecord struct {
	route     string
	role      auth.Role
	principal string
	unit      int64
	reason    string // why the request was refused
	key       string // the key (or queue) an action acted on
	why       string // the reason an action's caller gave
}

type auditKey struct{}

// noteUnit records the business unit a mutating request acts on, for its audit line.
func noteUnit(r *http.Request, unit int64) {
	if rec, ok := r.Context().Value(auditKey{}).(*auditRecord); ok {
		rec.unit = unit
	}
}

// noteAction records the key an action acts on and the reason its caller gave, for its audit
// line.
func noteAction(r *http.Request, key, why string) {
	if rec, ok := r.Context().Value(auditKey{}).(*auditRecord); ok {
		rec.key, rec.why = key, why
	}
}

// audit writes the one line a mutating request leaves: who (a key id, a token's oid or sub;
// never the credential), with which role, on which route and business unit, on which key and
// why (an action), and how it ended.
func (d *server) audit(sw *statusWriter, rec *auditRecord) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	outcome := "ok"
	switch {
	case status >= 500:
		outcome = "failed"
	case status >= 400:
		outcome = "refused"
	}
	f := logrus.Fields{"audit": true, "requestId": sw.Header().Get(requestIDHeader), "principal": cmp.Or(rec.principal, "unauthenticated"),
		"role": string(rec.role), "route": rec.route, "status": status, "outcome": outcome}
	if rec.unit != 0 {
		f["businessUnit"] = rec.unit
	}
	if rec.key != "" {
		f["key"] = rec.key
	}
	if rec.why != "" {
		f["why"] = rec.why
	}
	if rec.reason != "" && outcome != "ok" {
		f["reason"] = rec.reason
	}
	d.Log.WithFields(f).Info("audit")
}

// statusWriter remembers the status a handler answered, for the audit line; it still
// streams (Flush) and lets the handler set its own deadlines (Unwrap).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// principal is the request's principal, set by guard.
func principal(r *http.Request) *auth.Principal {
	if p := auth.FromContext(r.Context()); p != nil {
		return p
	}
	panic("api: a guarded handler ran without a principal")
}
