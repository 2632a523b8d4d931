package worker_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/automations"
	"github.com/platform/platform/worker/webhooks"
)

// mustKey is the event key of the event body.
func mustKey(t *testing.T, body string) string {
	t.Helper()
	ev, err := platform.DecodeEvent([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return ev.Key()
}

// The rules' HTTP API: a principal manages the rules of its business units, and nothing of
// another unit's, not even through an event key (explain, replay); a bad filter is 400 with
// CEL's message whole.
func TestAutomationRulesOverHTTPAreScopedToTheCallersUnits(t *testing.T) {
	t.Parallel()
	iss := testenv.StartIssuer(t)
	var hits atomic.Int32
	sink := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(sink.Close)
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0", WebhookAllowlist: []string{"127.0.0.1"},
		Auth: auth.Config{Issuer: iss.URL, Audience: audience}})
	base := "http://" + w.HTTPAddr() + "/v1/automations"
	token := func(sub string, unit int) string {
		return "Bearer " + iss.Token(testenv.Claims{"sub": sub, "aud": audience, "roles": []string{string(auth.AutomationsManage)}, "bu": []int{unit}})
	}
	one, two := token("ops-1", 1), token("ops-2", 2)
	endpoint := func(unit int64) string {
		e, err := w.Webhooks().Add(t.Context(), webhooks.NewEndpoint{URL: sink.URL + "/hook", BusinessUnitID: unit, EventTypes: []int{99}})
		if err != nil {
			t.Fatal(err)
		}
		return e.ID
	}
	def := `{"name":"lovelace","businessUnitId":1,"eventTypes":[13],"filter":"event.payload.lastName == 'Lovelace' && event.entity.id > 0",` +
		`"action":{"webhook":{"endpointId":"` + endpoint(1) + `"}}}`

	// Added and read back by unit 1, with who added it.
	code, body := call(t, "POST", base, one, def)
	var rule automations.Rule
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &rule) != nil || rule.Version != 1 || rule.CreatedBy != "token:ops-1" || !rule.Enabled {
		t.Fatalf("add: %d %s", code, body)
	}
	ruleURL := base + "/" + rule.ID
	if code, body := call(t, "POST", ruleURL+"/enable?shadow=true", one, ""); code != http.StatusOK || !strings.Contains(body, `"shadow":true`) {
		t.Fatalf("enable in shadow mode: %d %s", code, body)
	}
	code, body = call(t, "GET", ruleURL, one, "")
	var got struct {
		automations.Rule
		Versions []automations.Rule `json:"versions"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || got.Version != 2 || !got.Shadow || len(got.Versions) != 2 ||
		got.Versions[1].Note != "enabled in shadow mode by token:ops-1" || got.Filter != rule.Filter {
		t.Fatalf("get: %d %s", code, body)
	}

	// Unit 2 sees none of it, and cannot add to unit 1.
	if code, body := call(t, "GET", base, two, ""); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Errorf("unit 2 lists: %d %s, want []", code, body)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", ruleURL, ""}, {"PUT", ruleURL, def}, {"POST", ruleURL + "/disable", ""}, {"POST", ruleURL + "/enable", ""},
		{"POST", ruleURL + "/test", changeEvent(1, 7, "2026-11-22T10:00:00Z")},
	} {
		if code, body := call(t, c.method, c.path, two, c.body); code != http.StatusNotFound {
			t.Errorf("unit 2: %s %s: %d %s, want 404", c.method, c.path, code, body)
		}
	}
	if code, body := call(t, "POST", base, two, def); code != http.StatusForbidden {
		t.Errorf("unit 2 adds a rule to unit 1: %d %s, want 403", code, body)
	}

	// Bad input is 400 naming the field; a CEL error comes whole: the source and a caret.
	code, body = call(t, "POST", base, one, strings.Replace(def, "event.entity.id > 0", "event.entity.id >", 1))
	var refused struct{ Error string }
	if code != http.StatusBadRequest || json.Unmarshal([]byte(body), &refused) != nil ||
		!strings.Contains(refused.Error, "filter: ERROR: <input>:1:") || !strings.Contains(refused.Error, "\n") || !strings.Contains(refused.Error, "^") {
		t.Errorf("a bad filter: %d %s, want 400 with CEL's message, position and caret", code, body)
	}
	for bad, want := range map[string]string{
		strings.Replace(def, `"filter"`, `"filtre"`, 1):                 `unknown field \"filtre\"`,
		strings.Replace(def, `"eventTypes":[13]`, `"eventTypes":[]`, 1): "eventTypes",
	} {
		if code, body := call(t, "POST", base, one, bad); code != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s, want 400 naming %s", bad, code, body, want)
		}
	}
	if code, body := call(t, "PUT", ruleURL, one, strings.Replace(def, `"businessUnitId":1`, `"businessUnitId":2`, 1)); code != http.StatusBadRequest {
		t.Errorf("moving a rule to another unit: %d %s, want 400", code, body)
	}
	if code, body := call(t, "GET", base+"/rul00000000000000000000000000", one, ""); code != http.StatusNotFound {
		t.Errorf("an unknown rule: %d %s, want 404", code, body)
	}

	// Unit 2's rule decides on unit 2's event; unit 1's rule on unit 1's.
	rule2 := addRule(t, w, `{"businessUnitId":2,"eventTypes":[13],"action":{"webhook":{"endpointId":"`+endpoint(2)+`"}}}`)
	if _, err := w.Automations().Enable(t.Context(), rule2.ID, true, "test"); err != nil {
		t.Fatal(err)
	}
	mine := strings.Replace(changeEvent(1, 7, "2026-11-22T10:00:00Z"), `"eventTypeId":12`, `"eventTypeId":13`, 1)
	theirs := strings.Replace(changeEvent(2, 8, "2026-11-22T10:00:00Z"), `"eventTypeId":12`, `"eventTypeId":13`, 1)
	send(t, w, mine, theirs)
	drain(t, w)

	code, body = call(t, "GET", ruleURL+"/explain?event="+url.QueryEscape(mustKey(t, mine)), one, "")
	var e automations.Evaluation
	if code != http.StatusOK || json.Unmarshal([]byte(body), &e) != nil || e.Recorded == nil || e.Recorded.Outcome != automations.FilterFalse ||
		e.Outcome != automations.FilterFalse || len(e.Clauses) != 2 || e.Clauses[0].Result != "false" || e.Clauses[1].Result != "true" {
		t.Fatalf("explain: %d %s, want the recorded filter_false and the first clause false", code, body)
	}
	// The other unit's event is not there for unit 1's rule: explaining would reveal its
	// payload clause by clause, replaying would send it to unit 1's endpoint.
	theirKey := mustKey(t, theirs)
	if code, body := call(t, "GET", ruleURL+"/explain?event="+url.QueryEscape(theirKey), one, ""); code != http.StatusNotFound || strings.Contains(body, "Lovelace") {
		t.Errorf("explain unit 2's event with unit 1's rule: %d %s, want 404", code, body)
	}
	if code, body := call(t, "POST", ruleURL+"/replay", one, `{"eventKey":"`+theirKey+`"}`); code != http.StatusNotFound {
		t.Errorf("replay unit 2's event with unit 1's rule: %d %s, want 404", code, body)
	}
	for path, want := range map[string]string{
		ruleURL + "/explain":                 "event: want an event key",
		ruleURL + "/explain?event=not-a-key": "event: ",
	} {
		if code, body := call(t, "GET", path, one, ""); code != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d %s, want 400 naming the event", path, code, body)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("%d deliveries: the rules are in shadow mode, nothing replayed yet", hits.Load())
	}

	// A replay of unit 1's event fires the action once more, as a recorded new generation.
	code, body = call(t, "POST", ruleURL+"/replay", one, `{"eventKey":"`+mustKey(t, mine)+`"}`)
	if code != http.StatusOK || !strings.Contains(body, `"outcome":"fired"`) || !strings.Contains(body, "by token:ops-1") {
		t.Fatalf("replay: %d %s", code, body)
	}
	testenv.Eventually(t, 20*time.Second, "the replay's delivery", func() bool { return hits.Load() == 1 })
}
