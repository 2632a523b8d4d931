package automations

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/platform/platform"
)

// benchEvent is a realistic event for the rules below: a dozen payload fields, a list of
// strings and a list of objects.
const benchEvent = `{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityGuid":"b0000000-0000-4000-8000-000000000001","businessUnitId":42,` +
	`"createdOn":"2026-11-22T10:00:00Z","changedFields":["status","amount"],"payload":{"firstName":"Ada","lastName":"Lovelace",` +
	`"email":"ada@example.com","country":"FR","status":"open","amount":120.5,"projectId":"p1","priority":3,"tags":["vip","beta","eu"],` +
	`"items":[{"sku":"SKU-1","qty":2},{"sku":"SKU-2","qty":1},{"sku":"SKU-3","qty":5}]}}`

// benchFilters are the shapes of filter the rules use, each formatted with the rule's number:
// comparisons of payload fields, &&, in, string functions, comprehensions. Over benchEvent,
// each is false for every rule number but 0 < n.
var benchFilters = []string{
	`event.payload.status == 'closed-%d'`,
	`event.payload.country in ['DE', 'IT', 'X%d'] && event.payload.amount > 100.0`,
	`event.payload.email.endsWith('@example-%d.com')`,
	`event.payload.firstName.startsWith('Z') && event.payload.lastName.contains('%d')`,
	`'vip-%d' in event.payload.tags`,
	`event.payload.items.exists(i, i.sku == 'SKU-X%d')`,
	`'status' in event.changedFields && event.payload.status == 'resolved-%d'`,
	`event.payload.priority > 3 + %d && event.actor != ''`,
	`event.entity.guid.startsWith('%d-') || event.payload.email.contains('+%d@')`,
	`event.payload.country == 'FR' && event.payload.amount > 100.0 && event.payload.status == 'open' && size(event.payload.items) > %d + 10`,
}

// benchMatching are filters true over benchEvent, for the rules that fire.
var benchMatching = []string{
	`event.payload.country == 'FR' && event.payload.amount > 100.0`,
	`'vip' in event.payload.tags && event.payload.email.endsWith('@example.com')`,
	`event.payload.items.exists(i, i.sku == 'SKU-2' && i.qty >= 1)`,
	`'status' in event.changedFields && event.payload.status in ['open', 'reopened']`,
}

// benchDedupe are the dedupe key expressions, one per rule in turn.
var benchDedupe = []string{
	`event.entity.guid + ':' + event.payload.status`,
	`event.payload.email`,
	`event.key`,
	`event.tenant + '/' + event.payload.projectId + '/' + event.entity.guid`,
}

// benchRules compiles n rules on event type 12, the first matching of them with a filter true
// over benchEvent and the others false; all in shadow mode, so that deciding them reads and
// writes nothing (a filter_false stops before any storage, a shadow decision after the dedupe
// key).
func benchRules(tb testing.TB, n, matching int) []*compiled {
	out := make([]*compiled, n)
	for i := range out {
		r := &Rule{ID: fmt.Sprintf("rul%03d", i), Version: 1, BusinessUnitID: 42, Enabled: true, Shadow: true, EventTypes: []int{12},
			DedupeKey: benchDedupe[i%len(benchDedupe)], Action: Action{Publish: &PublishAction{EventTypeID: 77}}}
		if i < matching {
			r.Filter = benchMatching[i%len(benchMatching)]
		} else {
			r.Filter = fmt.Sprintf(benchFilters[i%len(benchFilters)], i+1)
		}
		if err := r.checkShape(); err != nil {
			tb.Fatal(err)
		}
		cr, err := compileRule(r)
		if err != nil {
			tb.Fatalf("rule %d: %v", i, err)
		}
		out[i] = cr
	}
	return out
}

// BenchmarkEvaluate100Rules is what deciding one event costs the CPU under 100 rules of its
// type: decideAll itself (the activation built once, the payload decoded once, each rule's
// filter and, where it is true, its dedupe key), with no storage. Reported per (rule, event).
//
//	go test ./worker/automations -run '^$' -bench Evaluate100Rules -benchmem
func BenchmarkEvaluate100Rules(b *testing.B) {
	ev, err := platform.DecodeEvent([]byte(benchEvent))
	if err != nil {
		b.Fatal(err)
	}
	const rules = 100
	for _, c := range []struct {
		name     string
		matching int
	}{
		{"mostFalse", 10},   // the bench phase's mix: 10 fire (in shadow), 90 are false
		{"allMatch", rules}, // every filter true: every dedupe key evaluated too
		{"noneMatch", 0},    // every filter false
	} {
		b.Run(c.name, func(b *testing.B) {
			s := New(Config{}, Deps{})
			crs := benchRules(b, rules, c.matching)
			ctx := context.Background()
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			for b.Loop() {
				ds, err := s.decideAll(ctx, ev, crs)
				if err != nil || len(ds) != rules {
					b.Fatalf("%d decisions, %v", len(ds), err)
				}
			}
			// Wall time per (rule, event), and the process's CPU time (the garbage collector's
			// included, as the bench phase counts it): on a loaded machine the CPU figure is the
			// steadier one.
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rules), "ns/rule-event")
			b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N*rules), "cpu-ns/rule-event")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestBenchRulesDecideAsTheBenchmarkSays keeps the benchmark honest: the rules it calls
// matching fire (in shadow, with their dedupe key), the others are filter_false — none is a
// filter_error, which would be cheaper than a real evaluation.
func TestBenchRulesDecideAsTheBenchmarkSays(t *testing.T) {
	ev, err := platform.DecodeEvent([]byte(benchEvent))
	if err != nil {
		t.Fatal(err)
	}
	crs := benchRules(t, 100, 10)
	ds, err := New(Config{}, Deps{}).decideAll(context.Background(), ev, crs)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range ds {
		want := FilterFalse
		if i < 10 {
			want = Shadow
		}
		if d.Outcome != want || (want == Shadow && d.DedupeKey == "") {
			t.Errorf("rule %d (%s): %+v, want %s", i, crs[i].rule.Filter, d, want)
		}
	}
}
