package worker_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/runs"
	"github.com/platform/platform/worker/webhooks"
)

// spans indexes what a test's in-memory exporter holds.
type spans struct {
	t    *testing.T
	all  tracetest.SpanStubs
	byID map[oteltrace.SpanID]tracetest.SpanStub
}

func exported(t *testing.T, exp *tracetest.InMemoryExporter) *spans {
	s := &spans{t: t, all: exp.GetSpans(), byID: map[oteltrace.SpanID]tracetest.SpanStub{}}
	for _, sp := range s.all {
		s.byID[sp.SpanContext.SpanID()] = sp
	}
	return s
}

func (s *spans) named(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, sp := range s.all {
		if sp.Name == name {
			out = append(out, sp)
		}
	}
	return out
}

// child is the one span called name whose parent is parent; the test fails otherwise.
func (s *spans) child(parent tracetest.SpanStub, name string) tracetest.SpanStub {
	s.t.Helper()
	var found []tracetest.SpanStub
	for _, sp := range s.all {
		if sp.Name == name && sp.Parent.SpanID() == parent.SpanContext.SpanID() {
			found = append(found, sp)
		}
	}
	if len(found) != 1 {
		var names []string
		for _, sp := range s.all {
			if sp.Parent.SpanID() == parent.SpanContext.SpanID() {
				names = append(names, sp.Name)
			}
		}
		s.t.Fatalf("%d spans %q under %q, want 1 (its children: %v)", len(found), name, parent.Name, names)
	}
	if found[0].SpanContext.TraceID() != parent.SpanContext.TraceID() {
		s.t.Fatalf("%q is in trace %s, its parent %q in %s", name, found[0].SpanContext.TraceID(), parent.Name, parent.SpanContext.TraceID())
	}
	return found[0]
}

func attr(sp tracetest.SpanStub, key string) attribute.Value {
	for _, a := range sp.Attributes {
		if string(a.Key) == key {
			return a.Value
		}
	}
	return attribute.Value{}
}

func traceparentOf(sp tracetest.SpanStub) string {
	return "00-" + sp.SpanContext.TraceID().String() + "-" + sp.SpanContext.SpanID().String() + "-01"
}

// One hinted event, published by the worker's own client, is one trace from its publish to the
// mail and to an integrator's webhook: each queue hop's process span is the child of the
// publish span that wrote its message, the router runs each concern in a span of its own, the
// sends are the distributor's children, and the webhook request carries the trace (and still
// verifies). Log lines written on the way carry the trace id. The spans are exported by the
// worker's stop (the batcher's own timer is an hour).
func TestOneHintedEventIsOneTraceFromPublishToMailAndWebhook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := newNotifyEnv(t, "", option(42, 101, true, "email", 0))
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Hour)))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cfg := env.config()
	cfg.TracerProvider = tp
	logs := logtest.NewLocal(cfg.Logger.(*logrus.Logger))
	w := env.start(cfg)
	receiver := newRecordingReceiver(t, 0)
	endpoint, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: receiver.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{11}})
	if err != nil {
		t.Fatal(err)
	}

	ev, err := platform.DecodeEvent([]byte(hinted(attendee)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Queues().Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the mail and the webhook", func() bool {
		return len(env.smtp.Mails()) == 1 && len(receiver.requests()) == 1
	})
	drain(t, w)
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}

	s := exported(t, exp)
	roots := s.named("entity-events publish")
	if len(roots) != 1 || roots[0].Parent.IsValid() || roots[0].SpanKind != oteltrace.SpanKindProducer {
		t.Fatalf("entity-events publish spans %+v: want one producer span, the trace's root", roots)
	}
	root := roots[0]
	traceID := root.SpanContext.TraceID()
	for _, sp := range s.all {
		if sp.SpanContext.TraceID() != traceID {
			t.Errorf("span %q is in trace %s, not the event's %s", sp.Name, sp.SpanContext.TraceID(), traceID)
		}
	}

	event := s.child(root, "entity-events process")
	if event.SpanKind != oteltrace.SpanKindConsumer || !event.Parent.IsRemote() || attr(event, "messaging.system").AsString() != "azure_queues" ||
		attr(event, "messaging.destination.name").AsString() != platform.QueueEntityEvents || attr(event, "messaging.message.id").AsString() == "" ||
		attr(event, "messaging.message.id").AsString() != attr(root, "messaging.message.id").AsString() ||
		attr(event, "messaging.azure_queues.message.dequeue_count").AsInt64() != 1 || attr(event, "platform.event_key").AsString() != ev.Key() {
		t.Errorf("entity-events process span: kind %v, remote parent %v, attributes %v", event.SpanKind, event.Parent.IsRemote(), event.Attributes)
	}
	s.child(event, "concern realtime")
	notification := s.child(event, "concern notification")
	hooks := s.child(event, "concern webhooks")

	// Storage calls are children of what made them: the history row of its concern, the
	// enqueue of its publish span, the delete of the message's process span.
	row := s.child(s.child(event, "concern history"), "table.write")
	if row.SpanKind != oteltrace.SpanKindClient || attr(row, "http.response.status_code").AsInt64() != 204 || attr(row, "server.address").AsString() == "" {
		t.Errorf("history row's storage span: kind %v, attributes %v", row.SpanKind, row.Attributes)
	}
	s.child(event, "queue.delete")

	// The job is due at once: generated in the event's handler, its message straight to the
	// distributor, with no hop through the generator's queue.
	toDistributor := s.child(notification, "notification-distributor publish")
	s.child(toDistributor, "queue.enqueue")
	mailer := s.child(toDistributor, "notification-distributor process")
	mail := s.child(mailer, "send email")
	if mail.SpanKind != oteltrace.SpanKindClient || attr(mail, "platform.channel").AsString() != platform.ChannelEmail || mail.Status.Code == codes.Error {
		t.Errorf("send email span: kind %v, attributes %v, status %+v", mail.SpanKind, mail.Attributes, mail.Status)
	}
	delivery := s.child(s.child(hooks, "notification-distributor publish"), "notification-distributor process")
	post := s.child(delivery, "send endpoint")
	for _, sp := range s.all {
		if strings.Contains(attr(sp, "server.address").AsString(), "?") || attr(sp, "http.url").Type() != attribute.EMPTY {
			t.Errorf("span %q names a URL: %v", sp.Name, sp.Attributes)
		}
	}
	if len(s.named("notification-scheduler process")) != 0 || len(s.named("notification-generator process")) != 0 {
		t.Errorf("a scheduler or generator hop for a job due at once")
	}

	// The integrator's request continues the trace from the send span, and verifies as ever:
	// the header is not signed, and the body (the event) does not carry it.
	req := receiver.requests()[0]
	if got := req.header.Get("traceparent"); got != traceparentOf(post) {
		t.Errorf("webhook request traceparent %q, want the send span's %q", got, traceparentOf(post))
	}
	if err := verifyStandardWebhook(endpoint.Secret, req.header, req.body, time.Now()); err != nil {
		t.Errorf("webhook with a traceparent: %v", err)
	}
	if strings.Contains(string(req.body), "traceparent") {
		t.Errorf("webhook body %s carries the trace: it is not part of the event", req.body)
	}

	lines := map[string][]string{}
	for _, e := range logs.AllEntries() {
		id, _ := e.Data["traceId"].(string)
		lines[e.Message] = append(lines[e.Message], id)
	}
	for _, msg := range []string{"event-derived notification job created", "message sent"} {
		if len(lines[msg]) == 0 {
			t.Errorf("no %q log line", msg)
		}
		for _, id := range lines[msg] {
			if id != traceID.String() {
				t.Errorf("%q logged with traceId %q, want %s", msg, id, traceID)
			}
		}
	}
}

// flakyOnce is a concern that fails the first time it sees an event.
type flakyOnce struct{ calls atomic.Int32 }

func (*flakyOnce) Name() string                       { return "flaky" }
func (*flakyOnce) Accepts(*platform.EntityEvent) bool { return true }
func (f *flakyOnce) Process(context.Context, *platform.EntityEvent) error {
	if f.calls.Add(1) == 1 {
		return errors.New("fails once")
	}
	return nil
}

func tracedWorker(t *testing.T, cfg worker.Config) (*worker.Worker, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cfg.TracerProvider = tp
	return newWorker(t, cfg), exp
}

// A redelivered message carries the same traceparent: its second handling joins the trace,
// a sibling of the first, and runs only the concern that failed.
func TestARedeliveredEventJoinsItsTrace(t *testing.T) {
	t.Parallel()
	flaky := &flakyOnce{}
	w, exp := tracedWorker(t, worker.Config{PostProcessors: []worker.PostProcessor{flaky}})
	ev, _ := platform.DecodeEvent([]byte(event(11, 1, 1, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`)))
	if _, err := w.Queues().Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the event handled twice", func() bool { return flaky.calls.Load() == 2 })
	drain(t, w)
	testenv.Eventually(t, 10*time.Second, "two process spans ended", func() bool {
		return len(exported(t, exp).named("entity-events process")) == 2
	})

	s := exported(t, exp)
	publish := s.named("entity-events publish")
	deliveries := s.named("entity-events process")
	if len(publish) != 1 || len(deliveries) != 2 {
		t.Fatalf("%d publish and %d process spans, want 1 and 2", len(publish), len(deliveries))
	}
	for _, d := range deliveries {
		if d.Parent.SpanID() != publish[0].SpanContext.SpanID() || d.SpanContext.TraceID() != publish[0].SpanContext.TraceID() {
			t.Errorf("delivery %d: parent %s in trace %s; want the publish span %s of trace %s", attr(d, "messaging.azure_queues.message.dequeue_count").AsInt64(),
				d.Parent.SpanID(), d.SpanContext.TraceID(), publish[0].SpanContext.SpanID(), publish[0].SpanContext.TraceID())
		}
		n := attr(d, "messaging.azure_queues.message.dequeue_count").AsInt64()
		var concerns, settled []string
		for _, sp := range s.all {
			switch {
			case sp.Parent.SpanID() != d.SpanContext.SpanID():
			case strings.HasPrefix(sp.Name, "concern "):
				concerns = append(concerns, sp.Name)
			case sp.Name == "queue.update" || sp.Name == "queue.delete": // the backoff (and any renewal), the delete
				settled = append(settled, sp.Name)
			}
		}
		slices.Sort(concerns)
		switch {
		case n == 1 && (d.Status.Code != codes.Error || strings.Join(concerns, ",") != "concern flaky,concern history,concern realtime" || !slices.Contains(settled, "queue.update") || slices.Contains(settled, "queue.delete")):
			t.Errorf("first delivery: status %+v, concerns %v, settled by %v; want failed, with history, realtime and flaky, and its backoff set", d.Status, concerns, settled)
		case n == 2 && (d.Status.Code == codes.Error || strings.Join(concerns, ",") != "concern flaky" || !slices.Contains(settled, "queue.delete")):
			t.Errorf("redelivery: status %+v, concerns %v, settled by %v; want done, running the flaky concern alone, then deleted", d.Status, concerns, settled)
		case n != 1 && n != 2:
			t.Errorf("dequeue count %d", n)
		}
	}
}

// An event from another sender without a traceparent starts a trace of its own; one sent with
// a traceparent continues the sender's trace, raw or base64; a malformed one, or one that is
// not a string, is ignored: the event is handled, not poisoned.
func TestEventsFromOtherSendersStartOrContinueTheirTrace(t *testing.T) {
	t.Parallel()
	w, exp := tracedWorker(t, worker.Config{})
	const sender = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	withField := func(guid, field string) string {
		return strings.Replace(event(11, 1, 1, guid, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`), `{"eventTypeId"`, `{`+field+`,"eventTypeId"`, 1)
	}
	bodies := map[string]string{
		"11111111-1111-1111-1111-111111111111": event(11, 1, 1, "11111111-1111-1111-1111-111111111111", "2026-11-22T10:00:00Z", `{}`),
		"22222222-2222-2222-2222-222222222222": withField("22222222-2222-2222-2222-222222222222", `"traceparent":"00-not-a-trace-01"`),
		"33333333-3333-3333-3333-333333333333": withField("33333333-3333-3333-3333-333333333333", `"traceparent":17`),
		"44444444-4444-4444-4444-444444444444": base64.StdEncoding.EncodeToString([]byte(withField("44444444-4444-4444-4444-444444444444", `"TraceParent":"`+sender+`"`))),
	}
	for _, b := range bodies {
		send(t, w, b)
	}
	drain(t, w)
	if p := poison(t, w); len(p) != 0 {
		t.Fatalf("poisoned: %+v", p)
	}
	s := exported(t, exp)
	got := s.named("entity-events process")
	if len(got) != len(bodies) {
		t.Fatalf("%d process spans, want %d", len(got), len(bodies))
	}
	traces := map[oteltrace.TraceID]bool{}
	for _, sp := range got {
		key := attr(sp, "platform.event_key").AsString()
		traces[sp.SpanContext.TraceID()] = true
		switch {
		case strings.Contains(key, "44444444"):
			if sp.SpanContext.TraceID().String() != sender[3:35] || sp.Parent.SpanID().String() != sender[36:52] || !sp.Parent.IsRemote() {
				t.Errorf("base64 event with the sender's traceparent: trace %s parent %s; want %s", sp.SpanContext.TraceID(), sp.Parent.SpanID(), sender)
			}
		case key == "":
			t.Errorf("a process span without its event key: %v", sp.Attributes)
		default:
			if sp.Parent.IsValid() {
				t.Errorf("%s: parent %v; want a new trace", key, sp.Parent)
			}
		}
		if rows := timeline(t, w, 1, key[len("11:1:"):len("11:1:")+36]); len(rows) != 1 {
			t.Errorf("%s: %d history rows, want 1", key, len(rows))
		}
	}
	if len(traces) != len(bodies) {
		t.Errorf("%d traces for %d unrelated events", len(traces), len(bodies))
	}
}

// With tracing off, the messages the platform writes are what they were before traces: no
// traceparent. On, a stage message carries the traceparent first; a run's message stays its
// bare id (earlier workers read nothing else), and the run's HTTP agent gets the trace its
// processing started.
func TestStageAndRunMessagesCarryTheTraceOnlyWithTracingOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var (
		mu     sync.Mutex
		agents []http.Header
	)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents = append(agents, r.Header.Clone())
		mu.Unlock()
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	secret := webhooks.NewSecret()
	direct := notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42,
		Recipients: []platform.Recipient{{Channel: platform.ChannelEmail, Address: "ada@example.com"}}}

	for _, on := range []bool{false, true} {
		env := newNotifyEnv(t, "", option(42, 201, true, "email", 0))
		cfg := env.config()
		cfg.Agents = map[string]runs.Agent{"remote": runs.HTTPAgent{URL: srv.URL + "/run", Secret: secret}}
		exp := tracetest.NewInMemoryExporter()
		if on {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			cfg.TracerProvider = tp
		}
		tool, err := worker.New(cfg) // not started: its messages stay on the queues to be read
		if err != nil {
			t.Fatal(err)
		}
		if err := tool.Setup(ctx); err != nil {
			t.Fatal(err)
		}
		closeSettings, err := tool.OpenSettings(ctx) // the job is due at once: straight to the generator
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(closeSettings)
		if _, _, err := tool.Notify().CreateJob(ctx, direct, ""); err != nil {
			t.Fatal(err)
		}
		run, _, err := tool.Runs().Start(ctx, runs.StartRequest{Agent: "remote", Key: "k", BusinessUnitID: 42})
		if err != nil {
			t.Fatal(err)
		}
		stage := peekOne(t, tool, platform.QueueNotificationGenerator)
		runMsg := peekOne(t, tool, platform.QueueAgentRuns)
		if !on {
			if !strings.HasPrefix(stage, `{"jobKey":`) || strings.Contains(stage, "traceparent") || runMsg != run.ID {
				t.Errorf("tracing off: generator message %.80s…, run message %q; want them as without tracing", stage, runMsg)
			}
			if n := len(exp.GetSpans()); n != 0 {
				t.Errorf("tracing off: %d spans", n)
			}
			continue
		}
		s := exported(t, exp)
		gen, runPub := s.named("notification-generator publish"), s.named("agent-runs publish")
		if len(gen) != 1 || len(runPub) != 1 {
			t.Fatalf("publish spans: %d generator, %d agent-runs; want 1 each", len(gen), len(runPub))
		}
		if want := `{"traceparent":"` + traceparentOf(gen[0]) + `","jobKey":`; !strings.HasPrefix(stage, want) {
			t.Errorf("generator message %.120s…, want it to start %s", stage, want)
		}
		// A run's message stays its bare id (what every earlier worker reads): the run is
		// processed in a trace of its own, which the agent's request carries.
		if runMsg != run.ID {
			t.Errorf("run message %s, want the bare run id %s", runMsg, run.ID)
		}
		env.start(cfg)
		waitState(t, tool, run.ID, runs.Succeeded)
		mu.Lock()
		got := agents
		mu.Unlock()
		if len(got) != 1 {
			t.Fatalf("agent requests %d, want 1", len(got))
		}
		// The process span ends once the runner's handler returns, a moment after the run's row
		// says Succeeded.
		testenv.Eventually(t, 10*time.Second, "the run's process span ended", func() bool {
			return len(exported(t, exp).named("agent-runs process")) == 1
		})
		process := exported(t, exp).named("agent-runs process")
		if len(process) != 1 || !strings.HasPrefix(got[0].Get("traceparent"), "00-"+process[0].SpanContext.TraceID().String()+"-") {
			t.Errorf("agent request traceparent %q; want one in the trace of the run's process span (%d of them)", got[0].Get("traceparent"), len(process))
		}
	}
}

func peekOne(t *testing.T, w *worker.Worker, q string) string {
	t.Helper()
	texts, err := w.Queues().Peek(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(texts) != 1 {
		t.Fatalf("%s holds %d messages, want 1", q, len(texts))
	}
	return texts[0]
}
