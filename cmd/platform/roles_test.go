package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform/internal/testenv"
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
	testenv.Eventually(t, time.Minute, "the events role drains entity-events", func() bool {
		n, err := e.queues.ApproximateCount(t.Context(), "entity-events")
		return err == nil && n == 0
	})
	time.Sleep(2 * time.Second) // long enough for a consumer of the scheduler queue to have taken its job, were there one
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
	cmd := exec.Command(e.binary, "worker", "--role", "api,events", "--http-addr", "0.0.0.0:0")
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
