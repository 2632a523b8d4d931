package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker/automations"
)

// The rules' life from the command line: added from a file and from standard input, listed,
// shown with their versions, turned off and to shadow mode, tested on an event (the false
// clause shown), explained and replayed after a worker decided on an event. Bad input is exit
// 2 with one line.
func TestAutomationsCommands(t *testing.T) {
	t.Parallel()
	ns := string(testenv.Namespace(t))
	dir := t.TempDir()
	dsn := filepath.Join(dir, "settings.db")
	auto := func(stdin string, sub string, args ...string) (int, string, string) {
		t.Helper()
		return cli(t, stdin, append([]string{"automations", sub, "--namespace", ns, "--settings-dsn", dsn}, args...)...)
	}
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	code, out, errOut := cli(t, "", "webhooks", "add", "--namespace", ns, "--url", "https://8.8.8.8/hook", "--business-unit", "7", "--event-types", "99")
	if code != 0 {
		t.Fatalf("webhooks add: %d %q %q", code, out, errOut)
	}
	endpoint := strings.TrimSpace(out)
	def := `{"name":"ada only","businessUnitId":7,"eventTypes":[11],"filter":"event.payload.firstName == 'Ada' && event.entity.type == 1",` +
		`"action":{"webhook":{"endpointId":"` + endpoint + `"}}}`
	ruleFile := file("rule.json", def)

	code, out, errOut = auto("", "add", ruleFile)
	id := strings.TrimSpace(out)
	if code != 0 || !regexp.MustCompile(`^rul[0-9a-z]{26}$`).MatchString(id) {
		t.Fatalf("add: %d %q %q, want the rule's id", code, out, errOut)
	}
	code, out, errOut = auto(`{"businessUnitId":7,"eventTypes":[11],"shadow":true,"action":{"webhook":{"endpointId":"`+endpoint+`"}}}`, "add", "-", "--json")
	var second automations.Rule
	if code != 0 || json.Unmarshal([]byte(out), &second) != nil || second.Version != 1 || !second.Shadow {
		t.Fatalf("add - --json: %d %q %q, want the rule as JSON", code, out, errOut)
	}

	code, out, errOut = auto("", "list")
	if code != 0 || !regexp.MustCompile(id+`\s+1\s+7\s+enabled\s+\[11\]\s+webhook to endpoint `+endpoint+`\s+ada only`).MatchString(out) ||
		!regexp.MustCompile(second.ID+`\s+1\s+7\s+shadow\s`).MatchString(out) {
		t.Fatalf("list: %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := auto("", "list", "--json"); code != 0 || !strings.Contains(out, `"id": "`+id+`"`) {
		t.Fatalf("list --json: %d\n%s", code, out)
	}

	// Off, then on in shadow mode: each a version, with its note, who and when.
	if code, out, errOut := auto("", "disable", id); code != 0 || out != id+": disabled (version 2)\n" {
		t.Fatalf("disable: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := auto("", "enable", id, "--shadow"); code != 0 || out != id+": shadow (version 3)\n" {
		t.Fatalf("enable --shadow: %d %q %q", code, out, errOut)
	}
	code, out, errOut = auto("", "show", id)
	for _, want := range []string{"state          shadow (version 3)", `event.payload.firstName == 'Ada'`, "webhook to endpoint " + endpoint} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("show: %d, want %q in\n%s%s", code, want, out, errOut)
		}
	}
	for _, want := range []string{`1\s+enabled\s+\S+\s+\S+\s+added`, `2\s+disabled\s+\S+\s+\S+\s+disabled by cli`, `3\s+shadow\s+\S+\s+\S+\s+enabled in shadow mode by cli`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Fatalf("show: want the version %q in\n%s", want, out)
		}
	}
	if code, out, _ := auto("", "show", id, "--json"); code != 0 || strings.Count(out, `"version"`) != 3 {
		t.Fatalf("show --json: %d, want 3 versions\n%s", code, out)
	}

	// Test: Grace is not Ada; the first clause says so, the second holds. Stored or from a file.
	eventFile := file("event.json", ev(11, "2026-11-22T09:00:00Z"))
	for _, args := range [][]string{{id, eventFile}, {"--rule", ruleFile, eventFile}} {
		code, out, errOut := auto("", "test", args...)
		if code != 0 || !regexp.MustCompile(`outcome\s+filter_false`).MatchString(out) ||
			!regexp.MustCompile(`event\.payload\.firstName == "Ada"\s+false\n`).MatchString(out) ||
			!regexp.MustCompile(`event\.entity\.type == 1\s+true\n`).MatchString(out) {
			t.Errorf("test %v: %d\n%s%s", args, code, out, errOut)
		}
	}
	if code, out, _ := auto(ev(11, "2026-11-22T09:00:00Z"), "test", id, "-", "--json"); code != 0 || !strings.Contains(out, `"result": "false"`) {
		t.Errorf("test - --json: %d\n%s", code, out)
	}

	// Refused: exit 2, one line, nothing stored.
	badFilter := file("bad.json", strings.Replace(def, "event.entity.type == 1", "event.entity.type ==", 1))
	code, out, errOut = auto("", "add", badFilter)
	if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "filter: ERROR: <input>:1:") || !strings.Contains(errOut, "Syntax error") {
		t.Errorf("add with a bad filter: %d %q %q, want exit 2 with one line naming filter and its position", code, out, errOut)
	}
	const unknown = "rul00000000000000000000000000"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"show", unknown}, "no automation rule " + unknown},
		{[]string{"enable", unknown}, "no automation rule " + unknown},
		{[]string{"disable", "nonsense"}, "no automation rule"},
		{[]string{"test", unknown, eventFile}, "no automation rule " + unknown},
		{[]string{"update", unknown, ruleFile}, "no automation rule " + unknown},
		{[]string{"add", file("unknown-field.json", strings.Replace(def, `"filter"`, `"filtre"`, 1))}, `unknown field "filtre"`},
		{[]string{"add", filepath.Join(dir, "missing.json")}, "missing.json"},
		{[]string{"test", id, file("bad-event.json", `{"eventTypeId":11}`)}, "bad-event.json: "},
		{[]string{"test", id}, "test: want RULE EVENTFILE|-"},
		{[]string{"explain", id, "not-a-key"}, "EVENT_KEY: "},
		{[]string{"frob"}, `unknown subcommand "frob"`},
	} {
		code, out, errOut := auto("", c.args[0], c.args[1:]...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: %d %q %q, want exit 2 with one line containing %q", c.args, code, out, errOut, c.want)
		}
	}
	if code, out, _ := auto("", "list", "--json"); code != 0 || strings.Count(out, `"id"`) != 2 {
		t.Errorf("after the refusals: %d, want the two rules only\n%s", code, out)
	}

	// A worker decides on a published event: explain shows the decision and each clause now;
	// replay fires the rule once more, as generation 2.
	code, out, errOut = cli(t, ev(11, "2026-11-22T10:00:00Z"), "publish", "--namespace", ns, "-")
	key := strings.TrimSpace(out)
	if code != 0 {
		t.Fatalf("publish: %d %q", code, errOut)
	}
	if code, _, errOut := auto("", "explain", id, key); code != 2 || !strings.Contains(errOut, "recorded no decision on event") {
		t.Errorf("explain before any decision: %d %q, want exit 2", code, errOut)
	}
	if code, _, errOut := cli(t, "", "worker", "--drain", "--namespace", ns, "--settings-dsn", dsn, "--http-addr", "127.0.0.1:0", "--log-level", "error"); code != 0 {
		t.Fatalf("worker: %s", errOut)
	}
	code, out, errOut = auto("", "explain", id, key)
	if code != 0 || !regexp.MustCompile(`recorded\s+filter_false \(rule version 3`).MatchString(out) ||
		!regexp.MustCompile(`event\.payload\.firstName == "Ada"\s+false\n`).MatchString(out) {
		t.Fatalf("explain: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = auto("", "replay", second.ID, key)
	if code != 0 || !regexp.MustCompile(`decision\s+fired \(rule version 1, generation 2\)`).MatchString(out) || !strings.Contains(out, "replay (generation 2) by cli") {
		t.Fatalf("replay: %d\n%s%s", code, out, errOut)
	}
	// A new version: the state kept; the business unit cannot change.
	if code, out, errOut := auto("", "update", id, file("v4.json", strings.Replace(def, "ada only", "ada, v4", 1))); code != 0 || out != id+" version 4\n" {
		t.Errorf("update: %d %q %q", code, out, errOut)
	}
	if code, out, _ := auto("", "list"); !regexp.MustCompile(id + `\s+4\s+7\s+shadow\s.*ada, v4`).MatchString(out) {
		t.Errorf("list after update: %d\n%s", code, out)
	}
	if code, _, errOut := auto("", "update", id, file("v5.json", strings.Replace(def, `"businessUnitId":7`, `"businessUnitId":8`, 1))); code != 2 || !strings.Contains(errOut, "businessUnitId") {
		t.Errorf("update into another unit: %d %q, want exit 2 naming businessUnitId", code, errOut)
	}
	other := strings.Replace(key, "2026-11-22T10:00:00", "2026-11-22T11:00:00", 1)
	if code, out, errOut := auto("", "replay", second.ID, other); code != 2 || out != "" || !strings.Contains(errOut, "recorded no decision") {
		t.Errorf("replay of an event the rule never decided on: %d %q %q, want exit 2", code, out, errOut)
	}
}
