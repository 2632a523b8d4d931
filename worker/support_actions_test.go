package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/internal/testenv"
)

// actionCall is one action request a test made, and the audit line it must leave.
type actionCall struct {
	route, key, why, outcome string
	code                     int
}

// Support's actions, through the API, on a real worker, SMTP relay and receiver: mark sent
// sends nothing and records Sent once (the settled hooks counted it); send again sends
// exactly one more; cancel stops a scheduled job for good and refuses a released one. Only an
// admin acts, only on its units' keys; each request leaves one audit line naming the key and
// the reason.
func TestSupportActionsMarkSentSendAgainAndCancel(t *testing.T) {
	t.Parallel()
	e := newAttentionEnv(t)
	marked := e.unknown(42, "marked@example.com")
	again := e.unknown(42, "again@example.com")
	failed := e.failed(42)
	admin, adminID := e.key(auth.Admin)
	scoped, _ := e.key(auth.Admin, 43)
	support, _ := e.key(auth.Support)
	var calls []actionCall
	n := 0
	act := func(bearer, route, field, key string) (int, string) {
		t.Helper()
		n++
		why := fmt.Sprintf("case %d: the provider's log says so", n)
		body, _ := json.Marshal(map[string]string{field: key, "reason": why})
		code, out := call(t, "POST", e.base+strings.TrimPrefix(route, "POST "), bearer, string(body))
		outcome := "ok"
		if code >= 400 {
			outcome = "refused"
		}
		if bearer != support {
			calls = append(calls, actionCall{route, platform.ShownKey(key), why, outcome, code})
		}
		return code, out
	}
	const (
		markSent = "POST /v1/messages/mark-sent"
		resend   = "POST /v1/messages/resend"
		cancel   = "POST /v1/notification-jobs/cancel"
		redrive  = "POST /v1/poison/{queue}/redrive"
	)
	mails := func(to string) int {
		c := 0
		for _, m := range e.smtp.Mails() {
			if m.To[0] == to {
				c++
			}
		}
		return c
	}
	before := scrapeMetrics(t, e.w)

	// A support key looks, and acts on nothing.
	for route, field := range map[string]string{markSent: "messageKey", resend: "messageKey", cancel: "jobKey"} {
		if code, body := act(support, route, field, marked); code != http.StatusForbidden {
			t.Errorf("support on %s: %d %s, want 403", route, code, body)
		}
	}
	if code, body := call(t, "POST", e.base+"/v1/poison/entity-events/redrive", support, `{"reason":"r"}`); code != http.StatusForbidden {
		t.Errorf("support redriving: %d %s, want 403", code, body)
	}
	// An admin of unit 43 does not see unit 42's message: no such key, as in a trace.
	if code, body := act(scoped, markSent, "messageKey", marked); code != http.StatusNotFound || !strings.Contains(body, "no such key") {
		t.Errorf("another unit's message: %d %s, want 404 no such key", code, body)
	}
	if code, body := call(t, "POST", e.base+"/v1/poison/entity-events/redrive", scoped, `{"reason":"r"}`); code != http.StatusForbidden {
		t.Errorf("a unit-scoped admin redriving: %d %s, want 403", code, body)
	}
	for _, body := range []string{`{"messageKey":"` + marked + `"}`, `{"messageKey":"` + marked + `","reason":"a\nb"}`,
		`{"messageKey":"` + marked + `","reason":"` + strings.Repeat("x", 501) + `"}`, `{"messageKey":"` + marked + `","reason":"a\u202eb"}`,
		`{"messageKey":"` + marked + `","reason":"r","extra":1}`, `{"reason":"r"}`} {
		if code, out := call(t, "POST", e.base+"/v1/messages/mark-sent", admin, body); code != http.StatusBadRequest {
			t.Errorf("mark-sent %s: %d %s, want 400", body, code, out)
		}
	}

	// Mark sent: Unknown → Sent, nothing sent, the settled hooks ran; a second time is 409.
	if code, body := act(admin, markSent, "messageKey", marked); code != http.StatusOK || !strings.Contains(body, `"Sent"`) {
		t.Fatalf("mark sent: %d %s", code, body)
	}
	why := calls[len(calls)-1].why
	drain(t, e.w)
	m := storedMessage(t, e.ns, marked)
	last := m.Trail[len(m.Trail)-1]
	if m.State != platform.MessageSent || mails("marked@example.com") != 1 || last.Stage != "support" || last.Decision != "marked sent" ||
		last.Reason != why+" (by "+adminID+")" {
		t.Fatalf("marked: %s, %d mails, last step %+v", m.State, mails("marked@example.com"), last)
	}
	if code, body := act(admin, markSent, "messageKey", marked); code != http.StatusConflict || !strings.Contains(body, "Sent") {
		t.Fatalf("marked twice: %d %s, want 409 naming Sent", code, body)
	}
	// Settled Sent (it was settled Unknown before), but no send latency: the moment is support's.
	checkDeltas(t, before, scrapeMetrics(t, e.w), map[string]float64{messagesSettled("email", platform.MessageSent): 1, effects("email"): 0})
	// Send again: exactly one more mail; then it is Sent, and a Sent message is not resent.
	if code, body := act(admin, resend, "messageKey", again); code != http.StatusOK {
		t.Fatalf("send again: %d %s", code, body)
	}
	e.waitState(again, platform.MessageSent)
	drain(t, e.w)
	if got := mails("again@example.com"); got != 2 {
		t.Fatalf("sent again: the relay got %d copies, want 2 (one more)", got)
	}
	if code, body := act(admin, resend, "messageKey", again); code != http.StatusConflict || !strings.Contains(body, "Sent") {
		t.Fatalf("a Sent message sent again: %d %s, want 409", code, body)
	}
	// A Failed one is tried once more.
	if code, body := act(admin, resend, "messageKey", failed); code != http.StatusOK {
		t.Fatalf("send a Failed one again: %d %s", code, body)
	}
	testenv.Eventually(t, 30*time.Second, "the receiver asked again", func() bool { return e.refused() == 2 })
	e.waitState(failed, platform.MessageFailed)

	// Cancel: a scheduled job never goes out, even after it was due; a released one is 409.
	sendAt := time.Now().Add(3 * time.Second)
	later, _ := e.job(42, platform.Recipient{Channel: "email", Address: "later@example.com"}, &sendAt)
	testenv.Eventually(t, 30*time.Second, "the job scheduled", func() bool { return onlyJob(t, trace(t, e.w, later)).State == platform.JobScheduled })
	if code, body := act(admin, cancel, "jobKey", later); code != http.StatusOK || !strings.Contains(body, `"Skipped"`) {
		t.Fatalf("cancel: %d %s", code, body)
	}
	drain(t, e.w) // the scheduler's hold comes due, and finds the job final
	if j := onlyJob(t, trace(t, e.w, later)); j.State != platform.JobSkipped || j.Reason != platform.ReasonCancelledBySupport || time.Now().Before(sendAt) ||
		mails("later@example.com") != 0 || !strings.Contains(j.Trail[len(j.Trail)-1].Reason, "(by "+adminID+")") {
		t.Fatalf("cancelled job %s (%s), %d mails, trail %+v", j.State, j.Reason, mails("later@example.com"), j.Trail)
	}
	markedJob, _ := platform.MessageJobKey(marked)
	if code, body := act(admin, cancel, "jobKey", markedJob); code != http.StatusConflict || !strings.Contains(body, "already released to the generator") {
		t.Fatalf("cancel a Generated job: %d %s, want 409", code, body)
	}
	if code, body := act(admin, cancel, "jobKey", "notification-job:none"); code != http.StatusNotFound {
		t.Fatalf("cancel a job that does not exist: %d %s, want 404", code, body)
	}

	after := scrapeMetrics(t, e.w)
	for series, want := range map[string]float64{messagesSettled("email", platform.MessageSent): 2, // marked, and again once resent
		effects("email"): 1, // again, once resent; not the one marked
		jobsSettled(201, platform.JobSkipped, platform.ReasonCancelledBySupport): 1} {
		if got := after[series] - before[series]; got != want {
			t.Errorf("%s grew by %v, want %v", series, got, want)
		}
	}

	// One audit line per action request, naming the principal, the key and the reason, and the
	// business unit of a row the caller could see, whether the action was taken or refused by
	// its state (409); none for another unit's row or a missing one (404).
	for _, c := range calls {
		var found []map[string]any
		for _, a := range e.audits(c.route) {
			if a["key"] == c.key && a["why"] == c.why {
				found = append(found, a)
			}
		}
		if len(found) != 1 || found[0]["outcome"] != c.outcome || found[0]["principal"] == "" {
			t.Errorf("%s %s (%q): audit lines %v, want one, outcome %s", c.route, c.key, c.why, found, c.outcome)
			continue
		}
		var unit any // absent
		if c.code == http.StatusOK || c.code == http.StatusConflict {
			unit = float64(42)
		}
		if found[0]["businessUnit"] != unit {
			t.Errorf("%s %s answered %d: audit line's businessUnit %v, want %v", c.route, c.key, c.code, found[0]["businessUnit"], unit)
		}
	}
	if got := len(e.audits(markSent)) + len(e.audits(resend)) + len(e.audits(cancel)) + len(e.audits(redrive)); got != len(calls)+3+1+1+6 {
		t.Errorf("%d audit lines on the action routes, want %d (one per request)", got, len(calls)+3+1+1+6)
	}
}

// failEnqueues fails the next n enqueues to queue before they reach storage: to the caller,
// storage failed (or it crashed) after its row was written and before its message was sent.
type failEnqueues struct {
	queue string
	n     atomic.Int32
}

func (f *failEnqueues) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "-"+f.queue+"/messages") && f.n.Add(-1) >= 0 {
		return nil, errors.New("injected: the enqueue failed after the row was written")
	}
	return req.Next()
}

// A resend that wrote Pending and then failed to hand the message to the distributor (502)
// is finished by asking again: the second resend hands the Pending message over, and the
// recipient gets exactly one more mail.
func TestResendWhoseHandOffFailedIsFinishedByAskingAgain(t *testing.T) {
	t.Parallel()
	e := newAttentionEnv(t)
	key := e.unknown(42, "stuck@example.com")
	admin, _ := e.key(auth.Admin)
	resend := func() (int, string) {
		return call(t, "POST", e.base+"/v1/messages/resend", admin, `{"messageKey":"`+key+`","reason":"the customer asked"}`)
	}
	mails := func() int {
		n := 0
		for _, m := range e.smtp.Mails() {
			if m.To[0] == "stuck@example.com" {
				n++
			}
		}
		return n
	}

	e.handoff.n.Store(1)
	if code, body := resend(); code != http.StatusBadGateway {
		t.Fatalf("resend whose enqueue fails: %d %s, want 502", code, body)
	}
	if m := storedMessage(t, e.ns, key); m.State != platform.MessagePending || m.Attempts != 0 {
		t.Fatalf("after the failed hand-off: %s after %d attempts, want Pending, not yet sent", m.State, m.Attempts)
	}
	drain(t, e.w)
	if m := storedMessage(t, e.ns, key); m.State != platform.MessagePending || mails() != 1 {
		t.Fatalf("nothing on the queue: %s, %d mails; want it still Pending (nothing sweeps Pending), 1 mail", m.State, mails())
	}

	if code, body := resend(); code != http.StatusOK || !strings.Contains(body, `"Pending"`) {
		t.Fatalf("resend again: %d %s, want 200 and Pending (handed over)", code, body)
	}
	e.waitState(key, platform.MessageSent)
	drain(t, e.w)
	if got := mails(); got != 2 {
		t.Fatalf("the relay got %d mails to stuck@, want 2 (exactly one more)", got)
	}
	m := storedMessage(t, e.ns, key)
	resent := 0
	for _, s := range m.Trail {
		if s.Stage == "support" && s.Decision == "resent" {
			resent++
		}
	}
	if resent != 1 || m.Attempts != 1 {
		t.Fatalf("trail %+v, %d attempts: want one support step and one attempt", m.Trail, m.Attempts)
	}
}

// A poison record the worker did not write (its bodyBlob names a tenant's payload) is left
// where it is: redriving it, alone or with the rest, is 409 naming it and why — a refusal,
// not a failure of storage — and the others are moved.
func TestRedriveRefusesAPoisonRecordNotTheWorkersWith409(t *testing.T) {
	t.Parallel()
	e := newAttentionEnv(t)
	admin, _ := e.key(auth.Admin)
	ctx := context.Background()
	poisonQueue := platform.PoisonQueue(platform.QueueEntityEvents)
	for _, rec := range []string{`{"reason":"x","queue":"entity-events","bodyBlob":"bu-1/secret.json"}`, `{"reason":"x","queue":"entity-events","body":"fine"}`} {
		if err := e.w.Queues().Enqueue(ctx, poisonQueue, rec, 0); err != nil {
			t.Fatal(err)
		}
	}
	peeked, err := e.w.Queues().PeekPoison(ctx, platform.QueueEntityEvents)
	if err != nil || len(peeked) != 2 || peeked[0].Record.BodyBlob == "" {
		t.Fatalf("peeked %+v (%v), want the foreign record first", peeked, err)
	}
	foreign := peeked[0].ID
	redrive := func(body string) (int, string) {
		return call(t, "POST", e.base+"/v1/poison/entity-events/redrive", admin, body)
	}

	code, body := redrive(`{"messageId":"` + foreign + `","reason":"try it"}`)
	if code != http.StatusConflict || !strings.Contains(body, foreign) || !strings.Contains(body, "bu-1/secret.json") || !strings.Contains(body, "not written by the worker") {
		t.Fatalf("redrive the foreign record: %d %s, want 409 naming it and why", code, body)
	}
	code, body = redrive(`{"reason":"all of them"}`)
	var out struct {
		Error string `json:"error"`
		Moved int    `json:"moved"`
	}
	if json.Unmarshal([]byte(body), &out) != nil || code != http.StatusConflict || out.Moved != 1 || !strings.Contains(out.Error, foreign) ||
		!strings.Contains(out.Error, "moved 1") {
		t.Fatalf("redrive all: %d %s, want 409 naming the foreign record, the other moved", code, body)
	}
	if n, err := e.w.Queues().ApproximateCount(ctx, poisonQueue); err != nil || n < 1 { // hidden for a while by the redrive
		t.Fatalf("poison after: %d (%v), want the foreign record still there", n, err)
	}
	for _, a := range e.audits("POST /v1/poison/{queue}/redrive") {
		if a["outcome"] != "refused" || a["status"] != float64(http.StatusConflict) {
			t.Errorf("audit line %v: want refused, 409", a)
		}
	}
}

// A redrive's messageId is a queue message's id, a GUID, or 400: nothing else reaches the
// audit line or an error. A GUID not in the poison queue is 404.
func TestRedriveTakesOnlyAGUIDAsMessageID(t *testing.T) {
	t.Parallel()
	e := newAttentionEnv(t)
	admin, _ := e.key(auth.Admin)
	for _, id := range []string{"no-such-id", "<script>alert(1)</script>", "0a1b2c3d-4e5f-6789-abcd-ef012345678\u202e",
		"0a1b2c3d-4e5f-6789-abcd-ef012345678g", "0a1b2c3d04e5f-6789-abcd-ef0123456789", "0a1b2c3d-4e5f-6789-abcd-ef0123456789\n", strings.Repeat("a", 36)} {
		body, _ := json.Marshal(map[string]string{"messageId": id, "reason": "try"})
		if code, out := call(t, "POST", e.base+"/v1/poison/entity-events/redrive", admin, string(body)); code != http.StatusBadRequest || !strings.Contains(out, "GUID") {
			t.Errorf("messageId %q: %d %s, want 400 asking for a GUID", id, code, out)
		}
	}
	for _, a := range e.audits("POST /v1/poison/{queue}/redrive") {
		if a["key"] != nil || a["outcome"] != "refused" {
			t.Errorf("audit line %v: want a refusal without the bad id", a)
		}
	}
	code, out := call(t, "POST", e.base+"/v1/poison/entity-events/redrive", admin, `{"messageId":"0A1B2C3D-4E5F-6789-ABCD-EF0123456789","reason":"try"}`)
	if code != http.StatusNotFound || !strings.Contains(out, "no such message") {
		t.Errorf("a GUID not in poison: %d %s, want 404", code, out)
	}
}
