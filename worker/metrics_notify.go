package worker

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/telemetry"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/worker/delivery"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/outbox"
)

// The metrics of notifications, deliveries, integrators' webhooks and the outbox
// (telemetry.Metrics): each concern tells the host through a hook of its own, and the host
// records here. None of them imports Prometheus.

// jobReasons are the reason codes a settled job's label may carry; any other reason (none
// is expected) is "other". A Failed job's reason may carry a detail after the code
// ("no-template: name"): the label keeps the code.
var jobReasons = []string{
	platform.ReasonOptionNotSeeded, platform.ReasonDisabled, platform.ReasonCancelled, platform.ReasonCancelledBySupport, platform.ReasonNoRecipients,
	platform.ReasonRecipientsRefused, platform.ReasonNoChannel, platform.ReasonTooManyRecipients,
	platform.ReasonNoGeneratorHandler, platform.ReasonNoTemplate, platform.ReasonTemplateError, platform.ReasonConflict,
}

// reasonCode is a job's reason as a bounded label: its code, "" for none, or "other".
func reasonCode(reason string) string {
	if reason == "" {
		return ""
	}
	code, _, _ := strings.Cut(reason, ":")
	if slices.Contains(jobReasons, code) {
		return code
	}
	return "other"
}

// settledJobs are the (state, reason) pairs a registered type's job may settle with, whose
// series start at 0 so that dashboards and alerts see zeros rather than nothing.
var settledJobs = []struct {
	state  platform.JobState
	reason string
}{
	{platform.JobGenerated, ""},
	{platform.JobSkipped, platform.ReasonOptionNotSeeded}, {platform.JobSkipped, platform.ReasonDisabled},
	{platform.JobSkipped, platform.ReasonCancelled}, {platform.JobSkipped, platform.ReasonCancelledBySupport},
	{platform.JobSkipped, platform.ReasonNoRecipients},
	{platform.JobSkipped, platform.ReasonRecipientsRefused}, {platform.JobSkipped, platform.ReasonNoChannel},
	{platform.JobFailed, platform.ReasonTooManyRecipients}, {platform.JobFailed, platform.ReasonNoTemplate},
	{platform.JobFailed, platform.ReasonTemplateError}, {platform.JobConflict, platform.ReasonConflict},
}

// observeNotifications hooks the host into the concerns' outcomes (their lifecycle events
// included), and starts at 0 the series of every registered notification type and channel.
func (w *Worker) observeNotifications(types *mappings.NotificationRegistry, chans *delivery.Channels) {
	m := w.cfg.Metrics
	channels := chans.Names()
	channel := func(name string) string { // a bounded label: a registered channel
		if slices.Contains(channels, name) {
			return name
		}
		return "other"
	}
	w.distributor.OnSettled(func(ctx context.Context, msg *platform.OutgoingMessage) {
		ch := channel(msg.Recipient.Channel)
		m.MessagesSettled.WithLabelValues(ch, string(msg.State)).Inc()
		// A message marked sent by support counts as settled Sent (it was settled Unknown
		// before): two settlements of one message. Its latency would be support's, not a send's.
		if msg.State == platform.MessageSent && !msg.CreatedAt.IsZero() && !delivery.MarkedSent(msg) {
			m.EffectLatency.WithLabelValues(ch).Observe(time.Since(msg.CreatedAt).Seconds())
		}
		if msg.State == platform.MessageSent || msg.State == platform.MessageFailed {
			w.messageSettled(ctx, msg) // the lifecycle events: notification.sent / failed, webhook.delivered / failed
		}
	})
	w.distributor.OnSend(func(name string, took time.Duration, err error) {
		result := "ok"
		if err != nil {
			result = "error"
		}
		m.ProviderDuration.WithLabelValues(channel(name), result).Observe(took.Seconds())
	})
	w.webhooks.OnAttempt(func(status int, err error) {
		m.WebhookAttempts.WithLabelValues(telemetry.StatusClass(status, err)).Inc()
	})
	w.outbox.OnIntent(func(transition string) { m.OutboxIntents.WithLabelValues(transition).Inc() })
	w.outbox.OnLeader(func(leader bool) {
		if leader {
			m.OutboxLeader.Set(1)
		} else {
			m.OutboxLeader.Set(0)
		}
	})

	for _, id := range types.IDs(mappings.FromEvents) {
		w.initJobSeries(id, notify.PathHint, notify.PathMapping)
	}
	for _, id := range types.IDs(mappings.Direct) {
		w.initJobSeries(id, notify.PathDirect, notify.PathAutomation)
	}
	for _, ch := range channels {
		for _, st := range []platform.MessageState{platform.MessageSent, platform.MessageFailed, platform.MessageUnknown, platform.MessageConflict} {
			m.MessagesSettled.WithLabelValues(ch, string(st))
		}
		m.ProviderDuration.WithLabelValues(ch, "ok")
		m.ProviderDuration.WithLabelValues(ch, "error")
		m.EffectLatency.WithLabelValues(ch)
	}
	for _, class := range []string{"2xx", "3xx", "4xx", "5xx", "error"} {
		m.WebhookAttempts.WithLabelValues(class)
	}
	for _, t := range []string{outbox.TransitionConfirmed, outbox.TransitionDiscarded, outbox.TransitionMaterialized, outbox.TransitionParked, outbox.TransitionSettled} {
		m.OutboxIntents.WithLabelValues(t)
	}
}

// initJobSeries starts at 0 the series of notification type id: created by paths, and
// settled in each state with each reason it may have.
func (w *Worker) initJobSeries(id int, paths ...string) {
	m, typ := w.cfg.Metrics, strconv.Itoa(id)
	for _, p := range paths {
		m.JobsCreated.WithLabelValues(typ, p)
	}
	for _, s := range settledJobs {
		m.JobsSettled.WithLabelValues(typ, string(s.state), s.reason)
	}
}

// jobCreated is notify.Deps.OnCreated.
func (w *Worker) jobCreated(_ context.Context, j *platform.NotificationJob, path string) {
	w.cfg.Metrics.JobsCreated.WithLabelValues(strconv.Itoa(j.NotificationEventTypeID), path).Inc()
}

// jobFinal is notify.Deps.OnSettled: every final state counts; a job that ended without a
// message (Skipped, Failed) has its lifecycle event too.
func (w *Worker) jobFinal(ctx context.Context, j *platform.NotificationJob) {
	w.cfg.Metrics.JobsSettled.WithLabelValues(strconv.Itoa(j.NotificationEventTypeID), string(j.State), reasonCode(j.Reason)).Inc()
	if j.State == platform.JobSkipped || j.State == platform.JobFailed {
		w.jobSettled(ctx, j)
	}
}
