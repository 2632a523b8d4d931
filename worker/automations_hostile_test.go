package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/automations"
)

// Hostile rules and events: what a tenant can type into a filter or send in a payload must
// end as a refusal when the rule is saved or as a recorded decision — never a crash, a hang,
// a poisoned event or another rule left undecided.

func TestAutomationHugeAndDeepFiltersAreRefusedWhenSaved(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	ctx := context.Background()
	cases := []struct{ name, filter, want string }{
		{"over the size limit", strings.Repeat("event.payload.a == 'x' || ", 200) + "true", "filter: 5204 characters, at most 4096"},
		// Short, but nested past the parser's depth: refused by CEL, naming the limit.
		{"nested past the parser's depth", strings.Repeat("[", 80) + "1" + strings.Repeat("]", 80) + ".size() > 0", "filter: ERROR: <input>:-1:0: expression recursion limit exceeded: 64"},
		{"calls nested past the parser's depth", strings.Repeat("size(", 70) + "event.key" + strings.Repeat(")", 70) + " > 0", "expression recursion limit exceeded: 64"},
	}
	for _, c := range cases {
		def, _ := json.Marshal(map[string]any{"businessUnitId": 42, "eventTypes": []int{12}, "filter": c.filter, "shadow": true,
			"action": map[string]any{"publish": map[string]any{"eventTypeId": 77}}})
		nr, err := automations.ParseRule(def)
		if err == nil {
			_, err = w.Automations().Add(ctx, nr, "test")
		}
		if !errors.Is(err, platform.ErrInvalidInput) || !strings.Contains(err.Error(), c.want) || len(err.Error()) > 2000 {
			t.Errorf("%s: %v, want an invalid-input error containing %q, short enough to read", c.name, err, c.want)
		}
	}
	if rules, err := w.Automations().List(ctx); err != nil || len(rules) != 0 {
		t.Fatalf("refused rules were stored: %v %v", rules, err)
	}
}

func TestAutomationFiltersThatCannotBeEvaluatedAreFilterErrorsAndTheOthersStillDecide(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	shadow := func(filter string) *automations.Rule {
		def, _ := json.Marshal(map[string]any{"businessUnitId": 42, "eventTypes": []int{12}, "filter": filter, "shadow": true,
			"action": map[string]any{"publish": map[string]any{"eventTypeId": 77}}})
		return addRule(t, w, string(def))
	}
	rules := map[string]*automations.Rule{
		// 2,000 × 2,000 iterations: stopped by the cost limit, not run to the end.
		"quadratic":     shadow(`event.payload.items.all(x, event.payload.items.all(y, x != y || true))`),
		"string > int":  shadow(`event.payload.name > 3`),
		"size of a num": shadow(`event.payload.n.size() > 0`),
		"missing key":   shadow(`event.payload.nowhere == 'x'`),
		"missing deep":  shadow(`event.payload.items[0].nowhere == 'x'`),
		"fine":          shadow(`event.payload.name == 'Ada' && size(event.payload.items) == 2000`),
	}
	items := make([]int, 2000)
	for i := range items {
		items[i] = i
	}
	payload, _ := json.Marshal(map[string]any{"name": "Ada", "n": 7, "items": items})
	first := event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", string(payload))
	second := event(12, 1, 2, attendee, "2026-11-22T11:00:00Z", `{"name":"Bob","n":1,"items":[]}`)
	start := time.Now()
	send(t, w, first, second)
	drain(t, w)
	want := map[string]string{ // the outcome's detail must say why, in CEL's words
		"quadratic":     "cost limit",
		"string > int":  "no such overload",
		"size of a num": "no such overload",
		"missing key":   "no such key: nowhere",
		"missing deep":  "no such key: nowhere",
	}
	got := decisions(t, w, first)
	if len(got) != len(rules) {
		t.Fatalf("%d decisions on the first event, want %d (every rule decides): %+v", len(got), len(rules), got)
	}
	for name, detail := range want {
		if d := got[rules[name].ID]; d.Outcome != automations.FilterError || !strings.Contains(d.Detail, detail) {
			t.Errorf("%s: %+v, want filter_error saying %q", name, d, detail)
		}
	}
	if d := got[rules["fine"].ID]; d.Outcome != automations.Shadow {
		t.Errorf("the rule beside them: %+v, want shadow (it would fire)", d)
	}
	// Nothing is poisoned, and the next event is decided as usual: false where false.
	if d := decisions(t, w, second)[rules["fine"].ID]; d.Outcome != automations.FilterFalse {
		t.Errorf("the next event: %+v, want filter_false", d)
	}
	if n := len(poison(t, w)); n != 0 {
		t.Fatalf("%d events poisoned", n)
	}
	t.Logf("two events, six rules, one of them quadratic over 2,000 items: decided in %s", time.Since(start).Round(time.Millisecond))
}

func TestAutomationDedupeKeysTablesWouldRefuseFireOncePerKey(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	rc, hook := hookEndpoint(t, w)
	r := addRule(t, w, fmt.Sprintf(`{"businessUnitId":42,"eventTypes":[12],"dedupeKey":"event.payload.k","action":{"webhook":{"endpointId":%q}}}`, hook))
	// Characters Tables refuse in a key (/ \ # ? and control characters), and 2 KB of them:
	// longer than a key may be.
	hostile := strings.Repeat(`a/b\c#d?e`+"\x01\x1f\x7f", 170)
	other := hostile + "\t"
	body := func(at, key string) string {
		p, _ := json.Marshal(map[string]string{"k": key})
		return event(12, 1, 2, attendee, at, string(p))
	}
	events := []string{body("2026-11-22T10:00:00Z", hostile), body("2026-11-22T11:00:00Z", hostile), body("2026-11-22T12:00:00Z", other)}
	send(t, w, events[0])
	drain(t, w)
	send(t, w, events[1:]...)
	drain(t, w)
	for i, want := range []string{automations.Fired, automations.Deduped, automations.Fired} {
		if d := decisions(t, w, events[i])[r.ID]; d.Outcome != want {
			t.Errorf("event %d: %+v, want %s", i+1, d, want)
		}
	}
	testenv.Eventually(t, 20*time.Second, "two deliveries", func() bool { n, _ := rc.received(); return n >= 2 })
	drain(t, w)
	if n, _ := rc.received(); n != 2 {
		t.Fatalf("the endpoint got %d deliveries, want 2 (one per key)", n)
	}
	if n := len(poison(t, w)); n != 0 {
		t.Fatalf("%d events poisoned", n)
	}
}

func TestAutomationEventOverTheLimitsIsDecidedAndKeptInABlob(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	ctx := context.Background()
	r := addRule(t, w, `{"businessUnitId":42,"eventTypes":[12],"shadow":true,"filter":"size(event.payload.notes) > 200000 && event.payload.notes.endsWith('END')","action":{"publish":{"eventTypeId":77}}}`)
	// 300 KB: over a queue message (64 KB) and a table property (64 KB); Publish claim-checks it.
	notes := strings.Repeat("n", 300_000) + "END"
	ev, err := platform.DecodeEvent([]byte(event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", fmt.Sprintf(`{"notes":%q}`, notes))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Queues().Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	drain(t, w)
	ds, err := w.Automations().Decisions(ctx, ev.Key())
	if err != nil || len(ds) != 1 || ds[0].RuleID != r.ID || ds[0].Outcome != automations.Shadow {
		t.Fatalf("decisions: %+v, %v; want the rule's shadow decision (its filter read the whole payload)", ds, err)
	}
	tc, err := tables.New(storage.Account{}, env.ns)
	if err != nil {
		t.Fatal(err)
	}
	_, kept, err := tc.Decisions().List(ctx, ev.Key())
	if err != nil || kept.Blob == "" || len(kept.Event) != 0 {
		t.Fatalf("the decided event: blob %q, %d bytes inline, %v; want it in a blob", kept.Blob, len(kept.Event), err)
	}
	// And it is read back whole from there: explain re-evaluates the filter on it.
	e, err := w.Automations().Explain(ctx, r.ID, ev.Key())
	if err != nil || e.Outcome != automations.Shadow || e.Recorded == nil {
		t.Fatalf("explain: %+v, %v", e, err)
	}
	if n := len(poison(t, w)); n != 0 {
		t.Fatalf("%d events poisoned", n)
	}
}
