//go:build chaos

package chaos

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/webhooks"
)

// The automations part of the run (issue 21): two rules added before the fleet starts — a
// webhook rule whose dedupe key groups events into buckets, and a run rule that starts one
// agent run per occurrence — and an HTTP agent served here that logs every execution it gets.
// The check counts, from storage and from the agent's and the receiver's own logs, one claim,
// one decision per event, one delivery and one Succeeded run per (rule, dedupe key).

const (
	agentName = "chaos-agent"
	// runLease is the replicas' run lease (PLATFORM_CHAOS_RUN_LEASE): short, so that the runs
	// of killed replicas are taken over within the test.
	runLease = 4 * time.Second
	// buckets groups the type-22 events: the webhook rule's dedupe key is the entity id modulo it.
	buckets = 7
)

// rulePlan is what the two rules must do, known from the plan alone (never read back from
// storage): which events each rule decides, and with what dedupe key.
type rulePlan struct {
	webhookRule, runRule, endpoint string
	bucketOf                       map[string]string // type-22 event key → its dedupe key, "bucket-N"
	runEvents                      map[string]bool   // type-12 event keys the run rule's filter passes
	refused                        map[string]bool   // type-12 event keys its filter refuses
}

// addRules adds the two rules with the CLI, as an operator would.
func addRules(t *testing.T, binary string, env []string, endpoint string) *rulePlan {
	dir := t.TempDir()
	add := func(name, rule string) string {
		file := filepath.Join(dir, name+".json")
		if err := os.WriteFile(file, []byte(rule), 0o600); err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSpace(run(t, binary, env, "automations", "add", file))
		if !strings.HasPrefix(id, "rul") {
			t.Fatalf("automations add %s printed %q, want a rule id", name, id)
		}
		return id
	}
	return &rulePlan{
		endpoint: endpoint,
		webhookRule: add("webhook", fmt.Sprintf(`{"name":"chaos: deliver each bucket of type-22 events once","businessUnitId":%d,"eventTypes":[22],
			"dedupeKey":"'bucket-' + string(event.entity.id %% %d)","action":{"webhook":{"endpointId":%q}}}`, businessUnit, buckets, endpoint)),
		runRule: add("run", fmt.Sprintf(`{"name":"chaos: a run per Run event","businessUnitId":%d,"eventTypes":[12],
			"filter":"event.payload.firstName.startsWith('Run')","action":{"run":{"agent":%q}}}`, businessUnit, agentName)),
		bucketOf: map[string]string{}, runEvents: map[string]bool{}, refused: map[string]bool{},
	}
}

// bucketed notes a type-22 event of entity id, and the delivery its bucket must make (once,
// whichever event of the bucket claims it).
func (p *rulePlan) bucketed(want *expected, eventKey string, id int64) {
	key := fmt.Sprintf("bucket-%d", id%buckets)
	p.bucketOf[eventKey] = key
	want.messages[p.deliveryKey(key)] = "webhook"
}

// effectToken is the contract's (docs/contracts.md, "Keys"): {ruleId}.g{generation}.{the first
// 16 bytes of SHA-256 of the dedupe key, in hex} — written here, not taken from the worker.
func effectToken(rule, key string) string {
	sum := sha256.Sum256([]byte(key))
	return rule + ".g1." + hex.EncodeToString(sum[:16])
}

func (p *rulePlan) deliveryKey(bucket string) string {
	return platform.DeliveryKey(p.endpoint, "automation:"+effectToken(p.webhookRule, bucket))
}

// runID is the contract's run id of the run rule's effect for an event: "run_" + 32 hex of
// SHA-256 of agent, NUL, "automation:" + token.
func (p *rulePlan) runID(eventKey string) string {
	sum := sha256.Sum256([]byte(agentName + "\x00automation:" + effectToken(p.runRule, eventKey)))
	return "run_" + hex.EncodeToString(sum[:16])
}

// ---- the agent ----------------------------------------------------------------------------------

// agent is the HTTP agent the replicas call (PLATFORM_AGENTS): each execution takes 0.5-3 s,
// so kills land mid-run. It checks the Standard Webhooks signature itself, logs every
// execution, and applies its side effect idempotently by run id: the set of runs it completed.
type agent struct {
	URL, secret string

	mu     sync.Mutex
	log    []*execution
	done   map[string]int // run id → executions that completed it (the side effect is the key)
	forged int
}

// execution is one request: its run and epoch, when it began and ended (answered, or its
// connection cut by the death of the replica that sent it).
type execution struct {
	run        string
	epoch      int
	began, end time.Time
	completed  bool
}

func startAgent(t *testing.T) *agent {
	a := &agent{secret: webhooks.NewSecret(), done: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(srv.Close)
	a.URL = srv.URL + "/run"
	return a
}

// env is what the replicas (and the CLI that validates the run rule) need to call the agent.
func (a *agent) env() []string {
	return []string{"PLATFORM_AGENTS=" + agentName + "=" + a.URL, "PLATFORM_AGENT_SECRET=" + a.secret,
		"PLATFORM_CHAOS_RUN_LEASE=" + runLease.String(), "PLATFORM_CHAOS_RUN_ATTEMPTS=1000"}
}

func (a *agent) serve(rw http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20)) // to EOF: the server then notices a cut connection
	var in struct {
		RunID string `json:"runId"`
		Epoch int    `json:"epoch"`
	}
	if err != nil || json.Unmarshal(body, &in) != nil || !a.verify(req.Header, body, in.RunID, in.Epoch) {
		a.mu.Lock()
		a.forged++
		a.mu.Unlock()
		rw.WriteHeader(http.StatusUnauthorized)
		return
	}
	ex := &execution{run: in.RunID, epoch: in.Epoch, began: time.Now()}
	a.mu.Lock()
	a.log = append(a.log, ex)
	a.mu.Unlock()
	select {
	case <-req.Context().Done():
		a.mu.Lock()
		ex.end = time.Now()
		a.mu.Unlock()
		return
	case <-time.After(500*time.Millisecond + rand.N(2500*time.Millisecond)):
	}
	a.mu.Lock()
	ex.end, ex.completed = time.Now(), true
	a.done[in.RunID]++
	a.mu.Unlock()
	rw.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(rw, `{"completed":%q}`, in.RunID)
}

// verify checks a request as a Standard Webhooks receiver does (standardwebhooks.com, written
// here from the spec): webhook-id is "{runId}:{epoch}", the timestamp is recent, and one
// v1 signature is the HMAC-SHA256 of "{id}.{timestamp}.{body}" keyed with the secret's bytes.
func (a *agent) verify(h http.Header, body []byte, run string, epoch int) bool {
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id != run+":"+strconv.Itoa(epoch) || err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a.secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

// ---- the check ----------------------------------------------------------------------------------

// ruleCounts is what the automations check found, for the summary line.
type ruleCounts struct {
	claims, decisions, deliveries, runs, executions, cut, takeovers, overlaps int
}

func (c ruleCounts) String() string {
	return fmt.Sprintf("rules=2 claims=%d decisions=%d ruleDeliveries=%d runs=%d executions=%d cut=%d takeovers=%d overlaps=%d",
		c.claims, c.decisions, c.deliveries, c.runs, c.executions, c.cut, c.takeovers, c.overlaps)
}

// checkAutomations checks claims, decisions, runs and the agent's executions against the plan.
// The rule's webhook deliveries are in want.messages: check counts them with the others.
func checkAutomations(t *testing.T, ns platform.Namespace, p *rulePlan, a *agent, hooks *testenv.WebhookReceiver, v *verdict) ruleCounts {
	var c ruleCounts

	// (1) One claim per (rule, dedupe key), none other; each names its effect.
	wantClaims := map[string]map[string]string{p.webhookRule: {}, p.runRule: {}} // rule → dedupe key → effect
	for _, key := range p.bucketOf {
		wantClaims[p.webhookRule][key] = p.deliveryKey(key)
	}
	for key := range p.runEvents {
		wantClaims[p.runRule][key] = p.runID(key)
	}
	claimedBy := map[string]string{} // bucket → the event whose claim it is
	seen := map[string]int{}
	for _, e := range listTable(t, ns.Table(tables.TableAutomationClaims)) {
		rule, key, event, effect := str(e["PartitionKey"]), str(e["DedupeKey"]), str(e["EventKey"]), str(e["EffectID"])
		c.claims++
		seen[rule+"\x00"+key]++
		want, ok := wantClaims[rule][key]
		switch {
		case !ok || !strings.HasPrefix(str(e["RowKey"]), "g000001-"):
			v.duplicated++
			v.problem("a claim nobody asked for: rule %s, row %s, key %q, by %s", rule, str(e["RowKey"]), key, event)
		case effect != want:
			v.problem("claim of rule %s key %q names effect %s, want %s", rule, key, effect, want)
		case rule == p.webhookRule && p.bucketOf[event] != key:
			v.problem("claim of %q was taken by event %s, which is not of that bucket", key, event)
		case rule == p.runRule && event != key:
			v.problem("run claim %q was taken by event %s", key, event)
		}
		if rule == p.webhookRule {
			claimedBy[key] = event
		}
	}
	for rule, keys := range wantClaims {
		for key := range keys {
			switch n := seen[rule+"\x00"+key]; {
			case n == 0:
				v.lost++
				v.problem("rule %s never claimed %q", rule, key)
			case n > 1:
				v.duplicated++
				v.problem("rule %s claimed %q %d times", rule, key, n)
			}
		}
	}

	// (2) Every event of the rules' types has its decision: the bucket's claimer fired (its
	// delivery), the others were deduped; a Run event fired (its run), another was filtered out.
	type decision struct{ outcome, detail string }
	decided := map[string]decision{} // escaped event key + NUL + rule → decision
	// An event's decisions are a JSON array in its row d0 (tables.Decisions: property
	// Decisions, continued in Decisions1… as DecisionChunks says): read here as stored, not
	// through the worker's own reader.
	for _, e := range listTable(t, ns.Table(tables.TableAutomationDecisions)) {
		chunks, _ := e["DecisionChunks"].(float64)
		for i := range int(chunks) {
			name := "Decisions"
			if i > 0 {
				name = fmt.Sprintf("Decisions%d", i)
			}
			var ds []struct {
				Rule    string `json:"r"`
				Outcome string `json:"o"`
				Detail  string `json:"d"`
			}
			if err := json.Unmarshal([]byte(str(e[name])), &ds); err != nil {
				v.problem("decisions %s of %s: %v", name, str(e["PartitionKey"]), err)
				continue
			}
			for _, d := range ds {
				if d.Rule != p.webhookRule && d.Rule != p.runRule {
					continue
				}
				c.decisions++
				decided[str(e["PartitionKey"])+"\x00"+d.Rule] = decision{d.Outcome, d.Detail}
			}
		}
	}
	expect := func(event, rule, outcome, detail string) {
		k := platform.EscapeKey(event) + "\x00" + rule
		d, ok := decided[k]
		delete(decided, k)
		switch {
		case !ok:
			v.lost++
			v.problem("rule %s recorded no decision on event %s", rule, event)
		case d.outcome != outcome || (detail != "" && d.detail != detail):
			v.problem("rule %s decided %s (%s) on event %s, want %s %s", rule, d.outcome, d.detail, event, outcome, detail)
		}
	}
	for event, key := range p.bucketOf {
		if claimedBy[key] == event {
			expect(event, p.webhookRule, "fired", p.deliveryKey(key))
		} else {
			expect(event, p.webhookRule, "deduped", "")
		}
	}
	for event := range p.runEvents {
		expect(event, p.runRule, "fired", p.runID(event))
	}
	for event := range p.refused {
		expect(event, p.runRule, "filter_false", "")
	}
	for k, d := range decided {
		event, rule, _ := strings.Cut(k, "\x00")
		v.duplicated++
		v.problem("rule %s decided %s on event %s, which the plan never published", rule, d.outcome, event)
	}

	// (3) The receiver got each bucket's delivery: check compares each key with its count.
	got, _ := hooks.Received()
	for key := range wantClaims[p.webhookRule] {
		if got[p.deliveryKey(key)] > 0 {
			c.deliveries++
		}
	}

	// (4) One run per Run event, Succeeded, none other; the agent completed exactly those.
	wantRuns := map[string]string{} // run id → event key
	for event := range p.runEvents {
		wantRuns[p.runID(event)] = event
	}
	planned := map[string]bool{}
	for id := range wantRuns {
		planned[id] = true
	}
	for _, e := range listTable(t, ns.Table(tables.TableAgentRuns)) {
		id := str(e["PartitionKey"])
		if str(e["RowKey"]) != "run" {
			continue // a singleton agent's row
		}
		c.runs++
		epoch := num(e["Epoch"])
		c.takeovers += max(epoch-1, 0)
		event, ok := wantRuns[id]
		delete(wantRuns, id)
		switch {
		case !ok:
			v.duplicated++
			v.problem("a run nobody asked for: %s (%s, key %q)", id, str(e["State"]), str(e["Key"]))
		case str(e["State"]) != "Succeeded":
			v.lost++
			v.problem("run %s of event %s is %s after %d attempts: %s", id, event, str(e["State"]), num(e["Attempts"]), str(e["Error"]))
		case str(e["EventKey"]) != event || str(e["RuleId"]) != p.runRule:
			v.problem("run %s says it was started by rule %s for event %s, want %s for %s", id, str(e["RuleId"]), str(e["EventKey"]), p.runRule, event)
		}
	}
	for id, event := range wantRuns {
		v.lost++
		v.problem("no run %s for event %s", id, event)
	}

	// (5) The agent's own log: its side effect exactly once per expected run, and no run
	// executed by two replicas at once while the earlier one's lease could still hold.
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.forged > 0 {
		v.problem("%d agent requests whose signature does not verify", a.forged)
	}
	for event := range p.runEvents {
		if a.done[p.runID(event)] == 0 {
			v.lost++
			v.problem("the agent never completed run %s (event %s)", p.runID(event), event)
		}
	}
	byRun := map[string][]*execution{}
	for _, ex := range a.log {
		c.executions++
		if !ex.completed {
			c.cut++
		}
		byRun[ex.run] = append(byRun[ex.run], ex)
	}
	for id := range a.done {
		if !planned[id] {
			v.duplicated++
			v.problem("the agent completed run %s, which the plan never asked for", id)
		}
	}
	for id, exs := range byRun {
		c.overlaps += checkExecutions(t, id, exs, v)
	}
	return c
}

// checkExecutions checks one run's executions: one per epoch, epochs in the order they
// began, and none beginning while an earlier one was still going unless that one's lease
// could have expired by then. The lease was taken just before the earlier execution began
// (at most leaseSlack before) and lasts runLease without renewal: a later start before
// began - leaseSlack + runLease is a second replica past no expired lease. An overlap after
// that is legal (a runner whose heartbeats failed stops its agent at its next beat); counted.
func checkExecutions(t *testing.T, id string, exs []*execution, v *verdict) (overlaps int) {
	const leaseSlack = 500 * time.Millisecond
	sort.Slice(exs, func(i, j int) bool { return exs[i].began.Before(exs[j].began) })
	epochs := map[int]bool{}
	for i, ex := range exs {
		if epochs[ex.epoch] {
			v.duplicated++
			v.problem("run %s: epoch %d executed twice", id, ex.epoch)
		}
		epochs[ex.epoch] = true
		for _, earlier := range exs[:i] {
			if earlier.epoch >= ex.epoch {
				v.problem("run %s: epoch %d began after epoch %d", id, ex.epoch, earlier.epoch)
			}
			end := earlier.end
			if end.IsZero() {
				end = time.Now()
			}
			if !ex.began.Before(end) {
				continue
			}
			if ex.began.Before(earlier.began.Add(runLease - leaseSlack)) {
				v.duplicated++
				v.problem("run %s: epoch %d began %s after epoch %d, which was still running under its lease (%s)",
					id, ex.epoch, ex.began.Sub(earlier.began).Round(time.Millisecond), earlier.epoch, runLease)
				continue
			}
			overlaps++
			t.Logf("run %s: epoch %d began while epoch %d (begun %s before) was still running, past its lease",
				id, ex.epoch, earlier.epoch, ex.began.Sub(earlier.began).Round(time.Millisecond))
		}
	}
	return overlaps
}

func num(v any) int {
	f, _ := v.(float64)
	return int(f)
}
