package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/runs"
	"github.com/platform/platform/worker/webhooks"
)

// Bad usage of runs, and an unknown run, exit 2 with one line.
func TestRunsCommandsRefuseBadUsageWithOneLine(t *testing.T) {
	t.Parallel()
	ns := string(testenv.Namespace(t))
	for _, args := range [][]string{
		{"runs"},
		{"runs", "bogus"},
		{"runs", "list", "--namespace", ns, "--state", "Sleeping"},
		{"runs", "list", "--namespace", ns, "--limit", "0"},
		{"runs", "list", "--namespace", ns, "--agent", "Not A Name"},
		{"runs", "list", "--namespace", ns, "--nope"},
		{"runs", "show", "--namespace", ns},
		{"runs", "show", "--namespace", ns, runs.RunID("a", "b")},
		{"runs", "show", "--namespace", ns, "not-a-run-id"},
		{"runs", "cancel", "--namespace", ns, runs.RunID("a", "b")},
		{"runs", "replay", "--namespace", ns, runs.RunID("a", "b"), "extra"},
	} {
		code, _, errOut := cli(t, "", args...)
		if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || errOut == "" {
			t.Errorf("platform %s: exit %d, stderr %q; want 2 with one line", strings.Join(args, " "), code, errOut)
		}
	}
	if code, out, errOut := cli(t, "", "runs", "list", "--namespace", ns, "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("runs list of an empty namespace: %d %q %q", code, out, errOut)
	}
}

// PLATFORM_AGENTS and PLATFORM_AGENT_SECRET are checked at start: a bad value is exit 2 with
// one line. (Not parallel: it sets the environment.)
func TestBadAgentConfigurationIsRefusedAtStart(t *testing.T) {
	ns := string(testenv.Namespace(t))
	good := webhooks.NewSecret()
	for _, c := range []struct{ agents, secret, want string }{
		{"a=https://agents.example/run", "", "PLATFORM_AGENT_SECRET is not"},
		{"a=https://agents.example/run", "short", "PLATFORM_AGENT_SECRET"},
		{"a=ftp://agents.example/run", good, "want an http(s) URL"},
		{"Bad Name=https://agents.example/run", good, "agent name"},
		{"a=https://x.example/1,a=https://x.example/2", good, "listed twice"},
		{"just-a-url", good, "want name=URL"},
	} {
		t.Setenv("PLATFORM_AGENTS", c.agents)
		t.Setenv("PLATFORM_AGENT_SECRET", c.secret)
		code, _, errOut := cli(t, "", "runs", "list", "--namespace", ns)
		if code != 2 || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("PLATFORM_AGENTS=%q: exit %d %q; want 2 naming %q", c.agents, code, errOut, c.want)
		}
		if strings.Contains(errOut, good) {
			t.Error("the secret reached the output")
		}
	}
}

// execution is one request the test's agent received: its epoch, and when it began and ended
// (ended: answered, or its connection gone with the worker that sent it).
type execution struct {
	epoch      int
	began, end time.Time
}

// A worker process running a slow HTTP agent is SIGKILLed mid-run; a second process takes
// the run over once its lease expired, with epoch 2, and finishes it: exactly one run,
// Succeeded once, and the agent's own log shows no two executions overlapping.
func TestAKilledRunnersRunIsTakenOverWithAHigherEpoch(t *testing.T) {
	t.Parallel()
	e := newStopEnv(t)
	e.binary = buildChaosPlatform(t)
	secret := webhooks.NewSecret()
	var mu sync.Mutex
	var log []*execution
	arrived := make(chan struct{}, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		var body struct{ Epoch int }
		_ = json.NewDecoder(io.LimitReader(req.Body, 1<<20)).Decode(&body)
		ex := &execution{epoch: body.Epoch, began: time.Now()}
		mu.Lock()
		log = append(log, ex)
		first := len(log) == 1
		mu.Unlock()
		arrived <- struct{}{}
		wait := time.Second
		if first {
			wait = time.Minute // the worker is killed long before
		}
		select {
		case <-req.Context().Done():
		case <-time.After(wait):
			_, _ = rw.Write([]byte(`{"done":true}`))
		}
		mu.Lock()
		ex.end = time.Now()
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	const lease = 3 * time.Second
	env := []string{"PLATFORM_AGENTS=slow=" + srv.URL + "/run", "PLATFORM_AGENT_SECRET=" + secret,
		"PLATFORM_CHAOS_RUN_LEASE=" + lease.String(), "PLATFORM_CHAOS_VISIBILITY=2s"}

	// The run is started as the automations concern would: through a worker's Runs.
	starter, err := worker.New(worker.Config{Account: storage.Account{}, Namespace: e.ns, Logger: testenv.Logger(t), WebhookAllowlist: []string{"127.0.0.1"},
		Agents: map[string]runs.Agent{"slow": runs.HTTPAgent{URL: srv.URL + "/run", Secret: secret}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := starter.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	run, _, err := starter.Runs().Start(ctx, runs.StartRequest{Agent: "slow", Key: "kill-test", BusinessUnitID: 7,
		Origin: runs.Origin{RuleID: "r1", RuleVersion: 1, EventKey: "11:1:x:2026-11-22T10:00:00.0000000Z:1"}})
	if err != nil {
		t.Fatal(err)
	}
	row := func() *runs.Run {
		r, _, err := starter.Runs().Table().Get(ctx, run.ID)
		if err != nil {
			return &runs.Run{}
		}
		return r
	}

	first := e.startWorker(t, "first", env, "--http-addr", "127.0.0.1:0")
	waitFor(t, first, time.Minute, "the agent called by the first worker", func() bool { return len(arrived) > 0 })
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done
	killed := row()
	if killed.State != runs.Running || killed.Epoch != 1 {
		t.Fatalf("after the kill the run is %s at epoch %d, want Running at epoch 1", killed.State, killed.Epoch)
	}

	second := e.startWorker(t, "second", env, "--http-addr", "127.0.0.1:0")
	waitFor(t, second, time.Minute, "the run Succeeded", func() bool { return row().State.Final() })
	got := row()
	if got.State != runs.Succeeded || got.Epoch != 2 || got.Attempts != 2 || string(got.Output) != `{"done":true}` || got.LeaseHolder == killed.LeaseHolder {
		t.Fatalf("the run ended %s at epoch %d after %d attempts, output %s, holder %s (killed: %s); want Succeeded at epoch 2 after 2, by another holder",
			got.State, got.Epoch, got.Attempts, got.Output, got.LeaseHolder, killed.LeaseHolder)
	}
	list, err := starter.Runs().List(ctx, tables.RunFilter{Agent: "slow", Limit: 10})
	if err != nil || len(list) != 1 {
		t.Fatalf("runs of the agent: %d (%v), want exactly 1", len(list), err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(log) != 2 || log[0].epoch != 1 || log[1].epoch != 2 {
		t.Fatalf("the agent saw %d executions, want 2 (epochs 1 and 2)", len(log))
	}
	if log[0].end.IsZero() || log[1].began.Before(log[0].end) {
		t.Errorf("executions overlap: the first ended %s, the second began %s", log[0].end, log[1].began)
	}
	if log[1].began.Before(killed.LeaseUntil) {
		t.Errorf("the second execution began at %s, before the killed runner's lease ended (%s)", log[1].began, killed.LeaseUntil)
	}
	show := e.runTool(t, "runs", "show", run.ID)
	for _, want := range []string{"Succeeded", "2 (epoch 2)", "rule r1 version 1", "kill-test"} {
		if !strings.Contains(show, want) {
			t.Errorf("runs show does not say %q:\n%s", want, show)
		}
	}
}
