package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/runs"
	"github.com/platform/platform/worker/webhooks"
)

// runsWorker starts a worker with agents and a fast runner; blocking agents are released
// (release closed) before the worker stops.
func runsWorker(t *testing.T, leaseTTL time.Duration, agents map[string]runs.Agent) (*worker.Worker, chan struct{}) {
	t.Helper()
	w := newWorker(t, worker.Config{Agents: agents, WebhookAllowlist: []string{"127.0.0.1"},
		Runs: runs.Config{LeaseTTL: leaseTTL, RetryBackoff: 100 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond}})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the worker's stop
	return w, release
}

func runOf(t *testing.T, w *worker.Worker, id string) *runs.Run {
	t.Helper()
	r, err := w.Runs().Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func waitState(t *testing.T, w *worker.Worker, id string, want runs.State) *runs.Run {
	t.Helper()
	var r *runs.Run
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("run %s %s", id, want), func() bool {
		r = runOf(t, w, id)
		return r.State == want
	})
	return r
}

func start(t *testing.T, w *worker.Worker, agent, key string, input string) *runs.Run {
	t.Helper()
	var in json.RawMessage
	if input != "" {
		in = json.RawMessage(input)
	}
	r, _, err := w.Runs().Start(context.Background(), runs.StartRequest{Agent: agent, Key: key, BusinessUnitID: 1, Input: in,
		Origin: runs.Origin{RuleID: "rule-1", RuleVersion: 2, EventKey: "11:1:x:2026-11-22T10:00:00.0000000Z:1", CorrelationID: "corr-1"}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Two Start calls at once for one (agent, key), and the same Start again later (a redelivered
// event): one run, executed once, Succeeded with the agent's output.
func TestOneRunPerAgentAndKeyWhateverTheStarts(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	w, _ := runsWorker(t, 3*time.Second, map[string]runs.Agent{"echo": runs.AgentFunc(func(_ context.Context, r *runs.Run) (json.RawMessage, error) {
		calls.Add(1)
		return json.RawMessage(fmt.Sprintf(`{"got":%s,"epoch":%d}`, r.Input, r.Epoch)), nil
	})})
	ctx := context.Background()
	key := "ticket/42?#\x01 any key" // characters Tables refuse in keys
	var created atomic.Int32
	var wg sync.WaitGroup
	ids := make([]string, 2)
	for i := range 2 {
		wg.Go(func() {
			r, c, err := w.Runs().Start(ctx, runs.StartRequest{Agent: "echo", Key: key, BusinessUnitID: 1, Input: json.RawMessage(`{"n":1}`)})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = r.ID
			if c {
				created.Add(1)
			}
		})
	}
	wg.Wait()
	if created.Load() != 1 || ids[0] != ids[1] || ids[0] != runs.RunID("echo", key) {
		t.Fatalf("two concurrent starts: %d created, ids %q; want 1 created, both %s", created.Load(), ids, runs.RunID("echo", key))
	}
	r := waitState(t, w, ids[0], runs.Succeeded)
	if string(r.Output) != `{"got":{"n":1},"epoch":1}` || r.Attempts != 1 || r.Epoch != 1 || r.FinishedAt.IsZero() || r.StartedAt.IsZero() {
		t.Errorf("run %+v: want output {got:{n:1},epoch:1} after 1 attempt, epoch 1, timed", r)
	}
	again, c, err := w.Runs().Start(ctx, runs.StartRequest{Agent: "echo", Key: key, BusinessUnitID: 1, Input: json.RawMessage(`{"n":2}`)})
	if err != nil || c || again.ID != r.ID || again.State != runs.Succeeded {
		t.Fatalf("a redelivered start: %+v created %t err %v; want the same Succeeded run, not created", again, c, err)
	}
	// The key is unit 1's run: another unit's start with it gets neither the run nor its input.
	if other, _, err := w.Runs().Start(ctx, runs.StartRequest{Agent: "echo", Key: key, BusinessUnitID: 2}); !errors.Is(err, platform.ErrInvalidInput) || other != nil {
		t.Fatalf("another unit's start of the same key: %+v, %v; want refused", other, err)
	}
	drain(t, w)
	if n := calls.Load(); n != 1 {
		t.Errorf("the agent ran %d times, want 1", n)
	}
	if _, _, err := w.Runs().Start(ctx, runs.StartRequest{Agent: "nobody", Key: "k", BusinessUnitID: 1}); !errors.Is(err, platform.ErrInvalidInput) {
		t.Errorf("start of an unknown agent: %v, want ErrInvalidInput", err)
	}
	if w.Runs().Known("nobody") || !w.Runs().Known("echo") {
		t.Error("Known: want echo known, nobody not")
	}
}

// A failing agent: RetryWait between attempts, Failed after MaxAttempts (3), with the last
// error; the agent saw attempts 1, 2, 3.
func TestAFailingRunIsRetriedThenFails(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var attempts []int
	w, _ := runsWorker(t, 3*time.Second, map[string]runs.Agent{"flaky": runs.AgentFunc(func(_ context.Context, r *runs.Run) (json.RawMessage, error) {
		mu.Lock()
		attempts = append(attempts, r.Attempts)
		mu.Unlock()
		return nil, fmt.Errorf("boom %d", r.Attempts)
	})})
	r := start(t, w, "flaky", "k1", "")
	waitState(t, w, r.ID, runs.RetryWait)
	r = waitState(t, w, r.ID, runs.Failed)
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(attempts) != "[1 2 3]" || r.Attempts != 3 || !strings.Contains(r.Error, "boom 3") {
		t.Errorf("attempts %v, run %d attempts, error %q; want [1 2 3], 3, boom 3", attempts, r.Attempts, r.Error)
	}
}

// HTTP agents: each request is signed (checked here from the Standard Webhooks spec, not with
// the worker's code) and carries the run; a 2xx body is the output; a 4xx fails at once.
func TestHTTPAgentsAreSignedAndTheirAnswerIsTheResult(t *testing.T) {
	t.Parallel()
	secret := webhooks.NewSecret()
	var mu sync.Mutex
	var bodies []map[string]any
	var forged, refusedCalls int
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := verifyStandardWebhook(secret, req.Header, body, time.Now()); err != nil {
			forged++
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		if req.URL.Path == "/refuse" {
			refusedCalls++
			rw.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		bodies = append(bodies, m)
		_, _ = rw.Write([]byte(`{"summary":"done"}`))
	}))
	t.Cleanup(srv.Close)
	w, _ := runsWorker(t, 3*time.Second, map[string]runs.Agent{
		"remote":  runs.HTTPAgent{URL: srv.URL + "/run", Secret: secret},
		"refuser": runs.HTTPAgent{URL: srv.URL + "/refuse", Secret: secret},
	})
	ok := start(t, w, "remote", "k", `{"a":1}`)
	bad := start(t, w, "refuser", "k", "")
	r := waitState(t, w, ok.ID, runs.Succeeded)
	if string(r.Output) != `{"summary":"done"}` {
		t.Errorf("output %s, want the agent's answer", r.Output)
	}
	b := waitState(t, w, bad.ID, runs.Failed)
	if b.Attempts != 1 || !strings.Contains(b.Error, "422") {
		t.Errorf("a 422 agent: %d attempts, error %q; want Failed after 1, naming 422", b.Attempts, b.Error)
	}
	mu.Lock()
	defer mu.Unlock()
	if forged != 0 || refusedCalls != 1 || len(bodies) != 1 {
		t.Fatalf("%d forged, %d refused calls, %d runs; want 0, 1, 1", forged, refusedCalls, len(bodies))
	}
	got := bodies[0]
	origin, _ := got["origin"].(map[string]any)
	if got["runId"] != ok.ID || got["agent"] != "remote" || got["attempt"] != float64(1) || got["epoch"] != float64(1) ||
		fmt.Sprint(got["input"]) != "map[a:1]" || origin["ruleId"] != "rule-1" || origin["correlationId"] != "corr-1" {
		t.Errorf("the agent got %v", got)
	}
}

// An attempt past its timeout ends TimedOut; a cancelled running run has its agent's
// context cancelled at the next heartbeat and stays Cancelled.
func TestTimeoutAndCancelStopTheAgent(t *testing.T) {
	t.Parallel()
	stopped := make(chan string, 4)
	var w *worker.Worker
	var release chan struct{}
	block := runs.AgentFunc(func(ctx context.Context, r *runs.Run) (json.RawMessage, error) {
		select {
		case <-ctx.Done():
			stopped <- r.Key
			return nil, ctx.Err()
		case <-release:
			return json.RawMessage(`"released"`), nil
		}
	})
	w, release = runsWorker(t, 900*time.Millisecond, map[string]runs.Agent{
		"slow":  runs.WithOptions(block, runs.Options{Timeout: 500 * time.Millisecond}),
		"block": block,
	})
	slow := start(t, w, "slow", "timeout", "")
	if r := waitState(t, w, slow.ID, runs.TimedOut); r.Attempts != 1 || !strings.Contains(r.Error, "timed out") {
		t.Errorf("timed out run: %+v", r)
	}
	running := start(t, w, "block", "cancel-me", "")
	waitState(t, w, running.ID, runs.Running)
	if _, err := w.Runs().Cancel(context.Background(), running.ID); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the cancelled run's agent stopped", func() bool {
		for {
			select {
			case k := <-stopped:
				if k == "cancel-me" {
					return true
				}
			default:
				return false
			}
		}
	})
	drain(t, w)
	if r := runOf(t, w, running.ID); r.State != runs.Cancelled || r.Error != "cancelled by request" {
		t.Errorf("cancelled run ended %s (%s), want Cancelled", r.State, r.Error)
	}
	if _, err := w.Runs().Cancel(context.Background(), slow.ID); !errors.Is(err, runs.ErrFinished) {
		t.Errorf("cancel of a TimedOut run: %v, want ErrFinished", err)
	}
}

// A runner whose lease was taken over (by hand here: a higher epoch) cannot write its result:
// its write is refused, and the run ends with the result of the newer epoch's runner.
func TestAStaleEpochCannotWriteItsResult(t *testing.T) {
	t.Parallel()
	first, letGo := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	// A minute's lease: no heartbeat comes in the test's window, so only the result's own
	// conditional write can stop the stale runner.
	w, _ := runsWorker(t, time.Minute, map[string]runs.Agent{"work": runs.AgentFunc(func(ctx context.Context, r *runs.Run) (json.RawMessage, error) {
		if calls.Add(1) == 1 {
			close(first)
			select { // the first runner ignores its context
			case <-letGo:
			case <-time.After(30 * time.Second):
			}
			return json.RawMessage(`"old epoch"`), nil
		}
		return json.RawMessage(fmt.Sprintf(`"epoch %d"`, r.Epoch)), nil
	})})
	ctx := context.Background()
	r := start(t, w, "work", "k", "")
	<-first
	// Take the lease over by hand: epoch 2, another holder, a lease already expired.
	rows := w.Runs().Table()
	cur, etag, err := rows.Get(ctx, r.ID)
	if err != nil || cur.Epoch != 1 || cur.State != runs.Running {
		t.Fatalf("the run before the takeover: %+v, %v", cur, err)
	}
	cur.Epoch, cur.LeaseHolder, cur.LeaseUntil = 2, "someone-else", time.Now().Add(-time.Second)
	if _, err := rows.Update(ctx, cur, etag); err != nil {
		t.Fatal(err)
	}
	// The old runner finishes; its result must be refused.
	close(letGo)
	drain(t, w)
	if got := runOf(t, w, r.ID); got.State != runs.Running || got.Epoch != 2 {
		t.Fatalf("after the stale runner finished: %s at epoch %d, want still Running at epoch 2 (its write refused)", got.State, got.Epoch)
	}
	// The expired lease is taken over by the next delivery: epoch 3 writes its result.
	if err := w.Queues().Enqueue(ctx, platform.QueueAgentRuns, r.ID, 0); err != nil {
		t.Fatal(err)
	}
	got := waitState(t, w, r.ID, runs.Succeeded)
	if string(got.Output) != `"epoch 3"` || got.Epoch != 3 {
		t.Errorf("the run ended %s at epoch %d, want the result of epoch 3", got.Output, got.Epoch)
	}
}

// Input and output over the table's inline limit go to blobs and come back whole.
func TestLargeInputAndOutputGoToBlobsAndBack(t *testing.T) {
	t.Parallel()
	w, _ := runsWorker(t, 3*time.Second, map[string]runs.Agent{"echo": runs.AgentFunc(func(_ context.Context, r *runs.Run) (json.RawMessage, error) {
		return r.Input, nil
	})})
	big := `{"text":"` + strings.Repeat("x", 40_000) + `"}`
	r := start(t, w, "echo", "big", big)
	waitState(t, w, r.ID, runs.Succeeded)
	stored, _, err := w.Runs().Table().Get(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.InputBlob == "" || stored.OutputBlob == "" || len(stored.Input) != 0 || len(stored.Output) != 0 {
		t.Errorf("stored row: input blob %q (%d inline), output blob %q (%d inline); want both in blobs", stored.InputBlob, len(stored.Input), stored.OutputBlob, len(stored.Output))
	}
	if got := runOf(t, w, r.ID); string(got.Input) != big || string(got.Output) != big {
		t.Errorf("read back: input %d bytes, output %d bytes; want both %d", len(got.Input), len(got.Output), len(big))
	}
}

// A singleton agent: a run that starts while another is Running ends Cancelled naming it;
// once that one is over, the next runs.
func TestASingletonAgentRunsOneAtATime(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	w, _ := runsWorker(t, 3*time.Second, map[string]runs.Agent{"solo": runs.WithOptions(runs.AgentFunc(func(ctx context.Context, r *runs.Run) (json.RawMessage, error) {
		if r.Key == "first" {
			select {
			case <-hold:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return json.RawMessage(`"ok"`), nil
	}), runs.Options{Singleton: runs.SingletonSkip})})
	first := start(t, w, "solo", "first", "")
	waitState(t, w, first.ID, runs.Running)
	second := start(t, w, "solo", "second", "")
	if r := waitState(t, w, second.ID, runs.Cancelled); r.Error != "singleton: run "+first.ID+" is running" {
		t.Errorf("second run's reason %q", r.Error)
	}
	close(hold)
	waitState(t, w, first.ID, runs.Succeeded)
	third := start(t, w, "solo", "third", "")
	waitState(t, w, third.ID, runs.Succeeded)
}

// Replay: a new run with the same agent and input, key "#g1", generation 1, the origin kept
// and replayOf recorded; the original stays as it was. A run not over is not replayed.
func TestReplayStartsANewRecordedGeneration(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	w, _ := runsWorker(t, 3*time.Second, map[string]runs.Agent{"echo": runs.AgentFunc(func(_ context.Context, r *runs.Run) (json.RawMessage, error) {
		calls.Add(1)
		return r.Input, nil
	})})
	ctx := context.Background()
	orig := start(t, w, "echo", "k", `{"v":7}`)
	waitState(t, w, orig.ID, runs.Succeeded)
	next, err := w.Runs().Replay(ctx, orig.ID)
	if err != nil {
		t.Fatal(err)
	}
	if next.Key != "k#g1" || next.Generation != 1 || next.Origin.ReplayOf != orig.ID || next.Origin.RuleID != "rule-1" || next.ID == orig.ID {
		t.Fatalf("replay: %+v", next)
	}
	if r := waitState(t, w, next.ID, runs.Succeeded); string(r.Output) != `{"v":7}` {
		t.Errorf("replayed output %s", r.Output)
	}
	again, err := w.Runs().Replay(ctx, next.ID)
	if err != nil || again.Key != "k#g2" || again.Generation != 2 {
		t.Fatalf("replay of the replay: %+v, %v; want k#g2, generation 2", again, err)
	}
	waitState(t, w, again.ID, runs.Succeeded)
	if n := calls.Load(); n != 3 {
		t.Errorf("the agent ran %d times, want 3", n)
	}
	list, err := w.Runs().List(ctx, tables.RunFilter{Agent: "echo", Limit: 10})
	if err != nil || len(list) != 3 || list[0].ID != again.ID || list[2].ID != orig.ID {
		t.Errorf("list: %d runs (%v), want 3, newest first", len(list), err)
	}
}

// agentLog is an agent's own log of its executions, in the order they happened.
type agentLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *agentLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
}

func (l *agentLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (l *agentLog) has(line string) bool { return slices.Contains(l.snapshot(), line) }

// A singleton agent in cancel mode: a run that starts while another is Running cancels it
// (its reason names the new run) and executes once the old one's agent has returned — the
// agent's own log shows the old execution ended, its context cancelled, before the new began.
func TestASingletonCancelRunReplacesTheRunningOne(t *testing.T) {
	t.Parallel()
	var log agentLog
	w, _ := runsWorker(t, 3*time.Second, map[string]runs.Agent{"solo": runs.WithOptions(runs.AgentFunc(func(ctx context.Context, r *runs.Run) (json.RawMessage, error) {
		log.add("start " + r.Key)
		defer log.add("end " + r.Key)
		if r.Key == "a" {
			select {
			case <-ctx.Done(): // cancelled: the only way this run ends
				log.add("a: " + ctx.Err().Error())
				return nil, ctx.Err()
			case <-time.After(30 * time.Second):
				return json.RawMessage(`"not cancelled"`), nil
			}
		}
		return json.RawMessage(`"ok"`), nil
	}), runs.Options{Singleton: runs.SingletonCancel})})
	a := start(t, w, "solo", "a", "")
	testenv.Eventually(t, 30*time.Second, "run a executing", func() bool { return log.has("start a") })
	b := start(t, w, "solo", "b", "")
	if r := waitState(t, w, a.ID, runs.Cancelled); r.Error != "singleton: replaced by run "+b.ID {
		t.Errorf("run a's reason %q, want it replaced by run %s", r.Error, b.ID)
	}
	if r := waitState(t, w, b.ID, runs.Succeeded); string(r.Output) != `"ok"` || r.Attempts != 1 {
		t.Errorf("run b: output %s after %d attempts, want \"ok\" after 1", r.Output, r.Attempts)
	}
	drain(t, w)
	want := []string{"start a", "a: context canceled", "end a", "start b", "end b"}
	if got := log.snapshot(); !slices.Equal(got, want) {
		t.Errorf("the agent's log %q, want %q: a's execution over before b's began", got, want)
	}
	if r := runOf(t, w, a.ID); r.State != runs.Cancelled || !r.LeaseUntil.IsZero() {
		t.Errorf("run a after all: %s, lease until %v; want Cancelled, its lease let go", r.State, r.LeaseUntil)
	}
}

// ConcurrencyPerKey 1 with a key over the input: two runs of one key never execute at once
// (the second waits for a slot), two of different keys do. The agent's own start/end log
// measures the overlap.
func TestConcurrencyPerKeyBoundsRunsOfOneKey(t *testing.T) {
	t.Parallel()
	var log agentLog
	keyOf := func(r *runs.Run) string {
		var in struct{ K string }
		_ = json.Unmarshal(r.Input, &in)
		return in.K
	}
	w, _ := runsWorker(t, 3*time.Second, map[string]runs.Agent{"keyed": runs.WithOptions(runs.AgentFunc(func(ctx context.Context, r *runs.Run) (json.RawMessage, error) {
		log.add("start " + keyOf(r) + " " + r.Key)
		defer log.add("end " + keyOf(r) + " " + r.Key)
		select { // the agent's work: long enough that the others start meanwhile
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(1500 * time.Millisecond):
		}
		return json.RawMessage(`"ok"`), nil
	}), runs.Options{ConcurrencyKey: keyOf, ConcurrencyPerKey: 1})})
	ids := []string{start(t, w, "keyed", "x1", `{"k":"x"}`).ID, start(t, w, "keyed", "x2", `{"k":"x"}`).ID, start(t, w, "keyed", "y1", `{"k":"y"}`).ID}
	for _, id := range ids {
		waitState(t, w, id, runs.Succeeded)
	}
	running, most, mostOfKey := map[string]int{}, 0, map[string]int{}
	total := 0
	for _, line := range log.snapshot() {
		f := strings.Fields(line)
		if f[0] == "start" {
			running[f[1]]++
			total++
		} else {
			running[f[1]]--
			total--
		}
		mostOfKey[f[1]] = max(mostOfKey[f[1]], running[f[1]])
		most = max(most, total)
	}
	if mostOfKey["x"] != 1 || most != 2 {
		t.Errorf("at most %d runs of key x and %d in all at once, want 1 and 2 (log %q)", mostOfKey["x"], most, log.snapshot())
	}
	// A limit per key needs a key.
	if _, err := runs.New(runs.Config{}, runs.Deps{Log: logrus.New(), Agents: map[string]runs.Agent{"k": runs.WithOptions(runs.AgentFunc(nil), runs.Options{ConcurrencyPerKey: 2})}}); !errors.Is(err, platform.ErrInvalidInput) {
		t.Errorf("ConcurrencyPerKey without a key: %v, want ErrInvalidInput", err)
	}
}

// failRunWrites fails every update of an AgentRuns row while on.
type failRunWrites struct{ on atomic.Bool }

func (f *failRunWrites) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if f.on.Load() && (r.Method == http.MethodPut || r.Method == http.MethodPatch) && strings.Contains(r.URL.Path, tables.TableAgentRuns+"(") {
		return nil, errors.New("injected: the renewal did not reach storage")
	}
	return req.Next()
}

// A runner whose own renewals fail until its lease is about to run out stops its agent, and
// the run's message is retried: the run is taken over once the lease has run out and ends.
// (Its message was dropped, and the run stayed Running with no message to move it on.)
func TestARunnerThatCannotRenewItsLeaseHandsTheRunOver(t *testing.T) {
	t.Parallel()
	fault := &failRunWrites{}
	var calls atomic.Int32
	w := newWorker(t, worker.Config{Account: storage.Account{Policies: []policy.Policy{fault}, Retry: &policy.RetryOptions{MaxRetries: -1}},
		Agents: map[string]runs.Agent{"work": runs.AgentFunc(func(ctx context.Context, r *runs.Run) (json.RawMessage, error) {
			if calls.Add(1) == 1 {
				fault.on.Store(true) // from now on, no renewal lands
				<-ctx.Done()         // stopped when the lease is about to run out
				fault.on.Store(false)
				return nil, ctx.Err()
			}
			return json.RawMessage(fmt.Sprintf(`"epoch %d"`, r.Epoch)), nil
		})},
		Runs: runs.Config{LeaseTTL: 3 * time.Second, RetryBackoff: 100 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond}})
	r := start(t, w, "work", "k", "")
	got := waitState(t, w, r.ID, runs.Succeeded)
	if calls.Load() != 2 || got.Epoch != 2 || string(got.Output) != `"epoch 2"` {
		t.Fatalf("run ended %s at epoch %d after %d agent calls, want the takeover's result (epoch 2, 2 calls)", got.Output, got.Epoch, calls.Load())
	}
}
