package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/settings"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/webhooks"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// cli runs the command line in-process and returns its exit code, stdout and stderr.
func cli(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if n := 1 + btoi(len(args) > 1 && (args[0] == "outbox" || args[0] == "webhooks" || args[0] == "keys" || args[0] == "automations" || args[0] == "runs" || args[0] == "messages" || args[0] == "jobs" || args[0] == "settings")); len(args) >= n && args[0] != "version" {
		// Every command gets its own settings database: none writes into the source tree.
		args = append(args[:n:n], append([]string{"--settings-dsn", filepath.Join(t.TempDir(), "settings.db")}, args[n:]...)...)
	}
	code := run(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

const guid = "0f8fad5b-d9cb-469f-a165-70867728950e"

func ev(eventTypeID int, createdOn string) string {
	return fmt.Sprintf(`{"eventTypeId":%d,"entityTypeId":1,"actionTypeId":2,"entityGuid":"%s","businessUnitId":7,"createdOn":"%s","payload":{"firstName":"Grace"}}`,
		eventTypeID, guid, createdOn)
}

func TestPublishWorkerHistoryEndToEnd(t *testing.T) {
	t.Parallel()
	ns := string(testenv.Namespace(t))
	lines := ev(11, "2026-11-22T09:00:00Z") + "\n" + ev(12, "2026-11-22T10:00:00Z") + "\n" + ev(12, "2026-11-22T10:00:00Z") + "\n"
	code, out, errOut := cli(t, lines, "publish", "--namespace", ns, "-")
	if code != 0 {
		t.Fatalf("publish: %d %s", code, errOut)
	}
	keys := strings.Fields(out)
	if len(keys) != 3 || keys[1] != keys[2] || keys[0] != "11:1:"+guid+":2026-11-22T09:00:00.0000000Z:2" {
		t.Fatalf("keys %q", keys)
	}
	if code, _, errOut := cli(t, "", "worker", "--drain", "--namespace", ns, "--http-addr", "127.0.0.1:0", "--log-level", "warn"); code != 0 {
		t.Fatalf("worker --drain: %d %s", code, errOut)
	}
	code, out, errOut = cli(t, "", "history", "--namespace", ns, "--entity-type", "1", "--entity-guid", strings.ToUpper(guid), "--json")
	if code != 0 {
		t.Fatalf("history: %d %s", code, errOut)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("history --json is not a JSON array: %v\n%s", err, out)
	}
	if len(rows) != 2 || rows[0]["historyEventKey"] != "entity-history:12:1:"+guid+":2026-11-22T10:00:00.0000000Z:2" {
		t.Fatalf("rows %v", rows)
	}
	code, out, _ = cli(t, "", "history", "--namespace", ns, "--entity-type", "1", "--entity-guid", guid, "--limit", "1")
	if code != 0 || !strings.Contains(out, "Attendee updated") || !strings.Contains(out, "more rows: add --after ") {
		t.Fatalf("history text: %d\n%s", code, out)
	}
}

func TestPublishRejectsABadBatchWholeNamingTheLine(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	cases := map[string]struct{ input, want string }{
		"JSON lines":    {ev(11, "2026-11-22T09:00:00Z") + "\n\n" + `{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"businessUnitId":7}` + "\n", "line 3: createdOn: required"},
		"array":         {"[\n  " + ev(11, "2026-11-22T09:00:00Z") + ",\n  " + `{"eventTypeId":"x"}` + "\n]", "line 3: eventTypeId: want int"},
		"broken JSON":   {ev(11, "2026-11-22T09:00:00Z") + "\n{\"eventTypeId\": 11,\n", "line 2: invalid JSON"},
		"empty":         {"  \n", "no events in input"},
		"bad namespace": {ev(11, "2026-11-22T09:00:00Z"), "namespace"},
	}
	for name, c := range cases {
		args := []string{"publish", "--namespace", string(ns)}
		if name == "bad namespace" {
			args = []string{"publish", "--namespace", "Bad-NS"}
		}
		code, out, errOut := cli(t, c.input, args...)
		if code != 2 || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || out != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 2 and one line with %q", name, code, out, errOut, c.want)
		}
	}
	q, err := queues.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := q.ApproximateCount(context.Background(), platform.QueueEntityEvents); err != nil || n != 0 {
		t.Fatalf("a rejected batch published %d events (%v)", n, err)
	}
}

func TestUsageErrorsExitTwoWithOneLine(t *testing.T) {
	t.Parallel()
	cases := [][]string{
		{"no-such-command"},
		{"history", "--entity-guid", guid},
		{"history", "--entity-type", "1"},
		{"history", "--entity-type", "1", "--entity-guid", guid, "--entity-id", "3"},
		{"history", "--entity-type", "1", "--entity-guid", "nope"},
		{"history", "--entity-type", "1", "--entity-id", "3", "--limit", "0"},
		{"history", "--entity-type", "1", "--entity-id", "3", "--after", "!!"},
		{"redrive"},
		{"redrive", "not-a-queue"},
		{"publish", "/no/such/file.json"},
		{"worker", "--log-format", "xml"},
		{"worker", "--bogus-flag"},
		{"worker", "--role", "api,bogus"},
	}
	for _, args := range cases {
		code, _, errOut := cli(t, "", args...)
		if code != 2 || errOut == "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 with one line", args, code, errOut)
		}
	}
	if code, out, _ := cli(t, "", "version"); code != 0 || !strings.HasPrefix(out, "platform ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestRedriveCommand(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	q, err := queues.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	bad := `{"eventTypeId":999,"entityTypeId":1,"actionTypeId":1,"businessUnitId":7,"createdOn":"2026-11-22T10:00:00Z"}`
	if err := q.Enqueue(context.Background(), platform.QueueEntityEvents, bad, 0); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cli(t, "", "worker", "--drain", "--namespace", string(ns), "--http-addr", "127.0.0.1:0", "--log-level", "error"); code != 0 {
		t.Fatalf("worker: %s", errOut)
	}
	code, out, errOut := cli(t, "", "redrive", "--namespace", string(ns), "entity-events-poison")
	if code != 0 || !strings.Contains(out, "moved 1 messages") {
		t.Fatalf("redrive: %d %q %q", code, out, errOut)
	}
	texts, err := q.Peek(context.Background(), platform.QueueEntityEvents)
	if err != nil || len(texts) != 1 || texts[0] != bad {
		t.Fatalf("after redrive the work queue holds %q (%v)", texts, err)
	}
}

func TestNotifySeedAndTrace(t *testing.T) {
	t.Parallel()
	ns := string(testenv.Namespace(t))
	dsn := filepath.Join(t.TempDir(), "settings.db")
	for range 2 { // seeding is idempotent
		code, out, errOut := cli(t, "", "seed", "--settings-dsn", dsn, "../../scripts/seed_incident_submitted_notification.sql")
		if code != 0 || !strings.Contains(out, "applied") {
			t.Fatalf("seed: %d %q %q", code, out, errOut)
		}
	}
	if code, _, errOut := cli(t, "", "seed", "--settings-dsn", dsn, "/no/such.sql"); code != 2 {
		t.Fatalf("seed of a missing file: %d %q", code, errOut)
	}

	// An event-derived type is refused on the direct path, with exit 2.
	code, _, errOut := cli(t, `{"notificationEventTypeId":102,"businessUnitId":42}`, "notify", "--namespace", ns, "-")
	if code != 2 || !strings.Contains(errOut, "derived from events only") {
		t.Fatalf("notify with an event-derived type: %d %q", code, errOut)
	}
	if code, _, errOut := cli(t, `{"notificationEventTypeId":201,"businessUnitId":42,"bogus":1}`, "notify", "--namespace", ns, "-"); code != 2 {
		t.Fatalf("notify with an unknown field: %d %q", code, errOut)
	}
	code, out, errOut := cli(t, `{"notificationEventTypeId":201,"businessUnitId":42,"recipients":[{"channel":"email","address":"a@example.com"}]}`,
		"notify", "--namespace", ns, "-")
	jobKey := strings.TrimSpace(out)
	if code != 0 || len(jobKey) != 36 {
		t.Fatalf("notify: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := cli(t, "", "worker", "--drain", "--namespace", ns, "--settings-dsn", dsn, "--http-addr", "127.0.0.1:0", "--log-level", "error"); code != 0 {
		t.Fatalf("worker: %s", errOut)
	}
	// Business unit 42 has no option for WelcomeEmail in this database: the trace says so.
	code, out, errOut = cli(t, "", "trace", "--namespace", ns, jobKey)
	if code != 0 || !strings.Contains(out, "Skipped (option-not-seeded)") ||
		!regexp.MustCompile(`^answer +Skipped: WelcomeEmail \(201\) is not turned on for business unit 42 — seed a NotificationOption row for it\.\n`).MatchString(out) {
		t.Fatalf("trace: %d, want the answer first and the job Skipped (option-not-seeded):\n%s%s", code, out, errOut)
	}
	if code, out, _ := cli(t, "", "trace", "--namespace", ns, jobKey, "--json"); code != 0 || !strings.Contains(out, `"reason": "option-not-seeded"`) {
		t.Fatalf("trace --json: %d\n%s", code, out)
	}
	if code, _, errOut := cli(t, "", "trace", "--namespace", ns, "not a key"); code != 2 {
		t.Fatalf("trace of junk: %d %q", code, errOut)
	}
}

func TestOutboxCommands(t *testing.T) {
	t.Parallel()
	ns := string(testenv.Namespace(t))
	input := strings.TrimSuffix(ev(12, "2026-11-22T10:00:00Z"), "}") + `,"sourceRow":{"table":"Bookings","partitionKey":"bu-7","rowKey":"1"}}`
	code, out, errOut := cli(t, input, "outbox", "append", "--namespace", ns, "-")
	key := strings.TrimSpace(out)
	if code != 0 || len(key) != 26 {
		t.Fatalf("append: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := cli(t, "", "outbox", "confirm", "--namespace", ns, key); code != 0 || !strings.Contains(out, "Confirmed") {
		t.Fatalf("confirm: %d %q %q", code, out, errOut)
	}
	for _, args := range [][]string{
		{"outbox", "discard", "--namespace", ns, key},                          // already confirmed
		{"outbox", "confirm", "--namespace", ns, "not-a-ulid"},                 // not a key
		{"outbox", "confirm", "--namespace", ns, "01M82BZCKX5JFX81FM1PJ46KQF"}, // no such intent
		{"outbox", "bogus"},
		{"reconcile", "--namespace", ns, "--since", "yesterday"},
	} {
		if code, _, errOut := cli(t, "", args...); code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, %q; want 2 with one line", args, code, errOut)
		}
	}
	if code, _, errOut := cli(t, `{"eventTypeId":12}`, "outbox", "append", "--namespace", ns, "-"); code != 2 || !strings.Contains(errOut, "entityTypeId") {
		t.Fatalf("append of a bad event: %d %q", code, errOut)
	}
	if code, out, errOut := cli(t, "", "reconcile", "--namespace", ns); code != 0 || !strings.Contains(out, "stale intents settled: 0") {
		t.Fatalf("reconcile: %d %q %q", code, out, errOut)
	}
}

func TestWebhooksCommands(t *testing.T) {
	t.Parallel()
	ns := string(testenv.Namespace(t))
	code, _, errOut := cli(t, "", "webhooks", "add", "--namespace", ns, "--url", "http://127.0.0.1:9/hook", "--business-unit", "7", "--event-types", "11,12")
	if code != 2 || !strings.Contains(errOut, "PLATFORM_WEBHOOK_ALLOWLIST") {
		t.Fatalf("a loopback target without the allow-list: %d %q", code, errOut)
	}
	code, out, errOut := cli(t, "", "webhooks", "add", "--namespace", ns, "--url", "https://8.8.8.8/platform", "--business-unit", "7", "--event-types", "11,12", "--secret", "s3cret-Qm7vX2pL9kW4zT8n-R5cJ")
	id := strings.TrimSpace(out)
	if code != 0 || len(id) != 26 {
		t.Fatalf("add: %d %q %q", code, out, errOut)
	}
	code, out, _ = cli(t, "", "webhooks", "list", "--namespace", ns, "--json")
	if code != 0 || !strings.Contains(out, id) || strings.Contains(out, "s3cret-Qm7vX2pL9kW4zT8n-R5cJ") {
		t.Fatalf("list: %d %s (the secret must never be listed)", code, out)
	}
	if code, out, _ := cli(t, "", "webhooks", "disable", "--namespace", ns, id); code != 0 || !strings.Contains(out, "disabled") {
		t.Fatalf("disable: %d %q", code, out)
	}
	if code, _, _ := cli(t, "", "webhooks", "disable", "--namespace", ns, "01M82BZCKX5JFX81FM1PJ46KQF"); code != 2 {
		t.Fatalf("disable of an unknown endpoint: %d", code)
	}
	if code, out, _ := cli(t, "", "webhooks", "enable", "--namespace", ns, id); code != 0 || !strings.Contains(out, "enabled "+id) {
		t.Fatalf("enable: %d %q", code, out)
	}
	if code, out, _ = cli(t, "", "webhooks", "list", "--namespace", ns, "--json"); code != 0 || !strings.Contains(out, `"enabled": true`) {
		t.Fatalf("list after enable: %d %s", code, out)
	}
	if code, _, errOut := cli(t, "", "webhooks", "enable", "--namespace", ns, "01M82BZCKX5JFX81FM1PJ46KQF"); code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("enable of an unknown endpoint: %d %q", code, errOut)
	}
}

// The command line's trace and the HTTP API's give the same answer for the same key, webhook
// deliveries included (the command line used to skip them: it never read the endpoints), with
// bodies withheld by default and shown on request alike.
func TestCLITraceAndHTTPTraceAgree(t *testing.T) {
	t.Parallel()
	ns, w, hook := startCLIWorker(t, 101, "email")
	ctx := context.Background()
	if _, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: hook.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{11}}); err != nil {
		t.Fatal(err)
	}
	event := `{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"entityGuid":"` + guid + `","businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z",` +
		`"notificationEventTypeId":101,"payload":{"firstName":"Ada","guardianEmail":"guardian@example.com"}}`
	if err := w.Queues().Enqueue(ctx, platform.QueueEntityEvents, event, 0); err != nil {
		t.Fatal(err)
	}
	drainCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := w.WaitDrained(drainCtx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	key := "11:1:" + guid + ":2026-11-22T10:00:00.0000000Z:1"
	for _, c := range []struct{ query, flag string }{{"", ""}, {"&showBody=true", "--show-body"}} {
		resp, err := http.Get("http://" + w.HTTPAddr() + "/v1/trace?key=" + url.QueryEscape(key) + c.query)
		if err != nil {
			t.Fatal(err)
		}
		var fromHTTP, fromCLI map[string]any
		err = json.NewDecoder(resp.Body).Decode(&fromHTTP)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"trace", "--namespace", string(ns), key, "--json"}
		if c.flag != "" {
			args = append(args, c.flag)
		}
		code, out, errOut := cli(t, "", args...)
		if code != 0 || json.Unmarshal([]byte(out), &fromCLI) != nil {
			t.Fatalf("%v: %d %s %s", args, code, out, errOut)
		}
		if d, _ := fromHTTP["deliveries"].([]any); len(d) != 1 || len(fromHTTP["jobs"].([]any)) != 1 {
			t.Fatalf("HTTP trace%s: want one job and one webhook delivery: %v", c.query, fromHTTP)
		}
		if !reflect.DeepEqual(fromCLI, fromHTTP) {
			t.Fatalf("%v differs from GET /v1/trace%s:\ncli:  %v\nhttp: %v", args, c.query, fromCLI, fromHTTP)
		}
		withheld, shown := fromCLI["bodiesWithheld"] == true, strings.Contains(out, "now has a profile")
		if withheld != (c.flag == "") || shown == withheld {
			t.Fatalf("%v: bodiesWithheld %v, body shown %v", args, withheld, shown)
		}
	}
	code, out, _ := cli(t, "", "trace", "--namespace", string(ns), key)
	if code != 0 || !regexp.MustCompile(`(?m)^  delivery +webhook:`).MatchString(out) || !strings.Contains(out, "bodies withheld") {
		t.Fatalf("trace: %d\n%s", code, out)
	}
}

// Data the command line did not write (keys, reasons, notes) is printed with its control
// characters escaped: a key cannot move the cursor, retitle the terminal or rewrite a line.
// A key that could not be stored is refused with exit 2 naming the field and the limit.
func TestCLIEscapesControlCharactersAndRefusesKeysTooLong(t *testing.T) {
	t.Parallel()
	ns := string(testenv.Namespace(t))
	raw := func(s string) bool {
		return strings.ContainsFunc(s, func(r rune) bool { return r != '\n' && unprintable(r) })
	}
	hostile := "notification-job:\x1b]0;owned\a\r\x1b[2K\u202e"
	code, out, errOut := cli(t, "", "trace", "--namespace", ns, hostile)
	if code != 0 || raw(out) || !strings.Contains(out, `notification-job:\x1b]0;owned\a\r\x1b[2K\u202e`) {
		t.Errorf("trace %q: %d, printed %q %q; want the key escaped", hostile, code, out, errOut)
	}
	if code, out, errOut := cli(t, "", "cancel", "--namespace", ns, "k\x1b[2J\a"); code != 0 || raw(out) || !strings.Contains(out, `k\x1b[2J\a`) {
		t.Errorf("cancel: %d, printed %q %q; want the key escaped", code, out, errOut)
	}
	if code, _, errOut := cli(t, "", "trace", "--namespace", ns, "\x1b[31m\a"); code != 2 || raw(errOut) {
		t.Errorf("trace of junk: %d, stderr %q", code, errOut)
	}

	long := strings.Repeat("k", 2000)
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{`{"notificationEventTypeId":201,"businessUnitId":42,"cancellationKey":"` + long + `","recipients":[{"channel":"email","address":"a@example.com"}]}`,
			[]string{"notify", "--namespace", ns, "-"}, "cancellationKey: at most 512"},
		{`{"notificationEventTypeId":201,"businessUnitId":42,"recipients":[{"channel":"email","address":"ada@[127.0.0.1]"}]}`,
			[]string{"notify", "--namespace", ns, "-"}, "domain literal"},
		{"", []string{"cancel", "--namespace", ns, long}, "cancellationKey: at most 512"},
		{"", []string{"trace", "--namespace", ns, "notification-job:" + long}, "key: at most 512"},
	} {
		if code, _, errOut := cli(t, c.stdin, c.args...); code != 2 || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%.60v: exit %d, %.200q; want 2 with one line mentioning %q", c.args, code, errOut, c.want)
		}
	}
}

func TestCleanEscapesWhatATerminalWouldActOn(t *testing.T) {
	for in, want := range map[string]string{
		"plain key: é ü 😀": "plain key: é ü 😀",
		`a\b/c#d?e%f`:      `a\b/c#d?e%f`,
		"\x1b[31mred\a":    `\x1b[31mred\a`,
		"line\r\nbreak\t":  `line\r\nbreak\t`,
		"\u009b2J\x7f":     `\u009b2J\x7f`,
		"\u202eevil\u2028": `\u202eevil\u2028`,
		"bad \xff\xfe":     `bad \xff\xfe`,
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
	var b bytes.Buffer
	v := map[string]string{"k": "\x1b\u009b\u202e\x7f\u2028"}
	if err := printJSON(&b, v); err != nil {
		t.Fatal(err)
	}
	var back map[string]string
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || !reflect.DeepEqual(back, v) || strings.ContainsFunc(strings.TrimSpace(b.String()), func(r rune) bool { return r != '\n' && unprintable(r) }) {
		t.Fatalf("printJSON wrote %q (%v): want escapes only, decoding to the same value", b.String(), err)
	}
}

// An intent whose payload is over PLATFORM_MAX_PAYLOAD_BYTES is refused at append (exit 2,
// naming the limit): accepted, its event would be poisoned once confirmed. Not parallel: it
// sets the environment.
func TestOutboxAppendRefusesAPayloadOverTheLimit(t *testing.T) {
	t.Setenv("PLATFORM_MAX_PAYLOAD_BYTES", "1000")
	ns := string(testenv.Namespace(t))
	big := strings.Replace(ev(12, "2026-11-22T10:00:00Z"), `"Grace"`, `"`+strings.Repeat("g", 2000)+`"`, 1)
	code, out, errOut := cli(t, big, "outbox", "append", "--namespace", ns, "-")
	if code != 2 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "PLATFORM_MAX_PAYLOAD_BYTES") {
		t.Fatalf("append of a 2,000-byte payload over a 1,000-byte limit: exit %d, %q %q; want 2 with one line naming the limit", code, out, errOut)
	}
	if code, out, errOut := cli(t, ev(12, "2026-11-22T10:00:00Z"), "outbox", "append", "--namespace", ns, "-"); code != 0 || len(strings.TrimSpace(out)) != 26 {
		t.Fatalf("append under the limit: %d %q %q", code, out, errOut)
	}
}

// A storage configuration that cannot work is exit 2 naming what is wrong, before any request.
func TestBadStorageConfigurationIsUsage(t *testing.T) {
	t.Parallel()
	event := "../../examples/attendee-created.json"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"worker", "--storage-account", "Not_An_Account"}, "3-24 lowercase letters and digits"},
		{[]string{"publish", "--storage-account", "prodaccount", "--storage-credential", "password", event}, `PLATFORM_STORAGE_CREDENTIAL "password": want default or managed-identity`},
		{[]string{"publish", "--storage-credential", "managed_identity", event}, `PLATFORM_STORAGE_CREDENTIAL "managed_identity": want default or managed-identity`},
		{[]string{"publish", "--storage-account", "prodaccount", "--connection-string", "UseDevelopmentStorage=true", event}, "both set: give one"},
		{[]string{"publish", "--storage-credential", "managed-identity", event}, "needs PLATFORM_STORAGE_ACCOUNT"},
		{[]string{"history", "--storage-account", "prodaccount", "--entity-type", "1", "--entity-guid", guid, "--storage-credential", "bogus"}, "want default or managed-identity"},
	} {
		code, out, errOut := cli(t, "", c.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line naming %q", c.args, code, errOut, c.want)
		}
	}
	// Explicitly the default credential, with a connection string, is fine.
	if code, _, errOut := cli(t, "", "publish", "--storage-credential", "default", "--namespace", string(testenv.Namespace(t)), event); code != 0 {
		t.Errorf("publish with --storage-credential default and the development account: %d %s", code, errOut)
	}
}

// settings changed writes the signal every worker drops its cached settings on; anything else
// after settings is bad usage.
func TestSettingsChangedAnnouncesOnTheChangeBus(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	tc, err := tables.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.CreateTables(context.Background(), tables.TableChanges); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := cli(t, "", "settings", "changed", "--namespace", string(ns)); code != 0 || !strings.Contains(out, "told every running worker") {
		t.Fatalf("settings changed: %d %q %q", code, out, errOut)
	}
	rows, err := tc.Changes().Since(context.Background(), time.Now().Add(-time.Minute), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Signal != settings.SignalTopic {
		t.Fatalf("change bus rows %+v, want one %s signal", rows, settings.SignalTopic)
	}
	for _, args := range [][]string{{"settings"}, {"settings", "bogus"}, {"settings", "changed", "extra"}} {
		if code, _, errOut := cli(t, "", args...); code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, %q; want 2 with one line", args, code, errOut)
		}
	}
}
