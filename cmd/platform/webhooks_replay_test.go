package main

import (
	"strings"
	"testing"

	"github.com/platform/platform/internal/testenv"
)

// webhooks replay loops batch by batch until the window is done: a line per batch with its
// cursor, then the totals.
func TestWebhooksReplayBatchesUntilDone(t *testing.T) {
	t.Parallel()
	ns := string(testenv.Namespace(t))
	lines := ev(11, "2026-11-22T09:00:00Z") + "\n" + ev(12, "2026-11-22T10:00:00Z") + "\n"
	if code, _, errOut := cli(t, lines, "publish", "--namespace", ns, "-"); code != 0 {
		t.Fatalf("publish: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "", "worker", "--drain", "--namespace", ns, "--http-addr", "127.0.0.1:0", "--log-level", "warn"); code != 0 {
		t.Fatalf("worker --drain: %d %s", code, errOut)
	}
	code, out, errOut := cli(t, "", "webhooks", "add", "--namespace", ns, "--url", "https://8.8.8.8/hook", "--business-unit", "7", "--event-types", "11,12")
	if code != 0 {
		t.Fatalf("add: %d %q %q", code, out, errOut)
	}
	id := strings.TrimSpace(out)
	code, out, errOut = cli(t, "", "webhooks", "replay", "--namespace", ns, "--since", "1h", "--max", "1", id)
	if code != 0 || !strings.HasPrefix(out, "batch 1: resent 0, created 1, skipped 0; next ") ||
		!strings.HasSuffix(out, "\nreplayed: resent 0, created 2, skipped 0\n") {
		t.Fatalf("replay: %d %q %q", code, out, errOut)
	}
	// Again: the deliveries are on their way (no worker sends them here), so they are left.
	code, out, errOut = cli(t, "", "webhooks", "replay", "--namespace", ns, "--since", "1h", id)
	if code != 0 || out != "replayed: resent 0, created 0, skipped 2 (in flight 2)\n" {
		t.Fatalf("replay again: %d %q %q", code, out, errOut)
	}
}

func TestWebhooksReplayRefusesBadInput(t *testing.T) {
	t.Parallel()
	ns := string(testenv.Namespace(t))
	code, out, errOut := cli(t, "", "webhooks", "add", "--namespace", ns, "--url", "https://8.8.8.8/hook", "--business-unit", "7", "--event-types", "11")
	if code != 0 {
		t.Fatalf("add: %d %q %q", code, out, errOut)
	}
	id := strings.TrimSpace(out)
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{id}, "--since"},
		{[]string{"--since", "1h"}, "one endpoint ID"},
		{[]string{"--since", "yesterday", id}, "--since"},
		{[]string{"--since", "200h", id}, "at most 168h"},
		{[]string{"--since", "1h", "--until", "2h", id}, "until"},
		{[]string{"--since", "1h", "--max", "0", id}, "max"},
		{[]string{"--since", "1h", "--after", "nope", id}, "after"},
		{[]string{"--since", "1h", "01JUNKNOWNENDPOINT00000000"}, "no webhook endpoint"},
	} {
		code, out, errOut := cli(t, "", append([]string{"webhooks", "replay", "--namespace", ns}, c.args...)...)
		if code != 2 || out != "" || !strings.Contains(errOut, c.says) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("replay %v: %d %q %q, want exit 2 with a one-line reason naming %s", c.args, code, out, errOut, c.says)
		}
	}
}
