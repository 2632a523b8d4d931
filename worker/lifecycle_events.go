package worker

import (
	"context"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/runs"
)

// Lifecycle events (platform.LifecycleEvent): the host hears each effect's outcome from the
// concern that settles it and publishes the event, best effort, only while some automation
// rule names its type — an outcome no rule wants costs no request.

// messageSettled publishes notification.sent / failed, or webhook.delivered / failed for an
// integrator endpoint's delivery.
func (w *Worker) messageSettled(ctx context.Context, m *platform.OutgoingMessage) {
	kind, t := "notification", platform.EventNotificationSent
	switch {
	case m.Recipient.Channel == platform.ChannelEndpoint && m.State == platform.MessageSent:
		kind, t = "webhook", platform.EventWebhookDelivered
	case m.Recipient.Channel == platform.ChannelEndpoint:
		kind, t = "webhook", platform.EventWebhookFailed
	case m.State != platform.MessageSent:
		t = platform.EventNotificationFailed
	}
	w.emit(ctx, t, platform.Effect{Key: m.Key, Kind: kind, State: string(m.State), BusinessUnitID: m.BusinessUnitID,
		CreatedAt: m.CreatedAt, Channel: m.Recipient.Channel, Attempts: m.Attempts, Error: m.LastError, ProviderID: m.ProviderID,
		CausedByRule: m.CausedByRule, ChainDepth: m.ChainDepth})
}

// jobSettled publishes notification.skipped or notification.failed for a job that ended
// without a message.
func (w *Worker) jobSettled(ctx context.Context, j *platform.NotificationJob) {
	t := platform.EventNotificationSkipped
	if j.State == platform.JobFailed {
		t = platform.EventNotificationFailed
	}
	w.emit(ctx, t, platform.Effect{Key: j.Key, Kind: "notification", State: string(j.State), BusinessUnitID: j.BusinessUnitID,
		CreatedAt: j.CreatedAt, Error: j.Reason, CausedByRule: j.CausedByRule, ChainDepth: j.ChainDepth})
}

// runFinished publishes run.succeeded or run.failed (Failed, TimedOut; a cancelled run has no
// event: someone chose it).
func (w *Worker) runFinished(ctx context.Context, r *runs.Run) {
	t := platform.EventRunFailed
	switch r.State {
	case tables.RunSucceeded:
		t = platform.EventRunSucceeded
	case tables.RunCancelled:
		return
	}
	w.emit(ctx, t, platform.Effect{Key: r.ID, Kind: "run", State: string(r.State), BusinessUnitID: r.BusinessUnitID,
		CreatedAt: r.CreatedAt, Attempts: r.Attempts, Error: r.Error, CausedByRule: r.Origin.RuleID,
		ChainDepth: r.Origin.ChainDepth, Correlation: r.Origin.CorrelationID})
}

func (w *Worker) emit(ctx context.Context, t int, e platform.Effect) {
	if !w.automations.Wants(t) {
		return
	}
	log := w.log.WithFields(map[string]any{"effectKey": platform.ShownKey(e.Key), "lifecycleEvent": platform.LifecycleEventTypes[t]})
	if e.CreatedAt.IsZero() || e.BusinessUnitID <= 0 {
		log.Warn("lifecycle event not published: the effect was stored without its creation time or unit (by an older version)")
		return
	}
	ev, err := platform.LifecycleEvent(t, e)
	if err == nil {
		_, err = w.queues.Publish(ctx, ev)
	}
	if err != nil {
		log.WithError(err).Warn("lifecycle event not published (best effort: rules on it do not see this outcome)")
	}
}
