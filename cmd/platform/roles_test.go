package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker/webhooks"
)

// A process of the events role consumes entity-events only: it writes the history row and
// schedules the notification job, but the job waits for a notifications process, which sends
// it. Neither serves /v1, both answer the probes, and neither needs authentication on 0.0.0.0.
func TestRolesSplitTheWorkAndEachAnswersItsProbes(t *testing.T) {
	e := newStopEnv(t)
	e.publish(t, newStopLoad(t, 1, e.endpoint).events)

	events := e.startWorker(t, "events", []string{"PLATFORM_ROLE=events", "PLATFORM_HTTP_ADDR=0.0.0.0:0", "PLATFORM_LOG_LEVEL=info"})
	addr := listening(t, events)
	probe(t, addr, "/healthz", http.StatusOK)
	probe(t, addr, "/readyz", http.StatusOK)
	probe(t, addr, "/v1/history/1/7c9e6679-7425-40de-944b-e07fc1f90ae7", http.StatusNotFound)
	testenv.Eventually(t, time.Minute, "the events role drains entity-events, and the job waits in a notification queue", func() bool {
		events, err1 := e.queues.ApproximateCount(t.Context(), "entity-events")
		waiting := 0
		for _, q := range []string{"notification-scheduler", "notification-generator"} {
			n, err := e.queues.ApproximateCount(t.Context(), q)
			if err != nil {
				return false
			}
			waiting += n
		}
		return err1 == nil && events == 0 && waiting == 1
	})
	time.Sleep(2 * time.Second) // were the notification queues consumed here, the mail would go in this time
	if mails := e.smtp.Mails(); len(mails) != 0 {
		t.Fatalf("the events role sent %d mails: it must not consume the notification queues", len(mails))
	}
	if took, code := events.sigterm(t); code != 0 || took > promptStop {
		t.Fatalf("events role: exit %d after %s", code, took)
	}

	notifications := e.startWorker(t, "notifications", []string{"PLATFORM_ROLE=notifications", "PLATFORM_HTTP_ADDR=127.0.0.1:0", "PLATFORM_LOG_LEVEL=info"})
	listening(t, notifications)
	testenv.Eventually(t, time.Minute, "the notifications role sends the mail", func() bool { return len(e.smtp.Mails()) == 1 })
	if took, code := notifications.sigterm(t); code != 0 || took > promptStop {
		t.Fatalf("notifications role: exit %d after %s", code, took)
	}
	for _, p := range []*workerProcess{events, notifications} {
		if log := p.log(t); !strings.Contains(log, `"roles":"`+p.name+`"`) {
			t.Errorf("%s: the start line does not name its role:\n%s", p.name, p.tail(10))
		}
	}

	// The API role on a public address still needs authentication.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.binary, "worker", "--role", "api,events", "--http-addr", "0.0.0.0:0")
	cmd.Env = append(cmd.Environ(), e.env...)
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "not a loopback address") {
		t.Fatalf("--role api,events on 0.0.0.0 without auth: exit %d %s", cmd.ProcessState.ExitCode(), out)
	}
}

var listeningLine = regexp.MustCompile(`"http":"([^"]+)"[^\n]*"msg":"listening"`)

// listening waits for the worker's "listening" line and returns the address it names.
func listening(t *testing.T, p *workerProcess) string {
	t.Helper()
	var addr string
	testenv.Eventually(t, time.Minute, p.name+" listening", func() bool {
		if p.exited() {
			t.Fatalf("%s exited: %s", p.name, p.tail(20))
		}
		m := listeningLine.FindStringSubmatch(p.log(t))
		if m != nil {
			addr = strings.Replace(m[1], "[::]", "127.0.0.1", 1)
		}
		return m != nil
	})
	return addr
}

func probe(t *testing.T, addr, path string, want int) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d %s, want %d", path, resp.StatusCode, body, want)
	}
	if want == http.StatusOK && !json.Valid(body) {
		t.Fatalf("GET %s: %s", path, body)
	}
}

// An automation rule that starts an agent run, across three processes as deploy/azure runs
// them: the api role (no agent secret) saves and enables the rule, the events role (no agent
// secret) decides and starts the run, and only the runs role, which holds the secret, calls
// the agent: once, signed.
func TestAnAgentRunAcrossTheAPIEventsAndRunsRoles(t *testing.T) {
	e := newStopEnv(t)
	secret := webhooks.NewSecret()
	var calls atomic.Int64
	agent := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if !hmac.Equal([]byte(r.Header.Get("X-Platform-Signature")), []byte("sha256="+hex.EncodeToString(mac.Sum(nil)))) {
			http.Error(rw, "bad signature", http.StatusUnauthorized)
			return
		}
		calls.Add(1)
		_, _ = rw.Write([]byte(`{"greeted":true}`))
	}))
	t.Cleanup(agent.Close)
	agents := "PLATFORM_AGENTS=greeter=" + agent.URL + "/run"

	api := e.startWorker(t, "api", []string{"PLATFORM_ROLE=api", agents, "PLATFORM_LOG_LEVEL=info"}, "--http-addr", "127.0.0.1:0")
	base := "http://" + listening(t, api)
	rule := `{"name":"greet","businessUnitId":7,"eventTypes":[11],"dedupeKey":"event.entity.guid","action":{"run":{"agent":"greeter"}}}`
	resp, err := http.Post(base+"/v1/automations", "application/json", strings.NewReader(rule))
	if err != nil {
		t.Fatal(err)
	}
	var added struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&added)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || added.ID == "" {
		t.Fatalf("add the rule through the api role: %d", resp.StatusCode)
	}
	if resp, err = http.Post(base+"/v1/automations/"+added.ID+"/enable", "application/json", nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("enable the rule: %v %v", resp, err)
	}
	resp.Body.Close()
	if took, code := api.sigterm(t); code != 0 || took > promptStop {
		t.Fatalf("api role: exit %d after %s", code, took)
	}

	ev, err := platform.DecodeEvent([]byte(`{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"entityGuid":"5e0b7a1c-57a7-4000-8000-000000000001","businessUnitId":7,"createdOn":"2026-11-22T08:00:00Z","payload":{"firstName":"Ada"}}`))
	if err != nil {
		t.Fatal(err)
	}
	e.publish(t, []*platform.EntityEvent{ev})
	events := e.startWorker(t, "events", []string{"PLATFORM_ROLE=events", agents}, "--drain", "--http-addr", "127.0.0.1:0")
	select {
	case <-events.done:
	case <-time.After(time.Minute):
		t.Fatal("the events role did not drain in a minute")
	}
	if code := events.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("events role --drain: exit %d: %s", code, events.tail(20))
	}
	if n := e.count(t, platform.QueueAgentRuns); n != 1 || calls.Load() != 0 {
		t.Fatalf("after the events role: %d runs queued, the agent called %d times; want 1 and 0", n, calls.Load())
	}

	runner := e.startWorker(t, "runs", []string{"PLATFORM_ROLE=runs", agents, "PLATFORM_AGENT_SECRET=" + secret}, "--drain", "--http-addr", "127.0.0.1:0")
	select {
	case <-runner.done:
	case <-time.After(time.Minute):
		t.Fatal("the runs role did not drain in a minute")
	}
	if code := runner.cmd.ProcessState.ExitCode(); code != 0 || calls.Load() != 1 {
		t.Fatalf("runs role --drain: exit %d, the agent called %d times (want 0 and 1): %s", code, calls.Load(), runner.tail(20))
	}
	if list := e.runTool(t, "runs", "list", "--agent", "greeter"); !strings.Contains(list, "Succeeded") {
		t.Fatalf("runs list:\n%s", list)
	}
}
