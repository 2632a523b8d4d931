package worker_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/webhooks"
	"github.com/sirupsen/logrus"
)

// strongSecret is an endpoint secret the entropy rule accepts.
const strongSecret = "whsec-3kq9-ZtV7-pL2m-Xw8R-cN4d-Hy6J"

// receiver is an integrator's endpoint: it verifies signatures and records what it got.
type receiver struct {
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	got    []http.Header
	bodies []string
	fail   int // answer 500 this many times first
	calls  int
}

func newReceiver(t testing.TB, secret string, fail int) *receiver {
	r := &receiver{secret: secret, fail: fail}
	r.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls++
		if !hmac.Equal([]byte(req.Header.Get("X-Platform-Signature")), []byte(webhooks.Sign(r.secret, body))) {
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.calls <= r.fail {
			rw.WriteHeader(http.StatusInternalServerError)
			return
		}
		r.got = append(r.got, req.Header.Clone())
		r.bodies = append(r.bodies, string(body))
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) received() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got), r.calls
}

func TestWebhookDeliveriesExactlyOnceSignedAndFiltered(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	ctx := context.Background()
	a := newReceiver(t, strongSecret+"-a", 0)
	b := newReceiver(t, strongSecret+"-b", 2) // 500, 500, then 204
	c := newReceiver(t, strongSecret+"-c", 0) // subscribes to another type
	var ids []string
	for _, r := range []struct {
		rc    *receiver
		types []int
	}{{a, []int{11, 12}}, {b, []int{12}}, {c, []int{21}}} {
		e, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: r.rc.srv.URL + "/hook", BusinessUnitID: 42, EventTypes: r.types, Secret: r.rc.secret})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	w2 := env.start(env.config()) // a replica started after the endpoints exist sees them at once
	body := event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`)
	send(t, w2, body, body) // delivered twice
	drain(t, w2)
	drain(t, w)

	if got, calls := a.received(); got != 1 || calls != 1 {
		t.Fatalf("endpoint a: %d deliveries in %d calls, want 1 in 1", got, calls)
	}
	if got, calls := b.received(); got != 1 || calls != 3 {
		t.Fatalf("endpoint b: %d deliveries in %d calls, want 1 after 3 attempts", got, calls)
	}
	if _, calls := c.received(); calls != 0 {
		t.Fatalf("endpoint c got %d calls for an event type it did not subscribe to", calls)
	}
	ev, _ := platform.DecodeEvent([]byte(body))
	a.mu.Lock()
	h := a.got[0]
	gotBody := a.bodies[0]
	a.mu.Unlock()
	if h.Get("X-Platform-Event-Key") != ev.Key() || h.Get("Idempotency-Key") != platform.DeliveryKey(ids[0], ev.Key()) ||
		!strings.Contains(gotBody, `"eventTypeId":12`) || !strings.Contains(gotBody, `"firstName":"Ada"`) {
		t.Fatalf("headers %v, body %s", h, gotBody)
	}
	tr := trace(t, w2, ev.Key())
	if len(tr.Deliveries) != 2 {
		t.Fatalf("trace shows %d deliveries, want 2", len(tr.Deliveries))
	}
	for _, d := range tr.Deliveries {
		if d.State != platform.MessageSent {
			t.Fatalf("delivery %s is %s", d.Key, d.State)
		}
		if d.Recipient.Address == ids[1] && d.Attempts != 3 {
			t.Fatalf("endpoint b's delivery took %d attempts, want 3", d.Attempts)
		}
	}
}

func TestWebhookTargetsOnPrivateAddressesAreRefused(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	cfg := env.config()
	cfg.WebhookAllowlist = nil
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"http://127.0.0.1:8080/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data", "http://[::1]/x", "http://localhost/x", "ftp://example.com/x"} {
		if _, err := w.Webhooks().Add(context.Background(), webhooks.NewEndpoint{URL: u, BusinessUnitID: 42, EventTypes: []int{11}}); !errors.Is(err, platform.ErrInvalidInput) {
			t.Errorf("%s: %v, want refused", u, err)
		}
	}
	cfg.WebhookAllowlist = []string{"10.0.0.0/8"}
	w, err = worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Webhooks().Add(context.Background(), webhooks.NewEndpoint{URL: "http://10.1.2.3/hook", BusinessUnitID: 42, EventTypes: []int{11}}); err != nil {
		t.Fatalf("an allow-listed CIDR was refused: %v", err)
	}
}

// BenchmarkWebhookLatency measures publish → webhook received under a small steady load: a
// separate publisher (as a service would be: no in-process nudge) sends 20 events/s, each to
// a distinct entity, to a worker with default settings and one subscribed endpoint. Run it
// with a fixed count: go test -run '^$' -bench WebhookLatency -benchtime 200x ./worker
func BenchmarkWebhookLatency(b *testing.B) {
	env := newNotifyEnv(b, "")
	cfg := env.config()
	cfg.Consumer = queues.ConsumerConfig{} // defaults, as deployed
	w := env.start(cfg)
	ctx := context.Background()

	var mu sync.Mutex
	published := map[string]time.Time{}
	var latencies []time.Duration
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		at := time.Now()
		_, _ = io.Copy(io.Discard, req.Body)
		mu.Lock()
		if t0, ok := published[req.Header.Get("X-Platform-Event-Key")]; ok {
			latencies = append(latencies, at.Sub(t0))
		}
		mu.Unlock()
		rw.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	if _, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: srv.URL, BusinessUnitID: 42, EventTypes: []int{12}}); err != nil {
		b.Fatal(err)
	}
	publisher, err := queues.New(storage.Account{}, env.ns)
	if err != nil {
		b.Fatal(err)
	}
	const rate = 20 // events per second
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		text := event(12, 1, 2, fmt.Sprintf("00000000-0000-0000-0000-%012d", i), "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`)
		ev, _ := platform.DecodeEvent([]byte(text))
		mu.Lock()
		published[ev.Key()] = time.Now()
		mu.Unlock()
		if err := publisher.Enqueue(ctx, platform.QueueEntityEvents, text, 0); err != nil {
			b.Fatal(err)
		}
	}
	testenv.Eventually(b, time.Minute, "every event delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(latencies) >= b.N
	})
	b.StopTimer()
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(float64(latencies[len(latencies)-1].Microseconds())/1000, "max_ms")
	b.ReportMetric(0, "ns/op") // the paced loop's time per event says nothing
}

// syncBuffer collects a worker's log lines.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// teeLogger is t's logger that also keeps every line in the returned buffer, to search.
func teeLogger(t *testing.T) (*logrus.Logger, *syncBuffer) {
	logs := &syncBuffer{}
	log := testenv.Logger(t)
	log.SetOutput(io.MultiWriter(log.Out, logs))
	return log, logs
}

// A webhook URL's userinfo, query and fragment (?token=…) are never shown whole: not for an
// integrator's endpoint, nor for a notification's webhook-channel recipient, whose URL is in
// no message key, log line, refusal or trace (the row keeps it whole, to send to).
func TestWebhookURLCredentialsAreNeverShown(t *testing.T) {
	t.Parallel()
	// The receiver drops every connection: net/http's error (*url.Error) names the URL.
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		mu.Lock()
		queries = append(queries, req.URL.RawQuery)
		mu.Unlock()
		if conn, _, err := rw.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(srv.Close)
	// Webhook-channel recipients: a direct job's, and subscribers' (one refused: a bell in it).
	recipientURL := srv.URL + "/hook?token=SECRET-RECIPIENT"
	env := newNotifyEnv(t, "", option(42, 201, true, "webhook", 0), option(42, 102, true, "webhook", 0),
		subscriber(42, 102, "webhook", srv.URL+"/hook?token=SECRET-SUBSCRIBER"), subscriber(42, 102, "webhook", srv.URL+"/hook?token=SECRET-BELL\a"))
	cfg := env.config()
	var logs *syncBuffer
	cfg.Logger, logs = teeLogger(t)
	w := env.start(cfg)
	ctx := context.Background()
	hook := strings.Replace(srv.URL, "http://", "http://user:SECRET-PW@", 1) + "/hook?token=SECRET-TOKEN#SECRET-FRAGMENT"
	if _, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: hook, BusinessUnitID: 42, EventTypes: []int{12}, Secret: strongSecret}); err != nil {
		t.Fatal(err)
	}
	body := event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`)
	ev, _ := platform.DecodeEvent([]byte(body))
	incident := `{"eventTypeId":31,"entityTypeId":3,"actionTypeId":4,"entityId":9,"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z","notificationEventTypeId":102,"payload":{"summary":"s"}}`
	recipient := platform.Recipient{Channel: platform.ChannelWebhook, Address: recipientURL}
	direct := notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42, Recipients: []platform.Recipient{recipient}}
	job, _, err := w.Notify().CreateJob(ctx, direct, "idem-1")
	if err != nil {
		t.Fatal(err)
	}
	send(t, w, body, incident)
	var tr *notify.Trace
	testenv.Eventually(t, 30*time.Second, "a failed attempt recorded", func() bool {
		tr = trace(t, w, ev.Key())
		return len(tr.Deliveries) == 1 && tr.Deliveries[0].LastError != ""
	})
	incidentJob := "notification-job:102:31:3:9:2026-11-22T10:00:00.0000000Z:4"
	var keys []string
	testenv.Eventually(t, 30*time.Second, "the recipients' messages attempted", func() bool {
		keys = keys[:0]
		for _, jk := range []string{job.Key, incidentJob} {
			for _, m := range onlyJobMessages(t, trace(t, w, jk)) {
				if m.LastError == "" && m.State != platform.MessageUnknown {
					return false
				}
				keys = append(keys, m.Key)
			}
		}
		return len(keys) == 2
	})
	mu.Lock()
	if len(queries) == 0 || !slices.Contains(queries, "token=SECRET-TOKEN") || !slices.Contains(queries, "token=SECRET-RECIPIENT") {
		t.Errorf("the receiver got queries %q: the stored URLs must stay whole, to send to", queries)
	}
	mu.Unlock()
	traced, _ := json.Marshal(tr)
	if lastError := tr.Deliveries[0].LastError; !strings.Contains(lastError, "/hook") || strings.Contains(string(traced), "SECRET") {
		t.Errorf("the trace shows the URL's credentials: lastError %q, trace %s", lastError, traced)
	}
	// The same job and URL are the same message key (idempotency), a secret-free one.
	if again, _, err := w.Notify().CreateJob(ctx, direct, "idem-1"); err != nil || again.Key != job.Key || keys[0] != platform.MessageKey(job.Key, recipient) {
		t.Errorf("the same job again: %v, key %s vs %s; message key %s vs %s", err, again.Key, job.Key, keys[0], platform.MessageKey(job.Key, recipient))
	}
	api := httptest.NewServer(w.Handler())
	t.Cleanup(api.Close)
	for _, k := range append(keys, job.Key, incidentJob, "31:3:9:2026-11-22T10:00:00.0000000Z:4") {
		for _, q := range []string{"", "&showBody=true"} {
			resp, err := http.Get(api.URL + "/v1/trace?key=" + url.QueryEscape(k) + q)
			if err != nil {
				t.Fatal(err)
			}
			traced, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(traced), "/hook") || strings.Contains(string(traced), "SECRET") {
				t.Errorf("GET /v1/trace?key=%s%s: %d, shows a recipient URL's credentials (or no URL at all):\n%s", k, q, resp.StatusCode, traced)
			}
		}
	}
	if refused := onlyJob(t, trace(t, w, incidentJob)).Trail; !slices.ContainsFunc(refused, func(s platform.Step) bool {
		return s.Decision == "recipient refused" && strings.Contains(s.Reason, "control characters")
	}) {
		t.Errorf("the subscriber with a bell in its URL is not a refusal in the trail: %+v", refused)
	}

	all, err := w.Webhooks().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if listed, _ := json.Marshal(all); !strings.Contains(string(listed), "/hook") || strings.Contains(string(listed), "SECRET") {
		t.Errorf("the list shows the URL's credentials: %s", listed)
	}
	resp, err := http.Get(api.URL + "/v1/webhooks")
	if err != nil {
		t.Fatal(err)
	}
	listed, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(listed), "/hook") || strings.Contains(string(listed), "SECRET") {
		t.Errorf("GET /v1/webhooks shows the URL's credentials: %s", listed)
	}
	testenv.Eventually(t, 10*time.Second, "the failed attempt logged", func() bool { return strings.Contains(logs.String(), "EOF") })
	if text := logs.String(); strings.Contains(text, "SECRET") {
		t.Errorf("the log shows the URL's credentials:\n%s", text)
	}
}

func TestWebhookWeakSecretsAreRefused(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	api := httptest.NewServer(w.Handler())
	t.Cleanup(api.Close)
	post := func(secret string) (int, map[string]string) {
		body, _ := json.Marshal(webhooks.NewEndpoint{URL: "https://8.8.8.8/hook", BusinessUnitID: 42, EventTypes: []int{11}, Secret: secret})
		resp, err := http.Post(api.URL+"/v1/webhooks", "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var answer map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&answer)
		return resp.StatusCode, answer
	}
	for _, secret := range []string{"s", "s3cret", "secret-a", strings.Repeat("a", 64), "0123456789abcdef0123456789abcde"} {
		if _, err := w.Webhooks().Add(context.Background(), webhooks.NewEndpoint{URL: "https://8.8.8.8/hook", BusinessUnitID: 42, EventTypes: []int{11}, Secret: secret}); !errors.Is(err, platform.ErrInvalidInput) {
			t.Errorf("secret %q: %v, want refused", secret, err)
		}
		if code, answer := post(secret); code != http.StatusBadRequest || !strings.Contains(answer["error"], "secret") {
			t.Errorf("POST /v1/webhooks with secret %q: %d %v, want 400 naming the secret", secret, code, answer)
		}
	}
	code, answer := post("")
	if code != http.StatusCreated || !strings.HasPrefix(answer["secret"], "whsec_") || webhooks.CheckSecret(answer["secret"]) != nil {
		t.Errorf("POST /v1/webhooks without a secret: %d %v, want one generated (whsec_…)", code, answer)
	}
}

// recipientSecret is the secret a webhook-channel recipient verifies with, derived here as the
// README documents it, not with the worker's code.
func recipientSecret(master, url string) string {
	mac := hmac.New(sha256.New, []byte(master))
	mac.Write([]byte("platform recipient secret\x00" + url))
	return hex.EncodeToString(mac.Sum(nil))
}

func TestWebhookRecipientsEachHaveTheirOwnSecret(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 201, true, "webhook", 0))
	cfg := env.config()
	w := env.start(cfg)
	own := func(url string) string { return recipientSecret(cfg.WebhookSecret, url+"/hook") }
	a := testenv.StartWebhookReceiverFunc(t, own)
	b := testenv.StartWebhookReceiverFunc(t, own)
	// c expects the one PLATFORM_WEBHOOK_SECRET, d expects a's secret: neither may verify.
	c := testenv.StartWebhookReceiver(t, cfg.WebhookSecret)
	d := testenv.StartWebhookReceiver(t, own(a.URL))
	var recipients []platform.Recipient
	for _, r := range []*testenv.WebhookReceiver{a, b, c, d} {
		recipients = append(recipients, platform.Recipient{Channel: platform.ChannelWebhook, Address: r.URL + "/hook"})
	}
	job, _, err := w.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42, Recipients: recipients}, "")
	if err != nil {
		t.Fatal(err)
	}
	drain(t, w)
	for name, r := range map[string]*testenv.WebhookReceiver{"a": a, "b": b} {
		if got, forged := r.Received(); len(got) != 1 || forged != 0 {
			t.Errorf("recipient %s: %v delivered, %d refused; want one delivery signed with its own secret", name, got, forged)
		}
	}
	for name, r := range map[string]*testenv.WebhookReceiver{"c (the shared secret)": c, "d (a's secret)": d} {
		if got, forged := r.Received(); len(got) != 0 || forged != 1 {
			t.Errorf("recipient %s: %v delivered, %d refused; want its one delivery refused: it was signed with another secret", name, got, forged)
		}
	}
	if msgs := onlyJobMessages(t, trace(t, w, job.Key)); len(msgs) != 4 {
		t.Errorf("%d messages, want 4", len(msgs))
	}
}

func onlyJobMessages(t *testing.T, tr *notify.Trace) []*platform.OutgoingMessage {
	t.Helper()
	if len(tr.Jobs) != 1 {
		t.Fatalf("want one job in the trace, got %+v", tr.Jobs)
	}
	return tr.Jobs[0].Messages
}

// A job whose generation began before webhook URLs carrying a credential were hashed in
// message keys, and is retried after, finds the message it already made under the old key
// (the URL whole) instead of making and sending a second one.
func TestAMessageMadeUnderTheOldWebhookKeyIsNotMadeAgain(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 201, true, "webhook", 0))
	cfg := env.config()
	rcv := testenv.StartWebhookReceiverFunc(t, func(url string) string { return recipientSecret(cfg.WebhookSecret, url+"/hook?token=SECRET") })
	address := rcv.URL + "/hook?token=SECRET"
	jobKey := platform.DirectJobKey(201, 42, "upgrade-1")
	old := jobKey + "|webhook|" + address
	if old == platform.MessageKey(jobKey, platform.Recipient{Channel: platform.ChannelWebhook, Address: address}) {
		t.Fatal("the key of a URL with a token is the URL whole: nothing to test")
	}
	w := env.start(cfg) // creates the tables
	tc, err := tables.New(storage.Account{}, env.ns)
	if err != nil {
		t.Fatal(err)
	}
	sent := &platform.OutgoingMessage{Key: old, JobKey: jobKey, NotificationEventTypeID: 201, BusinessUnitID: 42, State: platform.MessageSent,
		Recipient: platform.Recipient{Channel: platform.ChannelWebhook, Address: address}, Subject: "sent before the upgrade"}
	if _, _, _, err := tc.Messages().Ensure(context.Background(), sent); err != nil {
		t.Fatal(err)
	}
	job, _, err := w.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42,
		Recipients: []platform.Recipient{{Channel: platform.ChannelWebhook, Address: address}}}, "upgrade-1")
	if err != nil {
		t.Fatal(err)
	}
	if job.Key != jobKey {
		t.Fatalf("job key %s, want %s", job.Key, jobKey)
	}
	drain(t, w)
	if got, forged := rcv.Received(); len(got) != 0 || forged != 0 {
		t.Fatalf("the receiver got %d deliveries (%d refused): the message made before the upgrade was made and sent again", len(got), forged)
	}
	stored, _, err := tc.Jobs().Get(context.Background(), job.Key)
	if err != nil {
		t.Fatal(err)
	}
	if stored.State != platform.JobGenerated || len(stored.MessageKeys) != 1 || stored.MessageKeys[0] != old {
		t.Fatalf("job %s with message keys %q, want Generated with the one made before", stored.State, stored.MessageKeys)
	}
	// That old key holds the token: a trace shows it redacted, by the job's key or its own.
	for _, key := range []string{job.Key, old} {
		if b, _ := json.Marshal(trace(t, w, key)); strings.Contains(string(b), "SECRET") || !strings.Contains(string(b), "hook?redacted") {
			t.Errorf("trace of %s shows the old key's token, or not the key redacted: %s", platform.ShownKey(key), b)
		}
	}
}
