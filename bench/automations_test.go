//go:build bench

package bench

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/settings"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/automations"
)

var flagAutomations = flag.Int("automations", 200, "events in the automations scenario (each decided by 100 rules; measured twice: with the rules and without)")

// The automations scenario: 100 enabled rules on the events' type, as the issue sizes it.
// matchingRules of them pass their filter and decide in shadow mode (the filter and the
// dedupe key evaluated, "shadow" recorded, no action); the others' filters are false.
//
// Budgets: one storage request for the decisions of one event (the issue's), and 50 µs of the
// worker's CPU per (rule, event) for the concern as a whole — evaluating and storing the
// decisions, the extra request and its share of garbage collection. The 10 µs holds
// for evaluating (BenchmarkEvaluate100Rules: 3-6 µs); storing costs the rest, most of it the
// table SDK decoding and re-encoding the decision row's JSON. 50 is a guard against a
// regression (a row per rule cost 159-209 µs), not a measure: the figure is 13-18 µs over
// 1,000 events, and 21-29 µs over the 100 of .ci/run's small bench, on a busy machine.
const (
	benchRules     = 100
	matchingRules  = 10
	cpuBudgetUS    = 50.0
	decisionBudget = 1.0
)

// A realistic payload: a dozen fields, a list of strings, a list of objects.
func automationsBody(i int) string {
	return fmt.Sprintf(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityGuid":"a0000000-0000-4000-8000-%012d","businessUnitId":42,`+
		`"createdOn":%q,"changedFields":["status","amount"],"payload":{"firstName":"Ada","lastName":"Lovelace","email":"ada%d@example.com",`+
		`"country":"FR","status":"open","amount":%d.5,"projectId":"p1","priority":3,"tags":["vip","beta","eu"],`+
		`"items":[{"sku":"SKU-1","qty":2},{"sku":"SKU-2","qty":1},{"sku":"SKU-3","qty":5}]}}`, i, createdOn(i), i, 100+i%50)
}

// ruleFilters are the shapes of the false filters (formatted with the rule's number): payload
// comparisons, &&, in, string functions, comprehensions. matchingFilters are true over every
// event above.
var (
	ruleFilters = []string{
		`event.payload.status == 'closed-%d'`,
		`event.payload.country in ['DE', 'IT', 'X%d'] && event.payload.amount > 100.0`,
		`event.payload.email.endsWith('@example-%d.com')`,
		`event.payload.firstName.startsWith('Z') && event.payload.lastName.contains('%d')`,
		`'vip-%d' in event.payload.tags`,
		`event.payload.items.exists(i, i.sku == 'SKU-X%d')`,
		`'status' in event.changedFields && event.payload.status == 'resolved-%d'`,
		`event.payload.priority > 3 + %d && event.actor != ''`,
		`event.entity.guid.startsWith('%d-') || event.payload.email.contains('+%d@')`,
		`event.payload.country == 'FR' && event.payload.amount > 100.0 && size(event.payload.items) > %d + 10`,
	}
	matchingFilters = []string{
		`event.payload.country == 'FR' && event.payload.amount > 100.0`,
		`'vip' in event.payload.tags && event.payload.email.endsWith('@example.com')`,
		`event.payload.items.exists(i, i.sku == 'SKU-2' && i.qty >= 1)`,
		`'status' in event.changedFields && event.payload.status in ['open', 'reopened']`,
	}
	dedupeKeys = []string{
		`event.entity.guid + ':' + event.payload.status`,
		`event.payload.email`,
		`event.key`,
		`event.tenant + '/' + event.payload.projectId + '/' + event.entity.guid`,
	}
)

// addRules stores the scenario's rules in the worker's settings database, through the
// automations API (each compiled and checked as the CLI's would be), and returns their ids.
func addRules(t *testing.T, w *workerProc) []string {
	ctx := context.Background()
	db, err := settings.Open(ctx, filepath.Join(w.dir, "settings.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := automations.New(automations.Config{}, automations.Deps{Store: db})
	ids := make([]string, benchRules)
	for i := range ids {
		nr := automations.NewRule{Name: fmt.Sprintf("bench %d", i), BusinessUnitID: 42, EventTypes: []int{12},
			DedupeKey: dedupeKeys[i%len(dedupeKeys)], Action: automations.Action{Publish: &automations.PublishAction{EventTypeID: 77}}}
		if i < matchingRules {
			nr.Filter, nr.Shadow = matchingFilters[i%len(matchingFilters)], true
		} else {
			f := ruleFilters[i%len(ruleFilters)]
			nr.Filter = fmt.Sprintf(f, slices.Repeat([]any{i + 1}, strings.Count(f, "%d"))...)
		}
		r, err := svc.Add(ctx, nr, "bench")
		if err != nil {
			t.Fatalf("rule %d: %v", i, err)
		}
		ids[i] = r.ID
	}
	return ids
}

// automationsScenario is the history scenario's work on richer events, with the rules
// (rules) or without (nil: the history-only phase it is measured against).
func automationsScenario(n int, rules bool) scenario {
	sc := historyScenario(n)
	sc.body = automationsBody
	if !rules {
		sc.name = "automations-history-only"
		return sc
	}
	sc.name = "automations"
	sc.prepare = func(t *testing.T, w *workerProc) { addRules(t, w) }
	// An event's effects are its history row and its decisions (written at once by the two
	// concerns): it is done at the later of the two. The decisions are read from each event's
	// decision row, and the first time they are all there, a few events' decisions are
	// checked whole: 100 decisions, the matching rules in shadow, the others
	// filter_false — a filter_error would be a cheaper evaluation than the one claimed.
	sc.effects = func(t *testing.T, az *azurite, ns platform.Namespace, _ *testenv.SMTPServer) func(map[string]time.Time) (map[string]time.Time, bool) {
		hist := tableClient(t, az.acct, ns.Table(platform.TableEntityHistory))
		decided := tableClient(t, az.acct, ns.Table(tables.TableAutomationDecisions))
		tc, err := tables.New(az.acct, ns)
		if err != nil {
			t.Fatal(err)
		}
		checked := false
		return func(keys map[string]time.Time) (map[string]time.Time, bool) {
			if !drained(t, az, ns) {
				return nil, false
			}
			written, ok := pick(rowTimes(t, hist), keys)
			if !ok {
				return nil, false
			}
			at := decisionTimes(t, decided)
			for k, w := range written {
				d, ok := at[platform.EscapeKey(k)]
				if !ok {
					return nil, false
				}
				if d.After(w) {
					written[k] = d
				}
			}
			if !checked {
				checked = true
				for _, k := range slices.Sorted(maps.Keys(keys))[:min(3, len(keys))] {
					checkDecisions(t, tc, k)
				}
			}
			return written, true
		}
	}
	return sc
}

// decisionTimes is the Timestamp of each event's decision row (d0: all 100 rules' decisions)
// by partition (escaped event key).
func decisionTimes(t *testing.T, decided *aztables.Client) map[string]time.Time {
	return timestamps(t, decided, "RowKey eq 'd0'", "PartitionKey")
}

func checkDecisions(t *testing.T, tc *tables.Client, eventKey string) {
	ds, _, err := tc.Decisions().List(context.Background(), eventKey)
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for _, d := range ds {
		outcomes[d.Outcome]++
	}
	if want := map[string]int{automations.Shadow: matchingRules, automations.FilterFalse: benchRules - matchingRules}; !maps.Equal(outcomes, want) {
		t.Errorf("event %s: decisions %v, want %v: the bench would not measure what it says", eventKey, outcomes, want)
	}
}

// runAutomations measures the automations scenario against a history-only phase on the same
// events in the same run, and fails over the budgets. It returns the summary line.
func runAutomations(t *testing.T, binary string, events int) string {
	var base, auto *result
	if !t.Run("automations-history-only", func(t *testing.T) { base = run(t, binary, automationsScenario(events, false)) }) ||
		!t.Run("automations-100-rules", func(t *testing.T) { auto = run(t, binary, automationsScenario(events, true)) }) {
		t.FailNow()
	}
	for _, r := range []*result{base, auto} {
		var kinds []string
		for _, k := range slices.Sorted(maps.Keys(r.perEvent)) {
			kinds = append(kinds, fmt.Sprintf("%s=%.3f (%.1f ms)", k, r.perEvent[k], r.meanMS[k]))
		}
		t.Logf("%s: %d events drained in %s (%.0f/s); per event (mean time of a request): %s; worker CPU %.2fs (%.2fs of it to start), Azurite CPU %.2fs; p50 %s p99 %s at %.0f/s",
			r.scenario, r.events, r.drainSpan.Round(time.Millisecond), r.throughput, strings.Join(kinds, " "),
			r.workerCPU, r.startCPU, r.azuriteCPU, r.p50, r.p99, r.paced)
	}
	// The decisions' requests are the table writes and transactions the rules added (one
	// upsert of the event's decision row; a transaction past 240 rules); the worker's CPU for
	// them, what the drain cost beyond the history-only drain of the same events (each less
	// what a fresh worker takes to start: compiling the rules is not evaluating them).
	tableWrites := func(r *result) float64 {
		return r.perEvent[storage.KindTableBatch] + r.perEvent[storage.KindTableWrite]
	}
	decisionReqs := tableWrites(auto) - tableWrites(base)
	cpuUS := 1e6 * ((auto.workerCPU - auto.startCPU) - (base.workerCPU - base.startCPU)) / float64(benchRules*events)
	line := fmt.Sprintf("bench scenario=automations events=%d rules=%d throughput=%.0f/s history_only=%.0f/s ratio=%.2f decision_requests_per_event=%.2f tx_per_event=%.2f history_tx_per_event=%.2f cpu_us_per_rule_event=%.2f p50_ms=%.0f p99_ms=%.0f rss_mb=%.0f",
		events, benchRules, auto.throughput, base.throughput, auto.throughput/base.throughput, decisionReqs, auto.txPerEvent, base.txPerEvent,
		cpuUS, ms(auto.p50), ms(auto.p99), auto.rssMB)
	t.Log(line)
	// One per event. Every attempt is counted, so a retried request (a 503 from a busy
	// Azurite) adds a little; decisions split in two would add a whole one per event (every
	// event has all 100 rules' decisions), and fewer than one is events left undecided.
	if decisionReqs > decisionBudget+0.5 || decisionReqs < decisionBudget-0.01 {
		t.Errorf("the decisions of one event took %.3f requests, want %.0f whatever the number of rules", decisionReqs, decisionBudget)
	}
	if cpuUS > cpuBudgetUS {
		t.Errorf("%.2f µs of the worker's CPU per (rule, event), over the budget of %.0f µs", cpuUS, cpuBudgetUS)
	}
	return line
}
