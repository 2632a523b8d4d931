package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/platform/platform/auth"
)

// A route added without a policy, or with two, stops the API from being built: it can never
// be served unprotected by mistake.
func TestARouteWithoutAPolicyIsRefused(t *testing.T) {
	for _, p := range []Policy{{}, {Role: "superuser"}, {Public: true, Role: auth.Support}} {
		saved := routes
		routes = append(routes[:len(routes):len(routes)], Route{Pattern: "GET /v1/new", Policy: p, serve: (*server).serveHealth})
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(string), "GET /v1/new") {
					t.Errorf("policy %+v: Handler did not refuse the route (%v)", p, r)
				}
			}()
			Handler(Deps{Log: logrus.New()})
		}()
		routes = saved
	}
	for _, rt := range Routes() {
		if err := rt.Policy.Check(); err != nil {
			t.Errorf("route %s: %v", rt.Pattern, err)
		}
	}
}

// A mutating request whose handler panics is audited as failed (500), not as the 200 nothing
// was written yet.
func TestAPanicIsAuditedAsFailed(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	a, err := auth.New(auth.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{Deps: Deps{Log: log, Auth: a}}
	h := s.withRequestID(s.guard(Route{Pattern: "POST /v1/boom", Policy: Needs(auth.Support),
		serve: func(*server, http.ResponseWriter, *http.Request) { panic("boom") }}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1/v1/boom", nil))
	var audit *logrus.Entry
	for _, e := range hook.AllEntries() {
		if e.Message == "audit" {
			audit = e
		}
	}
	if rec.Code != http.StatusInternalServerError || audit == nil || audit.Data["outcome"] != "failed" || audit.Data["status"] != 500 {
		t.Fatalf("%d, audit %+v: want 500 and an audit line with outcome failed", rec.Code, audit)
	}
}
