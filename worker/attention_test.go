package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/api"
	"github.com/platform/platform/worker/notify"
)

// attentionEnv is a worker whose API takes API keys, its log captured, on which tests make
// what needs a person the way it happens: a message whose provider verdict was lost
// (Unknown), one a receiver refused (Failed), a job under a reused key (Conflict), poison.
type attentionEnv struct {
	*notifyEnv
	t     *testing.T
	w     *worker.Worker
	base  string
	logs  *syncBuffer
	fault *failPuts
	// handoff fails the next enqueues to notification-distributor (handoff.n of them).
	handoff *failEnqueues
	// lose holds the addresses whose next mail's Sent is lost: the row's write fails once
	// after the relay took the mail, so the message ends Unknown.
	lose     sync.Map
	receiver *httptest.Server // answers 400: a webhook recipient's message Fails at once
	refused  func() int       // how many requests the receiver refused
}

func newAttentionEnv(t *testing.T) *attentionEnv {
	t.Helper()
	e := &attentionEnv{t: t, fault: &failPuts{}, handoff: &failEnqueues{queue: platform.QueueNotificationDistributor},
		notifyEnv: newNotifyEnv(t, "", option(42, 201, true, "email,webhook", 0), option(43, 201, true, "email,webhook", 0))}
	e.smtp.OnMail = func(m testenv.Mail) {
		if _, ok := e.lose.LoadAndDelete(m.To[0]); ok {
			e.fault.n.Store(1)
		}
	}
	var mu sync.Mutex
	refused := 0
	e.receiver = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		refused++
		mu.Unlock()
		rw.WriteHeader(http.StatusBadRequest)
	}))
	t.Cleanup(e.receiver.Close)
	e.refused = func() int { mu.Lock(); defer mu.Unlock(); return refused }
	cfg := e.config()
	log, logs := teeLogger(t)
	log.SetFormatter(&logrus.JSONFormatter{}) // the audit lines are read back
	cfg.Logger, e.logs = log, logs
	cfg.HTTPAddr, cfg.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Auth = auth.Config{Mode: auth.ModeKeys}
	cfg.Account = storage.Account{Policies: []policy.Policy{e.fault, e.handoff}, Retry: &policy.RetryOptions{MaxRetries: -1}}
	e.w = e.start(cfg)
	e.base = "http://" + e.w.HTTPAddr()
	return e
}

// key makes an API key of role in units (nil: every unit) and returns it with its principal id.
func (e *attentionEnv) key(role auth.Role, units ...int64) (bearer, principal string) {
	e.t.Helper()
	u := auth.Units{All: len(units) == 0, IDs: units}
	k, _, err := e.w.Keys().Create(context.Background(), auth.NewKey{Role: role, Units: u, Name: "attention test"})
	if err != nil {
		e.t.Fatal(err)
	}
	return "Bearer " + k, "key:" + k[len(auth.KeyPrefix):len(auth.KeyPrefix)+26]
}

// job creates a direct job of type 201 in unit to one recipient and returns its message key.
func (e *attentionEnv) job(unit int64, r platform.Recipient, sendAt *time.Time) (jobKey, messageKey string) {
	e.t.Helper()
	job, _, err := e.w.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: unit,
		Recipients: []platform.Recipient{r}, SendAt: sendAt}, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return job.Key, platform.MessageKey(job.Key, r)
}

// unknown makes an email to address in unit whose provider verdict is lost: Unknown.
func (e *attentionEnv) unknown(unit int64, address string) string {
	e.t.Helper()
	e.lose.Store(address, true)
	_, key := e.job(unit, platform.Recipient{Channel: "email", Address: address}, nil)
	e.waitState(key, platform.MessageUnknown)
	return key
}

// failed makes a webhook message in unit that its receiver refuses: Failed. Its URL carries
// a credential (?token=…) that nothing may show.
func (e *attentionEnv) failed(unit int64) string {
	e.t.Helper()
	_, key := e.job(unit, platform.Recipient{Channel: "webhook", Address: e.receiver.URL + "/bad?token=s3cret"}, nil)
	e.waitState(key, platform.MessageFailed)
	return key
}

// conflict makes a job in unit 42 whose key was used again with different content.
func (e *attentionEnv) conflict() string {
	e.t.Helper()
	ctx := context.Background()
	req := notify.DirectJob{NotificationEventTypeID: 202, BusinessUnitID: 42, EventData: json.RawMessage(`{"resetUrl":"https://example.com/r/1"}`)}
	job, _, err := e.w.Notify().CreateJob(ctx, req, "reused")
	if err != nil {
		e.t.Fatal(err)
	}
	req.EventData = json.RawMessage(`{"resetUrl":"https://example.com/r/2"}`)
	if _, _, err := e.w.Notify().CreateJob(ctx, req, "reused"); !errors.Is(err, notify.ErrJobConflict) {
		e.t.Fatalf("the key reused: %v, want a conflict", err)
	}
	return job.Key
}

func (e *attentionEnv) waitState(key string, want platform.MessageState) {
	e.t.Helper()
	testenv.Eventually(e.t, 30*time.Second, key+" "+string(want), func() bool { return storedMessage(e.t, e.ns, key).State == want })
}

// poison puts texts on queue, where the worker poisons each on its first delivery, and waits
// until the poison queue holds at least that many more.
func (e *attentionEnv) poison(queue string, texts ...string) {
	e.t.Helper()
	ctx := context.Background()
	before, err := e.w.Queues().ApproximateCount(ctx, platform.PoisonQueue(queue))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, text := range texts {
		if err := e.w.Queues().Enqueue(ctx, queue, text, 0); err != nil {
			e.t.Fatal(err)
		}
	}
	testenv.Eventually(e.t, 30*time.Second, "poisoned on "+queue, func() bool {
		n, err := e.w.Queues().ApproximateCount(ctx, platform.PoisonQueue(queue))
		return err == nil && n >= before+len(texts)
	})
}

// attention reads GET /v1/attention as bearer.
func (e *attentionEnv) attention(bearer, query string) api.Attention {
	e.t.Helper()
	code, body := call(e.t, "GET", e.base+"/v1/attention"+query, bearer, "")
	if code != http.StatusOK {
		e.t.Fatalf("GET /v1/attention%s: %d %s", query, code, body)
	}
	var a api.Attention
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		e.t.Fatal(err)
	}
	return a
}

// audits are the audit lines of route in the worker's log.
func (e *attentionEnv) audits(route string) []map[string]any {
	var out []map[string]any
	for line := range strings.SplitSeq(e.logs.String(), "\n") {
		var f map[string]any
		if json.Unmarshal([]byte(line), &f) == nil && f["audit"] == true && f["route"] == route {
			out = append(out, f)
		}
	}
	return out
}

// seedMessage stores a message of unit in state under job key jobKey, as the distributor
// would have left it, and returns its key.
func seedMessage(t *testing.T, ns platform.Namespace, jobKey string, unit int64, state platform.MessageState) string {
	t.Helper()
	tc, err := tables.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	r := platform.Recipient{Channel: "email", Address: "seeded@example.com"}
	m := &platform.OutgoingMessage{Key: platform.MessageKey(jobKey, r), JobKey: jobKey, NotificationEventTypeID: 201, BusinessUnitID: unit,
		Recipient: r, Subject: "s", Text: "t", State: state, Attempts: 1}
	if _, _, _, err := tc.Messages().Ensure(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m.Key
}

// What needs a person, to whoever may see it: an admin of every unit sees the jobs, the
// messages of every unit and the poison queues (each poison message identified, never shown
// whole); a support key of unit 42 sees only unit 42's, and no poison. A webhook URL's
// credential is in none of it.
func TestAttentionShowsWhatNeedsAPersonToWhoMaySeeIt(t *testing.T) {
	t.Parallel()
	e := newAttentionEnv(t)
	unknown := e.unknown(42, "maybe@example.com")
	failed := e.failed(43)
	conflict := e.conflict()
	long := `{"note":"` + strings.Repeat("a", 200) + `TAIL-NOT-SHOWN"}`
	// JSON that is no event: its payload's values are personal data, which poison must not show.
	personal := `{"eventTypeId":"eleven","payload":{"ssn":"123-45-6789"},"name":"Ada Lovelace"}`
	e.poison(platform.QueueEntityEvents, `{"eventTypeId":11, "entityTypeId":`, long, personal)
	e.poison(platform.QueueNotificationScheduler, `{"jobKey":"notification-job:nope"}`)
	admin, _ := e.key(auth.Admin)
	support42, _ := e.key(auth.Support, 42)

	a := e.attention(admin, "")
	if time.Since(a.Since) < 7*24*time.Hour-time.Minute || time.Since(a.Since) > 7*24*time.Hour+time.Minute {
		t.Errorf("default window since %s, want 7 days ago", a.Since)
	}
	states := map[string]string{}
	for _, m := range a.Messages.Items {
		states[m.MessageKey] = m.State
		if m.MessageKey == failed && (m.Channel != "webhook" || !strings.HasSuffix(m.Recipient, "/bad?redacted") || m.Attempts != 1 || m.LastError == "") {
			t.Errorf("the Failed message as %+v: want its redacted URL, attempts and error", m)
		}
	}
	if states[unknown] != "Unknown" || states[failed] != "Failed" || len(a.Messages.Items) != 2 || a.Messages.More {
		t.Errorf("messages %+v: want the Unknown and the Failed one", a.Messages.Items)
	}
	if len(a.Jobs.Items) != 1 || a.Jobs.Items[0].JobKey != conflict || a.Jobs.Items[0].State != "Conflict" || a.Jobs.Items[0].BusinessUnitID != 42 {
		t.Errorf("jobs %+v: want the Conflict one", a.Jobs.Items)
	}
	poison := map[string]api.AttentionPoison{}
	for _, p := range a.Poison {
		poison[p.Queue] = p
	}
	if len(a.Poison) != len(platform.WorkQueues) {
		t.Errorf("poison sections %d, want one per work queue (%d)", len(a.Poison), len(platform.WorkQueues))
	}
	abouts := map[string]bool{}
	for _, it := range poison[platform.QueueEntityEvents].Items {
		abouts[it.About] = true
		if it.ID == "" || it.Reason == "" || it.Attempts != 1 || it.InsertedAt.IsZero() || it.FailedAt.IsZero() || it.Host == "" {
			t.Errorf("poison record %+v: want its id, reason, attempts, times and host", it)
		}
	}
	if !abouts["34 bytes, not JSON"] || !abouts[fmt.Sprintf("a JSON object of %d bytes, fields note", len(long))] ||
		!abouts[fmt.Sprintf("a JSON object of %d bytes, fields eventTypeId, name, payload", len(personal))] || poison[platform.QueueEntityEvents].Count < 3 {
		t.Errorf("entity-events poison %+v: want each described by its shape only (size, top-level field names)", poison[platform.QueueEntityEvents])
	}
	if items := poison[platform.QueueNotificationScheduler].Items; len(items) < 1 || items[0].About != "job notification-job:nope" {
		t.Errorf("scheduler poison %+v: want the job its message names", items)
	}
	_, raw := call(t, "GET", e.base+"/v1/attention", admin, "")
	for _, secret := range []string{"s3cret", "TAIL-NOT-SHOWN", "Subject", "aaaa", "123-45-6789", "Lovelace", "eleven", `"entityTypeId":`} {
		if strings.Contains(raw, secret) {
			t.Errorf("the answer shows %q", secret)
		}
	}

	s := e.attention(support42, "?since=1h")
	if len(s.Messages.Items) != 1 || s.Messages.Items[0].MessageKey != unknown || len(s.Jobs.Items) != 1 || len(s.Poison) != 0 ||
		len(s.Notes) != 1 || !strings.Contains(s.Notes[0], "every business unit") {
		t.Errorf("support of unit 42: %+v, want unit 42's message and job, no poison and a note saying why", s)
	}
	if other, _ := e.key(auth.Support, 7); len(e.attention(other, "").Messages.Items) != 0 {
		t.Error("a support key of unit 7 sees messages of other units")
	}
	for _, bad := range []string{"yesterday", "-1h", "32d", "0d", time.Now().Add(-40 * 24 * time.Hour).Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339)} {
		if code, body := call(t, "GET", e.base+"/v1/attention?since="+bad, admin, ""); code != http.StatusBadRequest || !strings.Contains(body, "since") {
			t.Errorf("since=%s: %d %s, want 400 naming since", bad, code, body)
		}
	}
	if a := e.attention(admin, "?since="+time.Now().Add(-10*time.Minute).UTC().Format(time.RFC3339)); len(a.Jobs.Items)+len(a.Messages.Items) == 0 {
		t.Error("since ten minutes ago (RFC 3339): nothing, want what was just made")
	}
}

// The support reads whose cost grows with a table — Needs attention, messages to an address,
// a timeline — stop at their time limit and answer 504 naming what took too long, instead of
// running on after the server's write timeout has given up on the caller.
func TestSupportReadsPastTheirTimeLimitAnswer504(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0", APILimits: api.Limits{SupportReadTimeout: time.Nanosecond}})
	base := "http://" + w.HTTPAddr()
	for path, what := range map[string]string{
		"/v1/attention":                        "the jobs that need attention",
		"/v1/messages?address=ada@example.com": "messages to an address",
		"/v1/timeline/1/" + attendee:           "read the timeline",
	} {
		code, body := call(t, "GET", base+path, "", "")
		if code != http.StatusGatewayTimeout || !strings.Contains(body, "took longer than 1ns") || !strings.Contains(body, what) {
			t.Errorf("GET %s past its time limit: %d %s, want 504 naming %q", path, code, body, what)
		}
	}
}
