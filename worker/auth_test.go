package worker_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/api"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/runs"
	"github.com/platform/platform/worker/webhooks"
)

const audience = "api://platform-test"

// call sends one request to the worker's API and returns its status and body.
func call(t *testing.T, method, url, authorization, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return resp.StatusCode, "(stream)" // a change stream: its status is the answer
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// routeCase is how the route × credential test calls one route, and what it expects of a
// principal holding the route's role in the right business unit (1) and in another (2).
type routeCase struct {
	method, path, body string
	ok, otherUnit      int
}

// Every route × every credential, against a real worker, a real OIDC issuer over HTTP and
// real signed tokens. The cases come from api.Routes(): a route added without a case, or
// without a policy, fails here.
func TestEveryRouteRefusesWhatItShouldAndServesWhatItShould(t *testing.T) {
	iss := testenv.StartIssuer(t)
	var logs syncBuffer
	log := logrus.New()
	log.SetOutput(&logs)
	log.SetFormatter(&logrus.JSONFormatter{})
	released := make(chan struct{})
	agents := map[string]runs.Agent{
		"blocks": runs.AgentFunc(func(ctx context.Context, _ *runs.Run) (json.RawMessage, error) {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-released:
				return nil, nil
			}
		}),
		"quick": runs.AgentFunc(func(context.Context, *runs.Run) (json.RawMessage, error) { return json.RawMessage(`"done"`), nil }),
	}
	ns := testenv.Namespace(t)
	w := newWorker(t, worker.Config{Namespace: ns, HTTPAddr: "127.0.0.1:0", Logger: log, WebhookAllowlist: []string{"127.0.0.1"}, Agents: agents,
		Auth: auth.Config{Issuer: iss.URL, Audience: audience, KeysRefresh: time.Millisecond}})
	t.Cleanup(func() { close(released) }) // before the worker stops
	base := "http://" + w.HTTPAddr()
	ctx := context.Background()

	// What the routes read, all in business unit 1.
	send(t, w, changeEvent(1, 501, "2026-11-22T10:00:00Z"))
	drain(t, w)
	job, _, err := w.Notify().CreateJob(ctx, notify.DirectJob{NotificationEventTypeID: 202, BusinessUnitID: 1,
		EventData: json.RawMessage(`{"resetUrl":"https://example.com/r/1"}`)}, "trace-me")
	if err != nil {
		t.Fatal(err)
	}
	ep, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: "http://127.0.0.1:9/hook", BusinessUnitID: 1, EventTypes: []int{12}})
	if err != nil {
		t.Fatal(err)
	}
	replayed, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: "http://127.0.0.1:9/replayed", BusinessUnitID: 1, EventTypes: []int{12}})
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	sentKey := seedMessage(t, ns, "auth-job", 1, platform.MessageSent)
	// A rule of unit 1 that decided on an event (type 13: the endpoints above do not take it),
	// acting on an endpoint that answers, so that the drain ends.
	sink := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { rw.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(sink.Close)
	sinkEp, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: sink.URL + "/hook", BusinessUnitID: 1, EventTypes: []int{99}})
	if err != nil {
		t.Fatal(err)
	}
	ruleDef := `{"businessUnitId":1,"eventTypes":[13],"filter":"event.entity.id > 0","action":{"webhook":{"endpointId":"` + sinkEp.ID + `"}}}`
	rule := addRule(t, w, ruleDef)
	decided := strings.Replace(changeEvent(1, 502, "2026-11-22T10:00:00Z"), `"eventTypeId":12`, `"eventTypeId":13`, 1)
	send(t, w, decided)
	drain(t, w)
	decidedKey := mustKey(t, decided)
	ruleURL := "/v1/automations/" + rule.ID
	running, _, err := w.Runs().Start(ctx, runs.StartRequest{Agent: "blocks", Key: "auth-1", BusinessUnitID: 1})
	if err != nil {
		t.Fatal(err)
	}
	done, _, err := w.Runs().Start(ctx, runs.StartRequest{Agent: "quick", Key: "auth-2", BusinessUnitID: 1})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the quick run over", func() bool {
		r, err := w.Runs().Get(ctx, done.ID)
		return err == nil && r.State == runs.Succeeded
	})

	cases := map[string]routeCase{
		"GET /healthz": {"GET", "/healthz", "", 200, 200},
		"GET /readyz":  {"GET", "/readyz", "", 200, 200},
		"GET /metrics": {"GET", "/metrics", "", 200, 200}, // counts of every unit: no unit's own
		"GET /v1/history/{entityTypeId}/{identity}": {"GET", "/v1/history/1/501", "", 200, 404},
		"POST /v1/notification-jobs": {"POST", "/v1/notification-jobs",
			`{"notificationEventTypeId":202,"businessUnitId":1,"eventData":{"resetUrl":"https://example.com/r/2"}}`, 201, 403},
		"POST /v1/notification-cancellations":        {"POST", "/v1/notification-cancellations", `{"cancellationKey":"c-1","businessUnitId":1}`, 200, 403},
		"GET /v1/trace":                              {"GET", "/v1/trace?key=" + job.Key, "", 200, 404},
		"GET /v1/timeline/{entityTypeId}/{identity}": {"GET", "/v1/timeline/1/501", "", 200, 404},
		"GET /v1/attention":                          {"GET", "/v1/attention?since=1h", "", 200, 200},
		// A message Sent and a job settled: each action refuses the state (409) for whoever may
		// act, before which another unit's key is no such key (404).
		"POST /v1/messages/mark-sent":       {"POST", "/v1/messages/mark-sent", `{"messageKey":"` + sentKey + `","reason":"auth test"}`, 409, 404},
		"POST /v1/messages/resend":          {"POST", "/v1/messages/resend", `{"messageKey":"` + sentKey + `","reason":"auth test"}`, 409, 404},
		"POST /v1/notification-jobs/cancel": {"POST", "/v1/notification-jobs/cancel", `{"jobKey":"` + job.Key + `","reason":"auth test"}`, 409, 404},
		"POST /v1/poison/{queue}/redrive":   {"POST", "/v1/poison/entity-events/redrive", `{"reason":"auth test"}`, 200, 403},
		"GET /v1/changes":                   {"GET", "/v1/changes?businessUnitId=1", "", 200, 404},
		"GET /v1/settings/{businessUnitId}": {"GET", "/v1/settings/1", "", 200, 404},
		"GET /v1/messages":                  {"GET", "/v1/messages?address=ada@example.com", "", 200, 200}, // another unit's: none of its messages
		"POST /v1/webhooks":                 {"POST", "/v1/webhooks", `{"url":"http://127.0.0.1:9/new","businessUnitId":1,"eventTypes":[12]}`, 201, 403},
		"GET /v1/webhooks":                  {"GET", "/v1/webhooks", "", 200, 200},
		"POST /v1/webhooks/{id}/disable":    {"POST", "/v1/webhooks/" + ep.ID + "/disable", "", 200, 404},
		"POST /v1/webhooks/{id}/enable":     {"POST", "/v1/webhooks/" + ep.ID + "/enable", "", 200, 404},

		"POST /v1/webhooks/{id}/rotate-secret": {"POST", "/v1/webhooks/" + ep.ID + "/rotate-secret", `{"expireOldAfter":"1h"}`, 200, 404},
		"GET /v1/webhooks/{id}/deliveries":     {"GET", "/v1/webhooks/" + ep.ID + "/deliveries?failed=true&limit=5", "", 200, 404},
		"POST /v1/webhooks/{id}/replay":        {"POST", "/v1/webhooks/" + replayed.ID + "/replay", `{"since":"` + since + `"}`, 200, 404},

		"GET /v1/automations":               {"GET", "/v1/automations", "", 200, 200},
		"POST /v1/automations":              {"POST", "/v1/automations", ruleDef, 201, 403},
		"GET /v1/automations/{id}":          {"GET", ruleURL, "", 200, 404},
		"PUT /v1/automations/{id}":          {"PUT", ruleURL, ruleDef, 200, 404},
		"POST /v1/automations/{id}/enable":  {"POST", ruleURL + "/enable?shadow=false", "", 200, 404},
		"POST /v1/automations/{id}/disable": {"POST", ruleURL + "/disable", "", 200, 404},
		"POST /v1/automations/{id}/test":    {"POST", ruleURL + "/test", decided, 200, 404},
		"GET /v1/automations/{id}/explain":  {"GET", ruleURL + "/explain?event=" + url.QueryEscape(decidedKey), "", 200, 404},
		"POST /v1/automations/{id}/replay":  {"POST", ruleURL + "/replay", `{"eventKey":"` + decidedKey + `"}`, 200, 404},
		"GET /v1/runs":                      {"GET", "/v1/runs?businessUnitId=1&agent=blocks", "", 200, 404},
		"GET /v1/runs/{id}":                 {"GET", "/v1/runs/" + running.ID, "", 200, 404},
		"POST /v1/runs/{id}/cancel":         {"POST", "/v1/runs/" + running.ID + "/cancel", "", 200, 404},
		"POST /v1/runs/{id}/replay":         {"POST", "/v1/runs/" + done.ID + "/replay", "", 201, 404},
	}
	routes := api.Routes()
	for _, rt := range routes {
		if err := rt.Policy.Check(); err != nil {
			t.Errorf("route %s: %v", rt.Pattern, err)
		}
		if _, ok := cases[rt.Pattern]; !ok {
			t.Errorf("route %s has no case here: every route is tried with every credential", rt.Pattern)
		}
	}
	for pattern := range cases {
		if !slices.ContainsFunc(routes, func(rt api.Route) bool { return rt.Pattern == pattern }) {
			t.Errorf("case %s names no route", pattern)
		}
	}

	token := func(c testenv.Claims) string { return "Bearer " + iss.Token(c) }
	claims := func(role auth.Role, unit int) testenv.Claims {
		return testenv.Claims{"sub": "svc-test", "aud": audience, "roles": []string{string(role)}, "bu": []int{unit}}
	}
	otherRole := func(r auth.Role) auth.Role { // a role that is neither r nor admin
		for _, o := range auth.Roles {
			if o != r && o != auth.Admin {
				return o
			}
		}
		panic("no other role")
	}
	with := func(c testenv.Claims, k string, v any) testenv.Claims { c[k] = v; return c }
	type credential struct {
		name   string
		header func(role auth.Role) string
		want   func(rc routeCase) int
	}
	refused := func(routeCase) int { return 401 }
	credentials := []credential{
		{"no token", func(auth.Role) string { return "" }, refused},
		{"not a bearer", func(r auth.Role) string { return "Basic " + iss.Token(claims(r, 1)) }, refused},
		{"expired", func(r auth.Role) string {
			return token(with(claims(r, 1), "exp", time.Now().Add(-2*time.Hour).Unix()))
		}, refused},
		{"not yet valid", func(r auth.Role) string {
			return token(with(claims(r, 1), "nbf", time.Now().Add(time.Hour).Unix()))
		}, refused},
		{"wrong audience", func(r auth.Role) string { return token(with(claims(r, 1), "aud", "api://someone-else")) }, refused},
		{"wrong issuer", func(r auth.Role) string { return token(with(claims(r, 1), "iss", "https://evil.example")) }, refused},
		{"alg none", func(r auth.Role) string { return "Bearer " + iss.TokenAlgNone(claims(r, 1)) }, refused},
		{"HS256 keyed with the public key", func(r auth.Role) string { return "Bearer " + iss.TokenHS256WithPublicKey(claims(r, 1)) }, refused},
		{"unknown kid", func(r auth.Role) string { return "Bearer " + iss.TokenWithUnknownKey(claims(r, 1)) }, refused},
		{"made-up API key", func(auth.Role) string { return "Bearer plk_01ARZ3NDEKTSV4RRFFQ69G5FAV_" + strings.Repeat("A", 43) }, refused},
		{"right token, wrong role", func(r auth.Role) string { return token(claims(otherRole(r), 1)) }, func(routeCase) int { return 403 }},
		{"right token, no business unit", func(r auth.Role) string { return token(with(claims(r, 1), "bu", nil)) }, func(routeCase) int { return 403 }},
		{"right role, other business unit", func(r auth.Role) string { return token(claims(r, 2)) }, func(rc routeCase) int { return rc.otherUnit }},
		{"right role, right business unit", func(r auth.Role) string { return token(claims(r, 1)) }, func(rc routeCase) int { return rc.ok }},
		{"admin, every unit", func(auth.Role) string { return token(with(claims(auth.Admin, 1), "bu", nil)) }, func(rc routeCase) int { return rc.ok }},
		{"rotated key", func(r auth.Role) string { return token(claims(r, 1)) }, func(rc routeCase) int { return rc.ok }},
	}
	everyUnitOnly := map[string]bool{"POST /v1/poison/{queue}/redrive": true}
	scopedToUnit1 := map[string]bool{"right role, right business unit": true, "rotated key": true}
	var table strings.Builder
	wantOK := 0 // audit lines of mutating requests that succeed
	for _, cred := range credentials {
		if cred.name == "rotated key" {
			iss.Rotate(false) // the old key is gone from the JWKS; the next token names a new kid
		}
		fmt.Fprintf(&table, "%-34s", cred.name)
		for _, rt := range routes {
			rc := cases[rt.Pattern]
			want := cred.want(rc)
			if rt.Policy.Public {
				want = rc.ok // health and readiness answer anyone, whatever they send
			}
			if rt.Policy.Role == auth.Admin && cred.name == "right token, no business unit" {
				want = rc.ok // an admin granted no unit in particular sees every unit
			}
			if everyUnitOnly[rt.Pattern] && scopedToUnit1[cred.name] {
				want = 403 // poison carries no dependable unit: only who sees every unit redrives
			}
			if want < 300 && rc.method != "GET" {
				wantOK++
			}
			code, body := call(t, rc.method, base+rc.path, cred.header(rt.Policy.Role), rc.body)
			fmt.Fprintf(&table, " %d", code)
			if code != want {
				t.Errorf("%s, %s: %d %s, want %d", cred.name, rt.Pattern, code, body, want)
			}
		}
		table.WriteString("\n")
	}
	t.Logf("route × credential (columns in api.Routes order):\n%s", table.String())

	// The audit: one line per mutating request, naming the principal, never the token.
	out := logs.String()
	if strings.Contains(out, "eyJ") {
		t.Error("a token reached the log")
	}
	var audits, okAudits int
	for line := range strings.SplitSeq(out, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil || e["audit"] != true {
			continue
		}
		audits++
		if e["outcome"] == "ok" {
			okAudits++
			unit := e["businessUnit"] == float64(1) || e["route"] == "POST /v1/poison/{queue}/redrive" // poison has no unit
			if e["principal"] != "token:svc-test" || e["route"] == "" || e["role"] == "" || !unit {
				t.Errorf("audit line %v: want principal token:svc-test, its role, route and business unit 1", e)
			}
		}
	}
	// Every mutating route × every credential; those the cases expect to succeed are ok.
	mutating := 0
	for _, rt := range routes {
		if !strings.HasPrefix(rt.Pattern, "GET ") {
			mutating++
		}
	}
	if audits != mutating*len(credentials) || okAudits != wantOK {
		t.Errorf("%d audit lines (%d ok), want %d (%d ok)", audits, okAudits, mutating*len(credentials), wantOK)
	}
}

// A token cannot pass itself off as an outage of the identity provider: words of its own (a
// kid, an alg) that read "authentication unavailable" are still a 401, not a 503 logged as an
// error.
func TestForgedTokenWordsAreNotAnIssuerOutage(t *testing.T) {
	t.Parallel()
	iss := testenv.StartIssuer(t)
	var logs syncBuffer
	log := logrus.New()
	log.SetOutput(&logs)
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0", Logger: log, Auth: auth.Config{Issuer: iss.URL, Audience: audience}})
	url := "http://" + w.HTTPAddr() + "/v1/notification-jobs"
	claims := testenv.Claims{"iss": iss.URL, "aud": audience, "sub": "x", "roles": []string{"admin"}, "exp": time.Now().Add(time.Hour).Unix()}
	if code, body := call(t, "POST", url, "Bearer "+iss.Token(claims), "{}"); code != 400 {
		t.Fatalf("a good token: %d %s, want 400 (the issuer is up, the body is bad)", code, body)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	seg := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	for name, token := range map[string]string{
		"kid": testenv.SignRS256(key, "authentication unavailable", claims),
		"alg": seg(map[string]string{"alg": "authentication unavailable", "typ": "JWT"}) + "." + seg(claims) + ".c2ln",
	} {
		if code, body := call(t, "POST", url, "Bearer "+token, "{}"); code != http.StatusUnauthorized {
			t.Errorf("a forged token whose %s says authentication unavailable: %d %s, want 401", name, code, body)
		}
	}
	if strings.Contains(logs.String(), "level=error") {
		t.Errorf("forged tokens logged errors:\n%s", logs.String())
	}
}

// An issuer whose discovery answers but whose keys cannot be read is an outage: 503, as the
// README says, not a 401 that blames the caller's token.
func TestIssuerKeysUnreachableIs503(t *testing.T) {
	t.Parallel()
	iss := testenv.StartIssuer(t)
	// The keys' address hangs up on every request. (A closed server's port is no proof of
	// "unreachable": a parallel test's issuer may be given that port and answer with its keys.)
	down := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		conn, _, err := rw.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	t.Cleanup(down.Close)
	var discovery *httptest.Server
	discovery = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(rw).Encode(map[string]any{"issuer": discovery.URL, "jwks_uri": down.URL + "/keys",
			"authorization_endpoint": discovery.URL + "/authorize", "token_endpoint": discovery.URL + "/token"})
	}))
	t.Cleanup(discovery.Close)
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0", Auth: auth.Config{Issuer: discovery.URL, Audience: audience}})
	token := iss.Token(testenv.Claims{"iss": discovery.URL, "aud": audience, "sub": "x", "roles": []string{"admin"}})
	code, body := call(t, "POST", "http://"+w.HTTPAddr()+"/v1/notification-jobs", "Bearer "+token, "{}")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("the issuer's keys unreachable: %d %s, want 503", code, body)
	}
}
