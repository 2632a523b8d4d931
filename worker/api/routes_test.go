package api

import (
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

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
