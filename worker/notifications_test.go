package worker_test

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/settings"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/channels"
	"github.com/platform/platform/worker/delivery"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/outbox"
	"github.com/platform/platform/worker/webhooks"
)

// notifyEnv is one notification test's world: a namespace, a settings database, a real SMTP
// server, and the worker configuration that points at them.
type notifyEnv struct {
	t    testing.TB
	ns   platform.Namespace
	dsn  string
	smtp *testenv.SMTPServer
}

func newNotifyEnv(t testing.TB, dsn string, seeds ...string) *notifyEnv {
	t.Helper()
	if dsn == "" {
		dsn = filepath.Join(t.TempDir(), "settings.db")
	}
	db, err := settings.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range seeds {
		if err := db.Exec(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	return &notifyEnv{t: t, ns: testenv.Namespace(t), dsn: dsn, smtp: testenv.StartSMTP(t)}
}

func option(bu int64, typ int, enabled bool, channels string, delay int) string {
	return fmt.Sprintf(`INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds)
		SELECT %d, %d, %t, '%s', %d WHERE NOT EXISTS (SELECT 1 FROM NotificationOption WHERE BusinessUnitId = %d AND NotificationEventTypeId = %d)`,
		bu, typ, enabled, channels, delay, bu, typ)
}

func subscriber(bu int64, typ int, channel, address string) string {
	return fmt.Sprintf(`INSERT INTO NotificationSubscriber (BusinessUnitId, NotificationEventTypeId, Channel, Address, DisplayName)
		SELECT %d, %d, '%s', '%s', 'Sub' WHERE NOT EXISTS (SELECT 1 FROM NotificationSubscriber
		WHERE BusinessUnitId = %d AND NotificationEventTypeId = %d AND Channel = '%s' AND Address = '%s')`,
		bu, typ, channel, address, bu, typ, channel, address)
}

func (e *notifyEnv) config() worker.Config {
	return worker.Config{
		Namespace: e.ns, Logger: testenv.Logger(e.t), SettingsDSN: e.dsn,
		Consumer: queues.ConsumerConfig{VisibilityTimeout: 2 * time.Second, RetryBackoff: time.Second,
			PollInterval: 20 * time.Millisecond, MaxPollInterval: 100 * time.Millisecond},
		Outbox:           outbox.Config{Disabled: true},
		Delivery:         delivery.Config{SendLease: 2 * time.Second},
		Webhooks:         webhooks.Config{RetrySchedule: []time.Duration{time.Second, time.Second, time.Second, time.Second}},
		SMTP:             &channels.SMTPConfig{Addr: e.smtp.Addr, From: "Platform <platform@example.com>", TLS: e.smtp.ClientTLS},
		WebhookSecret:    "test-secret",
		WebhookAllowlist: []string{"127.0.0.1"}, // the test receivers listen on loopback
	}
}

func (e *notifyEnv) start(cfg worker.Config) *worker.Worker {
	e.t.Helper()
	w, err := worker.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

func trace(t *testing.T, w *worker.Worker, key string) *notify.Trace {
	t.Helper()
	tr, err := w.Notify().Trace(context.Background(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func onlyJob(t *testing.T, tr *notify.Trace) *platform.NotificationJob {
	t.Helper()
	if len(tr.Jobs) != 1 || tr.Jobs[0].Job == nil {
		t.Fatalf("want one job in the trace, got %+v (notes %v)", tr.Jobs, tr.Notes)
	}
	return tr.Jobs[0].Job
}

const guardianEvent = `{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"entityGuid":"%s","businessUnitId":42,` +
	`"createdOn":"2026-11-22T10:00:00Z"%s,"payload":{"firstName":"Ada","lastName":"Lovelace","guardianEmail":"Guardian@Example.com","guardianName":"Byron"}}`

func hinted(guid string) string {
	return fmt.Sprintf(guardianEvent, guid, `,"notificationEventTypeId":101`)
}

func TestHintedEventDeliveredThreeTimesSendsOneMail(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			t.Parallel()
			dsn := ""
			if db == "postgres" {
				dsn = testenv.PostgresDatabase(t)
			}
			env := newNotifyEnv(t, dsn, option(42, 101, true, "email", 0))
			w := env.start(env.config())
			body := hinted(attendee)
			pascal := strings.NewReplacer(`"eventTypeId"`, `"EventTypeId"`, `"notificationEventTypeId"`, `"NotificationEventTypeId"`, `"payload"`, `"Payload"`).Replace(body)
			send(t, w, body, pascal, base64.StdEncoding.EncodeToString([]byte(body)))
			drain(t, w)

			mails := env.smtp.Mails()
			if len(mails) != 1 {
				t.Fatalf("%d mails, want 1", len(mails))
			}
			m := mails[0]
			ev, _ := platform.DecodeEvent([]byte(body))
			wantKey := platform.EventJobKey(101, ev.Key()) + "|email|guardian@example.com"
			if m.To[0] != "guardian@example.com" || m.Header.Get("X-Platform-Message-Key") != wantKey || !m.OverTLS ||
				!strings.Contains(m.Header.Get("Subject"), "Ada") {
				t.Fatalf("mail to %v, key %q (want %q), over TLS %v, subject %q", m.To, m.Header.Get("X-Platform-Message-Key"), wantKey, m.OverTLS, m.Header.Get("Subject"))
			}
			job := onlyJob(t, trace(t, w, ev.Key()))
			tr := trace(t, w, wantKey)
			if job.State != platform.JobGenerated || len(tr.Jobs[0].Messages) != 1 || tr.Jobs[0].Messages[0].State != platform.MessageSent ||
				tr.Jobs[0].Messages[0].Attempts != 1 || tr.Jobs[0].Messages[0].ProviderID == "" {
				t.Fatalf("job %s; message trace %+v", job.State, tr.Jobs[0].Messages)
			}
		})
	}
}

func TestUnhintedCreateAttendeeSendsNothing(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 101, true, "email", 0))
	w := env.start(env.config())
	body := fmt.Sprintf(guardianEvent, attendee, "") // an import: same event, no hint
	send(t, w, body)
	drain(t, w)
	if n := len(env.smtp.Mails()); n != 0 {
		t.Fatalf("%d mails from an event without a hint", n)
	}
	ev, _ := platform.DecodeEvent([]byte(body))
	tr := trace(t, w, ev.Key())
	// The notes: no hint, and the event's snapshot withheld (a body).
	if len(tr.Jobs) != 0 || len(tr.Notes) != 2 || !strings.Contains(tr.Notes[0], "no hint") || !tr.BodiesWithheld || tr.Event.History == nil {
		t.Fatalf("trace %+v", tr)
	}
}

func TestSkipReasonsAreVisibleInTrace(t *testing.T) {
	t.Parallel()
	incident := func(bu int) string {
		return fmt.Sprintf(`{"eventTypeId":31,"entityTypeId":3,"actionTypeId":4,"entityId":%d,"businessUnitId":%d,"createdOn":"2026-11-22T10:00:00Z","notificationEventTypeId":102,"payload":{"summary":"s"}}`, bu, bu)
	}
	env := newNotifyEnv(t, "",
		option(1, 102, true, "email", 0), // seeded, but nobody subscribes
		option(2, 102, false, "email", 0),
		option(3, 102, true, "webhook", 0), subscriber(3, 102, "email", "x@example.com"),
	)
	w := env.start(env.config())
	send(t, w, incident(1), incident(2), incident(3), incident(4))
	drain(t, w)
	for bu, want := range map[int]string{1: platform.ReasonNoRecipients, 2: platform.ReasonDisabled, 3: platform.ReasonNoChannel, 4: platform.ReasonOptionNotSeeded} {
		ev, _ := platform.DecodeEvent([]byte(incident(bu)))
		job := onlyJob(t, trace(t, w, ev.Key()))
		if job.State != platform.JobSkipped || job.Reason != want {
			t.Errorf("business unit %d: %s (%s), want Skipped (%s)", bu, job.State, job.Reason, want)
		}
	}
	if n := len(env.smtp.Mails()); n != 0 {
		t.Fatalf("%d mails sent", n)
	}
}

// A type removed from the registry while jobs of it were on their way (a deployment that
// dropped it): the generator fails those jobs with the reason, and poisons their message.
func TestAJobOfATypeNoLongerRegisteredFailsWithTheReason(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 299, true, "email", 0))
	withType := env.config()
	withType.NotificationTypes = append(mappings.ExampleNotifications(), mappings.NotificationType{
		ID: 299, Name: "RemovedLater", Path: mappings.Direct,
		Render: &mappings.Renderer{Template: "removed-later", Default: &mappings.Template{Subject: "s", Text: "t"}}})
	tool, err := worker.New(withType) // a tool (not started): it writes the job for the workers
	if err != nil {
		t.Fatal(err)
	}
	if err := tool.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := env.start(env.config())
	job, _, err := tool.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: 299, BusinessUnitID: 42,
		Recipients: []platform.Recipient{{Channel: "email", Address: "a@example.com"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	drain(t, w)
	got := onlyJob(t, trace(t, w, job.Key))
	if got.State != platform.JobFailed || got.Reason != platform.ReasonNoGeneratorHandler {
		t.Fatalf("job %s (%s)", got.State, got.Reason)
	}
	texts, err := w.Queues().Peek(context.Background(), platform.PoisonQueue(platform.QueueNotificationGenerator))
	if err != nil || len(texts) != 1 {
		t.Fatalf("generator poison: %v, %d", err, len(texts))
	}
	if rec, _ := queues.DecodePoison(texts[0]); !strings.Contains(rec.Reason, platform.ReasonNoGeneratorHandler) || rec.Attempts != 1 {
		t.Fatalf("poison record %+v", rec)
	}
}

func TestTwoDistributorsRacingOnOneMessageCallTheProviderOnce(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 201, true, "email", 0))
	env.smtp.Delay = 500 * time.Millisecond // a wide send window
	a := env.start(env.config())
	b := env.start(env.config())
	job, _, err := a.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42,
		Recipients: []platform.Recipient{{Channel: "email", Address: "new@example.com"}}}, "signup-77")
	if err != nil {
		t.Fatal(err)
	}
	msgKey := platform.MessageKey(job.Key, platform.Recipient{Channel: "email", Address: "new@example.com"})
	testenv.Eventually(t, 20*time.Second, "the message row", func() bool {
		tr, err := a.Notify().Trace(context.Background(), msgKey, nil)
		return err == nil && len(tr.Jobs) == 1 && len(tr.Jobs[0].Messages) == 1
	})
	// Replicas race: many deliveries of the same distributor step, to two workers.
	for range 8 {
		if err := a.Queues().Enqueue(context.Background(), platform.QueueNotificationDistributor, `{"messageKey":"`+msgKey+`"}`, 0); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, a)
	drain(t, b)
	if n := len(env.smtp.Mails()); n != 1 {
		t.Fatalf("provider called %d times, want 1", n)
	}
	if m := trace(t, a, msgKey).Jobs[0].Messages[0]; m.State != platform.MessageSent || m.Attempts != 1 {
		t.Fatalf("message %s after %d attempts", m.State, m.Attempts)
	}
}

// failPuts fails the next n updates of OutgoingMessages rows (a replace, PUT, or a merge,
// PATCH) before they reach storage.
type failPuts struct{ n atomic.Int32 }

func (f *failPuts) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if (r.Method == http.MethodPut || r.Method == http.MethodPatch) && strings.Contains(r.URL.Path, "OutgoingMessages(") && f.n.Add(-1) >= 0 {
		return nil, errors.New("injected: the worker died after the provider call, before recording Sent")
	}
	return req.Next()
}

func TestCrashAfterProviderCallBeforeSentIsUnknownAndNotResent(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 201, true, "email", 0))
	fault := &failPuts{}
	env.smtp.OnMail = func(testenv.Mail) { fault.n.Store(1) }
	cfg := env.config()
	cfg.Account = storage.Account{Policies: []policy.Policy{fault}, Retry: &policy.RetryOptions{MaxRetries: -1}}
	w := env.start(cfg)
	job, _, err := w.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42,
		Recipients: []platform.Recipient{{Channel: "email", Address: "once@example.com"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	drain(t, w)
	m := trace(t, w, job.Key).Jobs[0].Messages
	if len(m) != 1 || m[0].State != platform.MessageUnknown {
		t.Fatalf("messages %+v, want one Unknown", m)
	}
	if n := len(env.smtp.Mails()); n != 1 {
		t.Fatalf("provider called %d times, want 1 (never resent automatically)", n)
	}
}

func TestConflictingContentUnderOneKeySendsNothing(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 201, true, "email", 0))
	cfg := env.config()
	w := setUpOnly(t, cfg)
	ctx := context.Background()
	req := notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42, EventData: json.RawMessage(`{"firstName":"A"}`),
		Recipients: []platform.Recipient{{Channel: "email", Address: "c@example.com"}}}
	first, created, err := w.Notify().CreateJob(ctx, req, "key-1")
	if err != nil || !created {
		t.Fatalf("first: %v, created %v", err, created)
	}
	again, created, err := w.Notify().CreateJob(ctx, req, "key-1")
	if err != nil || created || again.Key != first.Key {
		t.Fatalf("the same request again must be the same job: %v, created %v", err, created)
	}
	req.EventData = json.RawMessage(`{"firstName":"B"}`)
	if _, _, err := w.Notify().CreateJob(ctx, req, "key-1"); !errors.Is(err, notify.ErrJobConflict) {
		t.Fatalf("different content under one key: %v, want ErrJobConflict", err)
	}
	env.start(cfg)
	drain(t, w)
	if job := onlyJob(t, trace(t, w, first.Key)); job.State != platform.JobConflict || job.Reason != platform.ReasonConflict {
		t.Fatalf("job %s (%s), want Conflict", job.State, job.Reason)
	}
	if n := len(env.smtp.Mails()); n != 0 {
		t.Fatalf("%d mails sent for a conflicted job", n)
	}
}

// A message written before recipients from event data lost their display name, and rendered
// again after (a generator redelivery straddling the deploy), is the same message: it is
// sent, once — not a Conflict that is never sent. The key names the address; the name is not
// what the message says.
func TestADisplayNameDroppedBetweenRendersIsNotAConflict(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	cfg := env.config()
	w := setUpOnly(t, cfg)
	ctx := context.Background()
	tc, err := tables.New(storage.Account{}, env.ns)
	if err != nil {
		t.Fatal(err)
	}
	d := delivery.New(cfg.Delivery, cfg.Logger, w.Queues(), tc.Messages(), &delivery.Channels{})
	jobKey := "notification-job:101:11:1:" + attendee + ":2026-11-22T10:00:00.0000000Z:1"
	to := platform.Recipient{Channel: platform.ChannelEmail, Address: "guardian@example.com", Name: "Byron"}
	before := &platform.OutgoingMessage{Key: platform.MessageKey(jobKey, to), JobKey: jobKey, NotificationEventTypeID: 101, BusinessUnitID: 42,
		Recipient: to, Subject: "Ada now has a profile", Text: "Hello"}
	after := *before
	after.Recipient.Name = ""
	for _, m := range []*platform.OutgoingMessage{before, &after} {
		if err := d.Ensure(ctx, m, "generator"); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := d.Get(ctx, before.Key); err != nil || m.State != platform.MessagePending {
		t.Fatalf("the message rendered again without the name: %v %+v, want it still Pending", err, m)
	}
	drain(t, env.start(cfg))
	if m, err := d.Get(ctx, before.Key); err != nil || m.State != platform.MessageSent || len(env.smtp.Mails()) != 1 {
		t.Fatalf("%v %+v, %d mail(s): want Sent, once", err, m, len(env.smtp.Mails()))
	}
}

func TestWebhookSignedRetriedOn500FailedOn400(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 201, true, "email,webhook", 0))
	var mu sync.Mutex
	calls := map[string]int{}
	receiver := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !hmac.Equal([]byte(r.Header.Get("X-Platform-Signature")), []byte(webhooks.Sign(webhooks.RecipientSecret("test-secret", "http://"+r.Host+r.URL.Path), body))) ||
			r.Header.Get("Idempotency-Key") == "" {
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		calls[r.URL.Path]++
		n := calls[r.URL.Path]
		mu.Unlock()
		switch {
		case r.URL.Path == "/bad":
			rw.WriteHeader(http.StatusBadRequest)
		case n <= 2:
			rw.WriteHeader(http.StatusInternalServerError)
		default:
			rw.WriteHeader(http.StatusNoContent)
		}
	}))
	defer receiver.Close()
	w := env.start(env.config())
	var keys []string
	for _, path := range []string{"/flaky", "/bad"} {
		job, _, err := w.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42,
			Recipients: []platform.Recipient{{Channel: "webhook", Address: receiver.URL + path}}}, "")
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, job.Key)
	}
	drain(t, w)
	flaky := trace(t, w, keys[0]).Jobs[0].Messages[0]
	bad := trace(t, w, keys[1]).Jobs[0].Messages[0]
	mu.Lock()
	defer mu.Unlock()
	if flaky.State != platform.MessageSent || flaky.Attempts != 3 || calls["/flaky"] != 3 {
		t.Fatalf("flaky endpoint: %s after %d attempts, %d calls; want Sent after 3", flaky.State, flaky.Attempts, calls["/flaky"])
	}
	if bad.State != platform.MessageFailed || bad.Attempts != 1 || calls["/bad"] != 1 || !strings.Contains(bad.LastError, "400") {
		t.Fatalf("400 endpoint: %s after %d attempts (%s), %d calls; want Failed at once", bad.State, bad.Attempts, bad.LastError, calls["/bad"])
	}
}

func TestDelayIsHonouredAcrossSeveralHolds(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 201, true, "email", 3))
	cfg := env.config()
	cfg.Notify.MaxHold = time.Second // a 3 s delay becomes a chain of holds
	w := env.start(cfg)
	job, _, err := w.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42,
		Recipients: []platform.Recipient{{Channel: "email", Address: "later@example.com"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the delayed mail", func() bool { return len(env.smtp.Mails()) == 1 })
	got := onlyJob(t, trace(t, w, job.Key))
	if elapsed := time.Since(got.CreatedAt); elapsed < 3*time.Second {
		t.Fatalf("sent %s after creation, before the 3 s delay", elapsed)
	}
	holds := 0
	for _, s := range got.Trail {
		if s.Decision == "held" {
			holds++
		}
	}
	if !got.DueAt.Equal(got.CreatedAt.Add(3*time.Second).Truncate(100*time.Nanosecond)) || holds != 1 {
		t.Fatalf("due %s (created %s), %d held steps in %+v", got.DueAt, got.CreatedAt, holds, got.Trail)
	}
}

func TestCancelledReminderNeverSends(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 201, true, "email", 0))
	w := env.start(env.config())
	sendAt := time.Now().Add(2 * time.Second)
	job, _, err := w.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42,
		SendAt: &sendAt, CancellationKey: "booking-9-reminder",
		Recipients: []platform.Recipient{{Channel: "email", Address: "r@example.com"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Notify().Cancel(context.Background(), "booking-9-reminder", 0); err != nil {
		t.Fatal(err)
	}
	drain(t, w)
	if got := onlyJob(t, trace(t, w, job.Key)); got.State != platform.JobSkipped || got.Reason != platform.ReasonCancelled {
		t.Fatalf("job %s (%s), want Skipped (cancelled)", got.State, got.Reason)
	}
	if n := len(env.smtp.Mails()); n != 0 {
		t.Fatalf("a cancelled reminder sent %d mails", n)
	}
}

func TestDualPathGuardrail(t *testing.T) {
	t.Parallel()
	reg, err := mappings.NewNotificationRegistry(mappings.ExampleNotifications()...)
	if err != nil {
		t.Fatal(err)
	}
	direct, fromEvents := reg.IDs(mappings.Direct), reg.IDs(mappings.FromEvents)
	for _, id := range direct {
		if slices.Contains(fromEvents, id) {
			t.Fatalf("notification type %d is both direct and derived from events", id)
		}
	}
	// A registration that breaks the rule is refused when the worker is made, naming the type.
	both := append(mappings.ExampleNotifications(), mappings.NotificationType{
		ID: mappings.NotificationIncidentSubmitted, Name: "IncidentSubmittedByHand", Path: mappings.Direct,
		Render: &mappings.Renderer{Template: "incident-submitted"}})
	_, err = worker.New(worker.Config{Namespace: testenv.Namespace(t), NotificationTypes: both})
	if err == nil || !strings.Contains(err.Error(), "notification type 102 (IncidentSubmittedByHand)") || !strings.Contains(err.Error(), "dual-path guardrail") {
		t.Fatalf("a worker made with a type on both paths: %v", err)
	}
	// The client refuses an event-derived type.
	env := newNotifyEnv(t, "")
	w, err := worker.New(env.config())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = w.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: mappings.NotificationIncidentSubmitted, BusinessUnitID: 42}, "")
	if !errors.Is(err, notify.ErrInvalidJob) || !strings.Contains(err.Error(), "derived from events only") {
		t.Fatalf("creating an event-derived type directly: %v", err)
	}
}

func TestSettingsUpdateNotifiesOnlyForNotableFields(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 103, true, "email", 0), subscriber(42, 103, "email", "parents@example.com"))
	w := env.start(env.config())
	settingsEvent := func(at, field string) string {
		return fmt.Sprintf(`{"eventTypeId":41,"entityTypeId":4,"actionTypeId":2,"businessUnitId":42,"createdOn":"%s","changedFields":["%s"],"payload":{"openingHours":"8-18"}}`, at, field)
	}
	send(t, w, settingsEvent("2026-11-22T10:00:00Z", "openingHours"), settingsEvent("2026-11-22T11:00:00Z", "internalNote"))
	drain(t, w)
	mails := env.smtp.Mails()
	if len(mails) != 1 || mails[0].To[0] != "parents@example.com" || !strings.Contains(mails[0].Data, "openingHours") {
		t.Fatalf("mails %+v", mails)
	}
}

func TestStorageRequestsPerDeliveredEmail(t *testing.T) {
	t.Parallel()
	counter := &storage.Counter{}
	env := newNotifyEnv(t, "", option(42, 102, true, "email", 0), subscriber(42, 102, "email", "m@example.com"))
	cfg := env.config()
	cfg.Account = storage.Account{Counter: counter}
	w := env.start(cfg)
	send(t, w, `{"eventTypeId":31,"entityTypeId":3,"actionTypeId":4,"entityId":1,"businessUnitId":42,"createdOn":"2026-01-01T00:00:00Z","notificationEventTypeId":102}`)
	drain(t, w) // every queue, table and container exists now
	counter.Reset()
	const n = 32
	for i := range n {
		ev, _ := platform.DecodeEvent([]byte(fmt.Sprintf(`{"eventTypeId":31,"entityTypeId":3,"actionTypeId":4,"entityId":%d,"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z","notificationEventTypeId":102,"payload":{"summary":"s%d"}}`, i+2, i)))
		if _, err := w.Queues().Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, w)
	if got := len(env.smtp.Mails()); got != n+1 {
		t.Fatalf("%d mails, want %d", got, n+1)
	}
	c := counter.Snapshot()
	var work int64
	var parts []string
	for _, k := range []string{storage.KindEnqueue, storage.KindDequeue, storage.KindDelete, storage.KindUpdate, storage.KindTableRead, storage.KindTableWrite, storage.KindTableBatch, storage.KindBlob} {
		work += c[k]
		parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(c[k])/n))
	}
	t.Logf("per delivered email (hinted event → history → job, released and generated at once → distributor → SMTP, n=%d): %s → %.2f requests (plus %d empty polls)",
		n, strings.Join(parts, ", "), float64(work)/n, c[storage.KindDequeueEmpty])
	// publish and distributor: no scheduler hop, and the job is generated in its event's
	// handler, not through notification-generator (3n enqueues). A few more when an event is
	// redelivered under load (its visibility is 2 s here): the redelivery hands its job's
	// Pending message to the distributor again.
	if c[storage.KindTableWrite] == 0 || c[storage.KindEnqueue] < 2*n || c[storage.KindEnqueue] > 2*n+n/8 {
		t.Fatalf("counts look wrong (want %d enqueues, a few more at most): %v", 2*n, c)
	}
	// The generator and the distributor take the row their message carries: without it they
	// read the job and the message, 2 reads per email.
	if c[storage.KindTableRead] > n/4 {
		t.Fatalf("%d table reads for %d emails: the stages read rows their messages carry", c[storage.KindTableRead], n)
	}
}

// failFirstEnqueue fails the first enqueue to one queue before it reaches storage: the row of
// a step is written, the message of the next step is lost, as when the worker dies in between.
type failFirstEnqueue struct {
	queue string
	done  atomic.Bool
}

func (f *failFirstEnqueue) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "-"+f.queue+"/messages") && f.done.CompareAndSwap(false, true) {
		return nil, errors.New("injected: died between writing the row and sending the next step")
	}
	return req.Next()
}

// failFirstMessageInsert fails the first insert of an outgoing message before it reaches
// storage, and counts the messages sent to notification-generator.
type failFirstMessageInsert struct {
	failed         atomic.Bool
	generatorSends atomic.Int32
}

func (f *failFirstMessageInsert) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, tables.TableOutgoingMessages) && f.failed.CompareAndSwap(false, true) {
		return nil, errors.New("injected: the message row was not written")
	}
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "-"+platform.QueueNotificationGenerator+"/messages") {
		f.generatorSends.Add(1)
	}
	return req.Next()
}

// An event's job released at once is generated in the event's handler and written Generated,
// its messages after: when writing a message fails (a crash there), the event is redelivered,
// finds the job Generated and makes sure of its messages; the mail goes out once, and nothing
// goes through notification-generator.
func TestFailureBetweenAGeneratedJobAndItsMessagesSendsOnce(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 101, true, "email", 0))
	fault := &failFirstMessageInsert{}
	cfg := env.config()
	cfg.Account = storage.Account{Policies: []policy.Policy{fault}, Retry: &policy.RetryOptions{MaxRetries: -1}}
	w := env.start(cfg)
	send(t, w, hinted(attendee))
	drain(t, w)
	ev, err := platform.DecodeEvent([]byte(hinted(attendee)))
	if err != nil {
		t.Fatal(err)
	}
	if !fault.failed.Load() {
		t.Fatal("the fault was never injected")
	}
	if n := len(env.smtp.Mails()); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
	if n := fault.generatorSends.Load(); n != 0 {
		t.Fatalf("%d messages to notification-generator, want 0", n)
	}
	job := onlyJob(t, trace(t, w, ev.Key()))
	var generated int
	for _, st := range job.Trail {
		if st.Stage == "generator" && st.Decision == "generated" {
			generated++
		}
	}
	if job.State != platform.JobGenerated || generated != 1 || len(job.MessageKeys) != 1 {
		t.Fatalf("job %s with %d generated steps and message keys %v, want Generated once with one message", job.State, generated, job.MessageKeys)
	}
}

// The same crash, but the event comes back to a replica that does not generate (role events
// only, as deploy/azure runs it): it finds the job Generated with a message missing, generates
// that message itself and hands it on; a notifications replica sends it once.
func TestAGeneratedJobsMissingMessageIsMadeByAReplicaThatDoesNotGenerate(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 101, true, "email", 0))
	fault := &failFirstMessageInsert{}
	cfg := env.config()
	cfg.Account = storage.Account{Policies: []policy.Policy{fault}, Retry: &policy.RetryOptions{MaxRetries: -1}}
	cfg.Consumer.RetryBackoff = 3 * time.Second // time to stop a before it takes the event again
	a := env.start(cfg)
	send(t, a, hinted(attendee))
	testenv.Eventually(t, 20*time.Second, "the message insert failed", fault.failed.Load)
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	events, notifications := env.config(), env.config()
	events.Roles, notifications.Roles = worker.RoleSet{worker.RoleEvents}, worker.RoleSet{worker.RoleNotifications}
	b, c := env.start(events), env.start(notifications)
	testenv.Eventually(t, 30*time.Second, "one mail", func() bool { return len(env.smtp.Mails()) == 1 })
	drain(t, b)
	drain(t, c)
	if n := len(env.smtp.Mails()); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
	ev, err := platform.DecodeEvent([]byte(hinted(attendee)))
	if err != nil {
		t.Fatal(err)
	}
	tr := trace(t, b, ev.Key())
	job := onlyJob(t, tr)
	if job.State != platform.JobGenerated || len(job.MessageKeys) != 1 || len(tr.Jobs[0].Messages) != 1 || tr.Jobs[0].Messages[0].State != platform.MessageSent {
		t.Fatalf("job %s with keys %v and messages %+v, want Generated with one message, Sent", job.State, job.MessageKeys, tr.Jobs[0].Messages)
	}
}

func TestCrashBetweenRowAndNextStepDoesNotStrandTheJob(t *testing.T) {
	t.Parallel()
	for _, q := range []string{platform.QueueNotificationScheduler, platform.QueueNotificationGenerator, platform.QueueNotificationDistributor} {
		t.Run(q, func(t *testing.T) {
			t.Parallel()
			delay := 0
			if q == platform.QueueNotificationScheduler {
				delay = 1 // a job due at once skips the scheduler
			}
			env := newNotifyEnv(t, "", option(42, 101, true, "email", delay), option(42, 201, true, "email", 0))
			fault := &failFirstEnqueue{queue: q}
			cfg := env.config()
			cfg.Account = storage.Account{Policies: []policy.Policy{fault}, Retry: &policy.RetryOptions{MaxRetries: -1}}
			w := env.start(cfg)
			if q == platform.QueueNotificationGenerator {
				// An event's job due at once is generated in the event's handler; a direct job
				// still goes through notification-generator. Its creation fails with the lost
				// message, and the caller repeats it with its idempotency key, which finds the
				// job written and sends it on.
				job := notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42, Recipients: []platform.Recipient{{Channel: "email", Address: "direct@example.com"}}}
				if _, _, err := w.Notify().CreateJob(context.Background(), job, "crash-before-generator"); err == nil {
					t.Fatal("the job was created although its generator message was lost")
				}
				if _, _, err := w.Notify().CreateJob(context.Background(), job, "crash-before-generator"); err != nil {
					t.Fatal(err)
				}
			} else {
				send(t, w, hinted(attendee))
			}
			drain(t, w)
			if !fault.done.Load() {
				t.Fatal("the fault was never injected")
			}
			if n := len(env.smtp.Mails()); n != 1 {
				t.Fatalf("%d mails after losing the %s message, want 1", n, q)
			}
		})
	}
}

func TestTemplatesFromBlobStorage(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 201, true, "email", 0),
		`INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds, TemplateName)
		 SELECT 43, 201, TRUE, 'email', 0, 'missing-template' WHERE NOT EXISTS (SELECT 1 FROM NotificationOption WHERE BusinessUnitId = 43)`)
	env.smtp.Username, env.smtp.Password = "relay-user", "relay-pass"
	cfg := env.config()
	cfg.SMTP.Username, cfg.SMTP.Password = "relay-user", "relay-pass"
	w := env.start(cfg)
	tmpl := `{"subject":"Hi {{.Data.firstName}}","text":"Custom text for {{.Recipient.Address}}","html":"<b>{{.Data.firstName}}</b>"}`
	if err := w.Blobs().Put(context.Background(), platform.ContainerNotificationTemplates, "welcome-email.json", []byte(tmpl)); err != nil {
		t.Fatal(err)
	}
	create := func(bu int64, name string) string {
		job, _, err := w.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: bu,
			EventData: json.RawMessage(`{"firstName":"` + name + `"}`), Recipients: []platform.Recipient{{Channel: "email", Address: "t@example.com"}}}, "")
		if err != nil {
			t.Fatal(err)
		}
		return job.Key
	}
	custom, missing := create(42, "<Eve>"), create(43, "Bob")
	drain(t, w)
	mails := env.smtp.Mails()
	if len(mails) != 1 || mails[0].Header.Get("Subject") != "Hi <Eve>" || !strings.Contains(mails[0].Data, "<b>&lt;Eve&gt;</b>") {
		t.Fatalf("mails %+v", mails)
	}
	if job := onlyJob(t, trace(t, w, missing)); job.State != platform.JobFailed || job.Reason != platform.ReasonNoTemplate+": missing-template" {
		t.Fatalf("job with a missing template: %s (%s)", job.State, job.Reason)
	}
	_ = custom
}

func TestLostSMTPVerdictIsUnknownNotRetried(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 201, true, "email", 0))
	env.smtp.HangUpAfterData = true
	w := env.start(env.config())
	job, _, err := w.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42,
		Recipients: []platform.Recipient{{Channel: "email", Address: "maybe@example.com"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	drain(t, w)
	m := trace(t, w, job.Key).Jobs[0].Messages
	if len(m) != 1 || m[0].State != platform.MessageUnknown || m[0].Attempts != 1 {
		t.Fatalf("messages %+v, want one Unknown after one attempt", m)
	}
	if n := len(env.smtp.Mails()); n != 1 {
		t.Fatalf("the relay got %d copies, want 1", n)
	}
}

// setUpOnly makes a worker of cfg and its storage, without starting it: a test drives its
// stages by hand.
func setUpOnly(t *testing.T, cfg worker.Config) *worker.Worker {
	t.Helper()
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w
}
