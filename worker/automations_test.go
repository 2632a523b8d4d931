package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/automations"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/webhooks"
)

// addRule stores a rule from its JSON definition.
func addRule(t *testing.T, w *worker.Worker, def string) *automations.Rule {
	t.Helper()
	nr, err := automations.ParseRule([]byte(def))
	if err != nil {
		t.Fatal(err)
	}
	r, err := w.Automations().Add(context.Background(), nr, "test")
	if err != nil {
		t.Fatalf("add rule %s: %v", def, err)
	}
	return r
}

// decisions reads the decisions made on the event body, by rule id.
func decisions(t *testing.T, w *worker.Worker, body string) map[string]tables.Decision {
	t.Helper()
	ev, err := platform.DecodeEvent([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	ds, err := w.Automations().Decisions(context.Background(), ev.Key())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]tables.Decision{}
	for _, d := range ds {
		out[d.RuleID] = d
	}
	return out
}

// hookEndpoint adds an endpoint of unit 42 that subscribes to type 99 only: what it gets, it
// gets from rules.
func hookEndpoint(t *testing.T, w *worker.Worker) (*receiver, string) {
	t.Helper()
	rc := newReceiver(t, strongSecret, 0)
	e, err := w.Webhooks().Add(context.Background(), webhooks.NewEndpoint{URL: rc.srv.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{99}, Secret: rc.secret})
	if err != nil {
		t.Fatal(err)
	}
	return rc, e.ID
}

func TestAutomationEveryOutcomeIsRecordedAndEachKeyFiresOnce(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	ctx := context.Background()
	rc, hook := hookEndpoint(t, w)
	action := fmt.Sprintf(`"action":{"webhook":{"endpointId":%q}}`, hook)
	rules := map[string]*automations.Rule{
		"fires":    addRule(t, w, `{"businessUnitId":42,"eventTypes":[12],"filter":"event.payload.firstName == 'Ada' && event.action == 2",`+action+`}`),
		"false":    addRule(t, w, `{"businessUnitId":42,"eventTypes":[12],"filter":"event.payload.firstName == 'Bob'",`+action+`}`),
		"missing":  addRule(t, w, `{"businessUnitId":42,"eventTypes":[12],"filter":"event.payload.age > 18",`+action+`}`),
		"typo":     addRule(t, w, `{"businessUnitId":42,"eventTypes":[12],"filter":"event.payload.firstName > 3",`+action+`}`),
		"perGuid":  addRule(t, w, `{"businessUnitId":42,"eventTypes":[12],"dedupeKey":"event.entity.guid",`+action+`}`),
		"disabled": addRule(t, w, `{"businessUnitId":42,"eventTypes":[12],`+action+`}`),
		"shadow":   addRule(t, w, `{"businessUnitId":42,"eventTypes":[12],"shadow":true,`+action+`}`),
		"limited":  addRule(t, w, `{"businessUnitId":42,"eventTypes":[12],"rateLimit":{"count":1,"per":"1h"},`+action+`}`),
	}
	if _, err := w.Automations().Disable(ctx, rules["disabled"].ID, "test"); err != nil {
		t.Fatal(err)
	}
	first := event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`)
	second := event(12, 1, 2, attendee, "2026-11-22T11:00:00Z", `{"firstName":"Ada"}`)
	send(t, w, first, first) // the first occurrence is delivered twice
	drain(t, w)
	send(t, w, second)
	drain(t, w)

	want := map[string][2]string{ // outcome for the first event, for the second
		"fires": {automations.Fired, automations.Fired}, "false": {automations.FilterFalse, automations.FilterFalse},
		"missing": {automations.FilterError, automations.FilterError}, "typo": {automations.FilterError, automations.FilterError},
		"perGuid": {automations.Fired, automations.Deduped}, "disabled": {automations.Disabled, automations.Disabled},
		"shadow": {automations.Shadow, automations.Shadow}, "limited": {automations.Fired, automations.RateLimited},
	}
	for i, body := range []string{first, second} {
		got := decisions(t, w, body)
		if len(got) != len(want) {
			t.Errorf("event %d: %d decisions, want %d (one per rule of its unit and type): %+v", i+1, len(got), len(want), got)
		}
		for name, outcomes := range want {
			d, ok := got[rules[name].ID]
			if !ok || d.Outcome != outcomes[i] {
				t.Errorf("event %d, rule %s: decision %+v, want %s", i+1, name, d, outcomes[i])
			}
		}
		if d := got[rules["missing"].ID]; !strings.Contains(d.Detail, "age") {
			t.Errorf("a missing field's error does not name it: %q", d.Detail)
		}
		if d := got[rules["shadow"].ID]; !strings.Contains(d.Detail, "would webhook to endpoint "+hook) {
			t.Errorf("a shadow decision does not say what it would do: %q", d.Detail)
		}
	}
	firstEv, _ := platform.DecodeEvent([]byte(first))
	// platform trace shows the decisions beside the event's other effects.
	if tr := trace(t, w, firstEv.Key()); len(tr.Automations) != len(want) || tr.Event == nil || tr.Event.History == nil {
		t.Errorf("the event's trace shows %d decisions (want %d) and history %+v", len(tr.Automations), len(want), tr.Event)
	}
	if d := decisions(t, w, second)[rules["perGuid"].ID]; !strings.Contains(d.Detail, firstEv.Key()) || d.DedupeKey != attendee {
		t.Errorf("a deduped decision does not name the first effect's event and the key: %+v", d)
	}
	// Fired: "fires" twice (two occurrences), "perGuid" once, "limited" once; the redelivery
	// and the shadow rule sent nothing.
	testenv.Eventually(t, 20e9, "four deliveries", func() bool { n, _ := rc.received(); return n >= 4 })
	drain(t, w)
	if n, calls := rc.received(); n != 4 || calls != 4 {
		t.Fatalf("the endpoint got %d deliveries in %d calls, want 4 in 4", n, calls)
	}
	keys := map[string]bool{}
	rc.mu.Lock()
	for _, h := range rc.got {
		keys[h.Get("Idempotency-Key")] = true
	}
	rc.mu.Unlock()
	if len(keys) != 4 {
		t.Fatalf("deliveries under %d keys, want 4: %v", len(keys), keys)
	}
}

func TestAutomationRuleIsValidatedWhenSavedAndNothingBadIsStored(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	ctx := context.Background()
	_, hook := hookEndpoint(t, w)
	action := fmt.Sprintf(`"action":{"webhook":{"endpointId":%q}}`, hook)
	cases := []struct{ name, def, want string }{
		{"syntax", `{"businessUnitId":42,"eventTypes":[12],"filter":"event.payload.x ==",` + action + `}`, "filter: ERROR: <input>:1:19: Syntax error"},
		{"misspelled field", `{"businessUnitId":42,"eventTypes":[12],"filter":"event.paylod.x == 1",` + action + `}`, `filter: ERROR: <input>:1:6: undefined field 'paylod'`},
		{"entity field", `{"businessUnitId":42,"eventTypes":[12],"filter":"event.entity.name == 'x'",` + action + `}`, `undefined field 'name'`},
		{"not a bool", `{"businessUnitId":42,"eventTypes":[12],"filter":"event.key",` + action + `}`, "filter: gives string, want bool"},
		{"dedupe key not a string", `{"businessUnitId":42,"eventTypes":[12],"dedupeKey":"event.type",` + action + `}`, "dedupeKey: gives int, want string"},
		{"huge", `{"businessUnitId":42,"eventTypes":[12],"filter":"` + strings.Repeat("true && ", 600) + `true",` + action + `}`, "filter: 4804 characters, at most 4096"},
		{"deep", `{"businessUnitId":42,"eventTypes":[12],"filter":"` + strings.Repeat("(", 100) + "true" + strings.Repeat(")", 100) + `",` + action + `}`, "filter: "},
		{"unknown endpoint", `{"businessUnitId":42,"eventTypes":[12],"action":{"webhook":{"endpointId":"nope"}}}`, "no webhook endpoint nope in business unit 42"},
		{"another unit's endpoint", `{"businessUnitId":43,"eventTypes":[12],` + action + `}`, "in business unit 43"},
		{"event-derived notification", `{"businessUnitId":42,"eventTypes":[12],"action":{"notify":{"notificationEventTypeId":101}}}`, "101 is not a direct notification type"},
		{"unknown agent", `{"businessUnitId":42,"eventTypes":[12],"action":{"run":{"agent":"ghost"}}}`, `no agent "ghost"`},
		{"two actions", `{"businessUnitId":42,"eventTypes":[12],"action":{"run":{"agent":"a"},"publish":{"eventTypeId":3}}}`, "want exactly one of"},
		{"no event types", `{"businessUnitId":42,"eventTypes":[],` + action + `}`, "eventTypes: want at least one"},
		{"bad rate", `{"businessUnitId":42,"eventTypes":[12],"rateLimit":{"count":1,"per":"1ms"},` + action + `}`, "rateLimit.per: want 1s-24h"},
	}
	for _, c := range cases {
		nr, err := automations.ParseRule([]byte(c.def))
		if err == nil {
			_, err = w.Automations().Add(ctx, nr, "test")
		}
		if err == nil || !errors.Is(err, platform.ErrInvalidInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an invalid-input error containing %q", c.name, err, c.want)
		}
	}
	if _, err := automations.ParseRule([]byte(`{"businessUnitId":42,"eventTypes":[12],"filtre":"true"}`)); err == nil || !strings.Contains(err.Error(), `unknown field "filtre"`) {
		t.Errorf("an unknown field: %v", err)
	}
	if rules, err := w.Automations().List(ctx); err != nil || len(rules) != 0 {
		t.Fatalf("refused rules were stored: %v %v", rules, err)
	}
}

func TestAutomationPublishChainsStopAtTheLoopGuard(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{})
	// A rule that re-publishes its own type would loop for ever; one pair ping-pongs.
	self := addRule(t, w, `{"businessUnitId":42,"eventTypes":[12],"action":{"publish":{"eventTypeId":12,"actionTypeId":4}}}`)
	ping := addRule(t, w, `{"businessUnitId":42,"eventTypes":[13],"action":{"publish":{"eventTypeId":14}}}`)
	pong := addRule(t, w, `{"businessUnitId":42,"eventTypes":[14],"action":{"publish":{"eventTypeId":13,"actionTypeId":3}}}`)
	start := event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"n":1}`)
	send(t, w, start, event(13, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"n":1}`))
	drain(t, w)
	// The self rule fired on the service's event, and ignored the event it published.
	if d := decisions(t, w, start)[self.ID]; d.Outcome != automations.Fired {
		t.Fatalf("self rule on the service's event: %+v", d)
	}
	echo := event(12, 1, 4, attendee, "2026-11-22T10:00:00Z", `{"n":1}`)
	if d := decisions(t, w, echo)[self.ID]; d.Outcome != automations.LoopGuard || !strings.Contains(d.Detail, "own action") {
		t.Fatalf("self rule on its own event: %+v", d)
	}
	// ping (depth 0) → 14 (1) → pong → 13 (2) → ping → 14 (3): pong stops at the cap of 3.
	depth3 := event(14, 1, 3, attendee, "2026-11-22T10:00:00Z", `{"n":1}`)
	if d := decisions(t, w, depth3)[pong.ID]; d.Outcome != automations.LoopGuard || !strings.Contains(d.Detail, "chain depth 3 reaches the cap of 3") {
		t.Fatalf("pong at depth 3: %+v", d)
	}
	if d := decisions(t, w, event(13, 1, 3, attendee, "2026-11-22T10:00:00Z", `{"n":1}`))[ping.ID]; d.Outcome != automations.Fired {
		t.Fatalf("ping at depth 2: %+v", d)
	}
	if n := len(poison(t, w)); n != 0 {
		t.Fatalf("%d events poisoned", n)
	}
	// Type 14 has no history rule: its trace is its decisions, for a reader of its unit only.
	ev14, _ := platform.DecodeEvent([]byte(depth3))
	tr, err := w.Notify().Trace(context.Background(), ev14.Key(), &notify.TraceOptions{Visible: func(bu int64) bool { return bu == 42 }})
	if err != nil || len(tr.Automations) != 1 || tr.Automations[0].RuleID != pong.ID {
		t.Fatalf("trace of an event only rules wanted: %+v, %v", tr, err)
	}
	if _, err := w.Notify().Trace(context.Background(), ev14.Key(), &notify.TraceOptions{Visible: func(bu int64) bool { return bu == 43 }}); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("another unit's reader traced it: %v", err)
	}
}

func TestAutomationExplainSaysWhichClauseWasFalseAndReplayFiresOnceMore(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	ctx := context.Background()
	rc, hook := hookEndpoint(t, w)
	action := fmt.Sprintf(`"action":{"webhook":{"endpointId":%q}}`, hook)
	r := addRule(t, w, `{"businessUnitId":42,"eventTypes":[12],"filter":"event.payload.firstName == 'Ada' && event.payload.vip == true",`+action+`}`)
	body := event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada","vip":false}`)
	send(t, w, body)
	drain(t, w)
	ev, _ := platform.DecodeEvent([]byte(body))
	e, err := w.Automations().Explain(ctx, r.ID, ev.Key())
	if err != nil {
		t.Fatal(err)
	}
	if e.Recorded == nil || e.Recorded.Outcome != automations.FilterFalse || len(e.Clauses) != 2 ||
		e.Clauses[0].Result != "true" || e.Clauses[1].Result != "false" || !strings.Contains(e.Clauses[1].Expr, "vip") {
		t.Fatalf("explain: %+v", e)
	}
	if _, err := w.Automations().Explain(ctx, r.ID, "12:1:nothing"); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("explain of an event never decided: %v", err)
	}
	// A replay fires it whatever the filter said, once per replay, under a key of its own.
	d, err := w.Automations().Replay(ctx, r.ID, ev.Key(), "support")
	if err != nil || d.Outcome != automations.Fired || d.Generation != 2 {
		t.Fatalf("replay: %+v, %v", d, err)
	}
	testenv.Eventually(t, 20e9, "the replayed delivery", func() bool { n, _ := rc.received(); return n == 1 })
	recorded := decisions(t, w, body)
	if got := recorded[r.ID+"~g2"]; got.Outcome != automations.Fired || !strings.Contains(got.Detail, "replay (generation 2) by support") {
		t.Fatalf("the replay's own decision: %+v", got)
	}
	if got := recorded[r.ID]; got.Outcome != automations.FilterFalse {
		t.Fatalf("the first decision was overwritten: %+v", got)
	}
}

// decisionRequests counts the requests that write AutomationDecisions: the table's own path,
// or a transaction naming it.
type decisionRequests struct{ n atomic.Int64 }

func (p *decisionRequests) Do(req *policy.Request) (*http.Response, error) {
	raw := req.Raw()
	hit := strings.Contains(raw.URL.Path, tables.TableAutomationDecisions)
	if !hit && strings.HasSuffix(raw.URL.Path, "$batch") && req.Body() != nil {
		b, _ := io.ReadAll(req.Body())
		hit = bytes.Contains(b, []byte(tables.TableAutomationDecisions))
		_ = req.RewindBody()
	}
	if hit && raw.Method != http.MethodGet {
		p.n.Add(1)
	}
	return req.Next()
}

func TestAutomationDecisionsOfOneEventAreOneRequest(t *testing.T) {
	t.Parallel()
	counter := &decisionRequests{}
	w := newWorker(t, worker.Config{Account: storage.Account{Policies: []policy.Policy{counter}}})
	for i := range 100 {
		addRule(t, w, fmt.Sprintf(`{"businessUnitId":42,"eventTypes":[12],"filter":"event.payload.n == %d","action":{"publish":{"eventTypeId":77}}}`, i+1000))
	}
	send(t, w, event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"n":1}`))
	drain(t, w)
	got := decisions(t, w, event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"n":1}`))
	if len(got) != 100 {
		t.Fatalf("%d decisions, want 100", len(got))
	}
	if n := counter.n.Load(); n != 1 {
		t.Fatalf("%d requests wrote the decisions of one event under 100 rules (a transaction's most), want 1", n)
	}
	// The event rode on a rule's row: it is still there to explain the decisions.
	for id := range got {
		ev, _ := platform.DecodeEvent([]byte(event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"n":1}`)))
		if e, err := w.Automations().Explain(context.Background(), id, ev.Key()); err != nil || e.Recorded == nil || e.Recorded.Outcome != automations.FilterFalse {
			t.Fatalf("explain under 100 rules: %+v, %v", e, err)
		}
		break
	}
}

func TestAutomationLifecycleEventsFeedRulesAndTheLoopGuardSeesTheirOrigin(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	ctx := context.Background()
	good, goodID := hookEndpoint(t, w)
	bad := newReceiver(t, strongSecret, 0)
	bad.srv.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { rw.WriteHeader(http.StatusBadRequest) })
	badEndpoint, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: bad.srv.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{99}, Secret: bad.secret})
	if err != nil {
		t.Fatal(err)
	}
	// An endpoint cannot subscribe to lifecycle events: each delivery would feed itself.
	if _, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: good.srv.URL + "/x", BusinessUnitID: 42, EventTypes: []int{platform.EventWebhookDelivered}, Secret: good.secret}); !errors.Is(err, platform.ErrInvalidInput) || !strings.Contains(err.Error(), "webhook.delivered") {
		t.Fatalf("a subscription to lifecycle events: %v", err)
	}
	// An event makes a delivery that fails (400: no retry) …
	addRule(t, w, fmt.Sprintf(`{"businessUnitId":42,"eventTypes":[12],"action":{"webhook":{"endpointId":%q}}}`, badEndpoint.ID))
	// … whose webhook.failed event one rule reports to a good endpoint, and another re-sends
	// to the failing one: that one's own failure comes back to it, and it does not act on it.
	report := addRule(t, w, fmt.Sprintf(`{"businessUnitId":42,"eventTypes":[%d],"action":{"webhook":{"endpointId":%q}}}`, platform.EventWebhookFailed, goodID))
	resend := addRule(t, w, fmt.Sprintf(`{"businessUnitId":42,"eventTypes":[%d],"filter":"event.causedByRule == '' || event.causedByRule != ''","action":{"webhook":{"endpointId":%q}}}`, platform.EventWebhookFailed, badEndpoint.ID))

	send(t, w, event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`))
	testenv.Eventually(t, 30e9, "the failure reported", func() bool { n, _ := good.received(); return n >= 2 })
	drain(t, w)
	good.mu.Lock()
	bodies := append([]string(nil), good.bodies...)
	good.mu.Unlock()
	if len(bodies) != 2 {
		t.Fatalf("the good endpoint got %d reports, want 2 (the first failure, and the re-send's failure)", len(bodies))
	}
	for _, b := range bodies {
		if !strings.Contains(b, fmt.Sprintf(`"eventTypeId":%d`, platform.EventWebhookFailed)) || !strings.Contains(b, `"supplementary":true`) || !strings.Contains(b, `"state":"Failed"`) {
			t.Fatalf("a report is not a webhook.failed lifecycle event: %s", b)
		}
	}
	// The re-send's own failure: the resend rule's decision on it is loop_guard, the report
	// rule still fired.
	var sawGuard bool
	for _, b := range bodies {
		decoded, err := platform.DecodeEvent([]byte(b))
		if err != nil {
			t.Fatal(err)
		}
		got := decisions(t, w, b)
		if decoded.CausedByRule == resend.ID {
			sawGuard = got[resend.ID].Outcome == automations.LoopGuard && got[report.ID].Outcome == automations.Fired
		}
	}
	if !sawGuard {
		t.Fatalf("no lifecycle event of the re-send's failure was guarded: %v", bodies)
	}
}

// A rule's published event keeps its chain through a subscription: the endpoint's delivery of
// it, and that delivery's lifecycle event, are the rule's, so the rule does not feed itself.
func TestAutomationChainsSurviveSubscriptions(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	ctx := context.Background()
	rc := newReceiver(t, strongSecret, 0)
	if _, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: rc.srv.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{61}, Secret: rc.secret}); err != nil {
		t.Fatal(err)
	}
	// Each delivery to the endpoint is announced (webhook.delivered), and the rule answers it
	// with an event the endpoint subscribes to: without the chain, a loop.
	r := addRule(t, w, fmt.Sprintf(`{"businessUnitId":42,"eventTypes":[%d],"action":{"publish":{"eventTypeId":61}}}`, platform.EventWebhookDelivered))
	send(t, w, event(61, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"n":1}`))
	testenv.Eventually(t, 30e9, "two deliveries", func() bool { n, _ := rc.received(); return n >= 2 })
	drain(t, w)
	if n, calls := rc.received(); n != 2 || calls != 2 {
		t.Fatalf("the endpoint got %d deliveries in %d calls, want 2: the service's event, and the rule's once", n, calls)
	}
	rc.mu.Lock()
	second := rc.bodies[1]
	rc.mu.Unlock()
	if !strings.Contains(second, `"causedByRule":"`+r.ID+`"`) || !strings.Contains(second, `"chainDepth":1`) {
		t.Fatalf("the rule's event as delivered: %s", second)
	}
}

// A key whose action was refused for good made no effect: it is not spent. And a key that
// fired before is deduped, not counted against the rate limit.
func TestAutomationKeysAreSpentOnlyByEffects(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	ctx := context.Background()
	rc, hook := hookEndpoint(t, w)
	refused := addRule(t, w, fmt.Sprintf(`{"businessUnitId":42,"eventTypes":[12],"dedupeKey":"event.entity.guid","action":{"webhook":{"endpointId":%q}}}`, hook))
	limited := addRule(t, w, fmt.Sprintf(`{"businessUnitId":42,"eventTypes":[13],"dedupeKey":"event.entity.guid","rateLimit":{"count":2,"per":"1h"},"action":{"webhook":{"endpointId":%q}}}`, hook))

	// The endpoint is off: the first event's action is refused, and its key stays free.
	if err := w.Webhooks().Disable(ctx, hook); err != nil {
		t.Fatal(err)
	}
	first := event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{}`)
	send(t, w, first)
	drain(t, w)
	if d := decisions(t, w, first)[refused.ID]; d.Outcome != automations.ActionFailed || !strings.Contains(d.Detail, "disabled") {
		t.Fatalf("a refused action: %+v", d)
	}
	if err := w.Webhooks().Enable(ctx, hook); err != nil {
		t.Fatal(err)
	}
	second := event(12, 1, 2, attendee, "2026-11-22T11:00:00Z", `{}`)
	send(t, w, second)
	drain(t, w)
	if d := decisions(t, w, second)[refused.ID]; d.Outcome != automations.Fired {
		t.Fatalf("the same key once the endpoint is back: %+v, want fired", d)
	}

	// Two tokens an hour: A fires, A again is deduped (its token given back), B fires.
	other := "9b2f6a3e-1c4d-4e5f-8a7b-6c5d4e3f2a1b"
	a1, a2, b1 := event(13, 1, 2, attendee, "2026-11-22T10:00:00Z", `{}`), event(13, 1, 2, attendee, "2026-11-22T10:01:00Z", `{}`), event(13, 1, 2, other, "2026-11-22T10:02:00Z", `{}`)
	for _, c := range []struct {
		body, want string
	}{{a1, automations.Fired}, {a2, automations.Deduped}, {b1, automations.Fired}} {
		send(t, w, c.body)
		drain(t, w)
		if d := decisions(t, w, c.body)[limited.ID]; d.Outcome != c.want {
			t.Fatalf("rate-limited rule: %+v, want %s", d, c.want)
		}
	}
	testenv.Eventually(t, 20e9, "three deliveries", func() bool { n, _ := rc.received(); return n >= 3 })
}
