package worker_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/webhooks"
)

// checkDeltas fails t for each series whose change from before to after is not want's, or
// which is absent after (a series never written is not a zero).
func checkDeltas(t *testing.T, before, after map[string]float64, want map[string]float64) {
	t.Helper()
	for s, d := range want {
		v, ok := after[s]
		if !ok {
			t.Errorf("%s: absent from /metrics", s)
			continue
		}
		if got := v - before[s]; got != d {
			t.Errorf("%s: changed by %v, want %v", s, got, d)
		}
	}
}

func metricsWorker(t *testing.T, env *notifyEnv, cfg worker.Config) *worker.Worker {
	t.Helper()
	cfg.MetricsAddr = "127.0.0.1:0"
	return env.start(cfg)
}

func jobsCreated(typ int, path string) string {
	return seriesKey("platform_notification_jobs_created_total", "type", strconv.Itoa(typ), "path", path)
}

func jobsSettled(typ int, state platform.JobState, reason string) string {
	return seriesKey("platform_notification_jobs_settled_total", "type", strconv.Itoa(typ), "state", string(state), "reason", reason)
}

func messagesSettled(channel string, state platform.MessageState) string {
	return seriesKey("platform_outgoing_messages_settled_total", "channel", channel, "state", string(state))
}

func providerSends(channel, result string) string {
	return seriesKey("platform_provider_send_seconds_count", "channel", channel, "result", result)
}

func effects(effect string) string {
	return seriesKey("platform_effect_latency_seconds_count", "effect", effect)
}

// A hinted event (delivered twice), an event of a unit without the type's option, an event a
// mapping matches, a direct job (asked twice under one idempotency key) and a rule's job:
// each job counts once, by its path, and settles once, with its reason code.
func TestNotificationMetricsCountEachJobAndMessageOnce(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 101, true, "email", 0), option(42, 201, true, "email", 0))
	w := metricsWorker(t, env, env.config())
	ctx := context.Background()
	addRule(t, w, `{"businessUnitId":42,"eventTypes":[12],"action":{"notify":{"notificationEventTypeId":201,"recipients":[{"channel":"email","address":"rule@example.com"}]}}}`)
	before := scrapeMetrics(t, w)
	for _, s := range []string{jobsSettled(101, platform.JobSkipped, platform.ReasonOptionNotSeeded), jobsCreated(201, notify.PathAutomation),
		messagesSettled("email", platform.MessageUnknown), providerSends("endpoint", "error"),
		seriesKey("platform_webhook_delivery_attempts_total", "status_class", "5xx"), seriesKey("platform_outbox_intents_total", "transition", "parked")} {
		if v, ok := before[s]; !ok || v != 0 {
			t.Errorf("%s before any work: %v (present %v), want 0", s, v, ok)
		}
	}

	unseeded := strings.Replace(hinted("0d6e7a0e-9a43-4a4e-9a57-6c1d1c1d1c1d"), `"businessUnitId":42`, `"businessUnitId":43`, 1)
	mapped := `{"eventTypeId":41,"entityTypeId":4,"actionTypeId":2,"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z","changedFields":["openingHours"],"payload":{"openingHours":"8-18"}}`
	ruled := event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`)
	send(t, w, hinted(attendee), hinted(attendee), unseeded, mapped, ruled)
	direct := notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42, Recipients: []platform.Recipient{{Channel: "email", Address: "new@example.com"}}}
	for range 2 {
		if _, _, err := w.Notify().CreateJob(ctx, direct, "m2-signup-1"); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, w)
	if n := len(env.smtp.Mails()); n != 3 {
		t.Fatalf("%d mails, want 3 (the hinted event's, the direct job's, the rule's)", n)
	}
	checkDeltas(t, before, scrapeMetrics(t, w), map[string]float64{
		jobsCreated(101, notify.PathHint):                                     2, // the hinted event once, though delivered twice; the unseeded unit's
		jobsCreated(103, notify.PathMapping):                                  1,
		jobsCreated(201, notify.PathDirect):                                   1, // asked twice, one job
		jobsCreated(201, notify.PathAutomation):                               1,
		jobsCreated(101, notify.PathMapping):                                  0,
		jobsSettled(101, platform.JobGenerated, ""):                           1,
		jobsSettled(101, platform.JobSkipped, platform.ReasonOptionNotSeeded): 1,
		jobsSettled(103, platform.JobSkipped, platform.ReasonOptionNotSeeded): 1,
		jobsSettled(201, platform.JobGenerated, ""):                           2,
		jobsSettled(201, platform.JobSkipped, platform.ReasonOptionNotSeeded): 0,
		messagesSettled("email", platform.MessageSent):                        3,
		messagesSettled("email", platform.MessageFailed):                      0,
		providerSends("email", "ok"):                                          3,
		providerSends("email", "error"):                                       0,
		effects("email"):                                                      3,
	})
}

// A message whose provider's verdict was lost is Unknown: it counts as such, and has no
// provider success nor effect.
func TestNotificationMetricsCountAnUnknownMessage(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 201, true, "email", 0))
	env.smtp.HangUpAfterData = true
	w := metricsWorker(t, env, env.config())
	before := scrapeMetrics(t, w)
	if _, _, err := w.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42,
		Recipients: []platform.Recipient{{Channel: "email", Address: "lost@example.com"}}}, ""); err != nil {
		t.Fatal(err)
	}
	drain(t, w)
	checkDeltas(t, before, scrapeMetrics(t, w), map[string]float64{
		messagesSettled("email", platform.MessageUnknown): 1,
		messagesSettled("email", platform.MessageSent):    0,
		providerSends("email", "error"):                   1,
		providerSends("email", "ok"):                      0,
		effects("email"):                                  0,
	})
}

// An endpoint that answers at once, and one that answers 500 before it takes the delivery:
// each attempt counts by its status class, each delivery settles once.
func TestWebhookMetricsCountEachAttemptByStatusClass(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := metricsWorker(t, env, env.config())
	ctx := context.Background()
	ok := newReceiver(t, strongSecret+"-ok", 0)
	flaky := newReceiver(t, strongSecret+"-flaky", 1) // 500, then 204
	for _, rc := range []*receiver{ok, flaky} {
		if _, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: rc.srv.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{12}, Secret: rc.secret}); err != nil {
			t.Fatal(err)
		}
	}
	before := scrapeMetrics(t, w)
	send(t, w, event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`))
	testenv.Eventually(t, 30*time.Second, "both endpoints got the delivery", func() bool {
		a, _ := ok.received()
		b, _ := flaky.received()
		return a == 1 && b == 1
	})
	drain(t, w)
	attempts := func(class string) string {
		return seriesKey("platform_webhook_delivery_attempts_total", "status_class", class)
	}
	checkDeltas(t, before, scrapeMetrics(t, w), map[string]float64{
		attempts("2xx"): 2, attempts("5xx"): 1, attempts("4xx"): 0, attempts("error"): 0,
		messagesSettled(platform.ChannelEndpoint, platform.MessageSent): 2,
		providerSends(platform.ChannelEndpoint, "ok"):                   2,
		providerSends(platform.ChannelEndpoint, "error"):                1,
		effects(platform.ChannelEndpoint):                               2,
	})
}

// Intents confirmed (twice: one transition), discarded and materialized count once each; the
// replica that holds the materializer's lease says so.
func TestOutboxMetricsCountTransitionsAndLeadership(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 101, true, "email", 0))
	w := metricsWorker(t, env, outboxConfig(env))
	ctx := context.Background()
	leader := seriesKey("platform_outbox_materializer_leader")
	testenv.Eventually(t, 20*time.Second, "the materializer's lease", func() bool { return scrapeMetrics(t, w)[leader] == 1 })
	before := scrapeMetrics(t, w)
	ev, _ := platform.DecodeEvent([]byte(hinted(attendee)))
	kept, err := w.Outbox().AppendIntent(ctx, ev, nil)
	if err != nil {
		t.Fatal(err)
	}
	dropped, err := w.Outbox().AppendIntent(ctx, mustEvent(t, 7, "2026-11-22T10:00:00Z"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := w.Outbox().ConfirmIntent(ctx, kept.SourceKey); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Outbox().DiscardIntent(ctx, dropped.SourceKey); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the intent materialized", func() bool { return intentState(t, w, kept.SourceKey) == platform.IntentMaterialized })
	drain(t, w)
	intents := func(transition string) string {
		return seriesKey("platform_outbox_intents_total", "transition", transition)
	}
	checkDeltas(t, before, scrapeMetrics(t, w), map[string]float64{
		intents("confirmed"): 1, intents("discarded"): 1, intents("materialized"): 1, intents("settled"): 0, intents("parked"): 0,
		leader: 0, // still 1
	})
	if got := scrapeMetrics(t, w)[leader]; got != 1 {
		t.Fatalf("leader gauge %v, want 1", got)
	}
}
