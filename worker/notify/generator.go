package notify

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/platform/platform"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
	"github.com/sirupsen/logrus"
)

// Generate is the queues.Handler of notification-generator. It turns a due job into one
// outgoing message per (channel, recipient), ensured and handed to the distributor before the
// job says Generated, so a crash in between repeats the step, and the repeat finds its
// messages already there.
func (s *Service) Generate(ctx context.Context, m *queues.Message) error {
	job, etag, err := s.readJob(ctx, m, true)
	if err != nil {
		return err
	}
	return s.generate(ctx, job, etag)
}

// generateHere generates job, as stored at etag, in the handler that released it
// (Config.GenerateInHandler): the same steps as the generator's, without the hop through its
// queue. A crash here redelivers the event, whose handler finds the job Generating and
// generates it again, as a redelivered generator message would. On any error the job is handed
// to the generator's queue, as it was before this shortcut, and the generator does what it
// always did: retries what may pass, poisons with its reason what cannot (a job it settled
// Failed here it finds final); the event is not retried for it.
func (s *Service) generateHere(ctx context.Context, stored *platform.NotificationJob, etag tables.ETag) error {
	job := *stored // the caller's row stays as created
	job.Trail = slices.Clone(stored.Trail)
	err := s.generate(ctx, &job, etag)
	if err == nil {
		return nil
	}
	queues.TraceLog(ctx, s.d.Log).WithError(err).WithField("jobKey", job.Key).Info("generation handed to notification-generator")
	return s.next(ctx, platform.QueueNotificationGenerator, stored, "", 0)
}

// generate is the generator's work on a job read at etag: its messages ensured and handed to
// the distributor, then the job recorded Generated (or Skipped or Failed, with its reason,
// when it sends nothing).
func (s *Service) generate(ctx context.Context, job *platform.NotificationJob, etag tables.ETag) error {
	if job.State.Final() {
		return nil
	}
	g, err := s.decide(ctx, job)
	if err != nil {
		return err
	}
	for _, msg := range g.messages {
		if err := s.d.Distributor.Ensure(ctx, msg, "generator"); err != nil {
			return err
		}
	}
	g.apply(ctx, s, job)
	if err := s.updateJob(ctx, job, etag); err != nil {
		return err
	}
	s.settled(ctx, job)
	return g.poison
}

// generation is what generating a job comes to: its messages, rendered and not yet stored, or
// a final state that sends nothing, and why.
type generation struct {
	state    platform.JobState // Generated, Skipped or Failed
	reason   string
	refused  []platform.Step // recipients refused, for the trail
	messages []*platform.OutgoingMessage
	// poison: the generator's message is poisoned with it once the job is recorded Failed (a
	// type this deployment no longer registers).
	poison error
}

// decide works out job's generation. It writes nothing (a webhook recipient's message is read
// for its legacy key); an error is one a retry may get past, or Permanent.
func (s *Service) decide(ctx context.Context, job *platform.NotificationJob) (*generation, error) {
	settle := func(state platform.JobState, reason string) (*generation, error) {
		return &generation{state: state, reason: reason}, nil
	}
	t, ok := s.d.Types.Lookup(job.NotificationEventTypeID)
	if !ok {
		// A job of a type this deployment no longer registers (removed after it was created).
		return &generation{state: platform.JobFailed, reason: platform.ReasonNoGeneratorHandler,
			poison: platform.Permanent(fmt.Errorf("%s: notification type %d is not registered", platform.ReasonNoGeneratorHandler, job.NotificationEventTypeID))}, nil
	}
	opt, err := s.d.Settings.Option(ctx, job.BusinessUnitID, job.NotificationEventTypeID)
	if skip, err := s.skipReason(ctx, job, opt, err); err != nil || skip != "" {
		if err != nil {
			return nil, err
		}
		return settle(platform.JobSkipped, skip)
	}
	data, err := s.jobData(ctx, job)
	if err != nil {
		return nil, err
	}
	recipients, refused, err := s.recipients(ctx, job, t.Render, data)
	if err != nil {
		return nil, err
	}
	g := &generation{state: platform.JobGenerated, refused: refused}
	fail := func(state platform.JobState, reason string) (*generation, error) {
		g.state, g.reason, g.messages = state, reason, nil
		return g, nil
	}
	switch {
	case len(recipients) == 0 && len(refused) > 0:
		return fail(platform.JobSkipped, platform.ReasonRecipientsRefused)
	case len(recipients) == 0:
		return fail(platform.JobSkipped, platform.ReasonNoRecipients)
	case len(recipients) > MaxRecipients:
		return fail(platform.JobFailed, platform.ReasonTooManyRecipients)
	}
	var allowed []platform.Recipient
	for _, r := range recipients {
		if slices.Contains(opt.Channels, r.Channel) {
			allowed = append(allowed, r)
		}
	}
	if len(allowed) == 0 {
		return fail(platform.JobSkipped, platform.ReasonNoChannel)
	}
	name := cmp.Or(opt.TemplateName, t.Render.Template)
	tmpl, err := s.templates.load(ctx, name, t.Render)
	if errors.Is(err, errNoTemplate) {
		return fail(platform.JobFailed, platform.ReasonNoTemplate+": "+name)
	}
	if err != nil {
		return nil, err
	}
	for _, r := range allowed {
		rd := renderData{Data: data, Recipient: r}
		rd.Job.Key, rd.Job.BusinessUnitID, rd.Job.NotificationEventTypeID = job.Key, job.BusinessUnitID, job.NotificationEventTypeID
		subject, text, html, err := render(tmpl, rd)
		if err != nil {
			return fail(platform.JobFailed, platform.ReasonTemplateError+": "+err.Error())
		}
		msg := &platform.OutgoingMessage{
			Key: platform.MessageKey(job.Key, r), JobKey: job.Key,
			NotificationEventTypeID: job.NotificationEventTypeID, BusinessUnitID: job.BusinessUnitID,
			Recipient: r, Subject: subject, Text: text, HTML: html,
			Trail:        []platform.Step{platform.NewStep("generator", "rendered", "template "+name)},
			CausedByRule: job.CausedByRule, ChainDepth: job.ChainDepth,
		}
		if err := s.keepLegacyKey(ctx, msg); err != nil {
			return nil, err
		}
		g.messages = append(g.messages, msg)
	}
	return g, nil
}

// apply records g on job: its state, reason and message keys, and the trail's steps.
func (g *generation) apply(ctx context.Context, s *Service, job *platform.NotificationJob) {
	job.Trail = append(job.Trail, g.refused...)
	if g.state != platform.JobGenerated {
		job.State, job.Reason = g.state, g.reason
		job.Trail = append(job.Trail, platform.NewStep("generator", string(g.state), g.reason))
		queues.TraceLog(ctx, s.d.Log).WithFields(logrus.Fields{"jobKey": job.Key, "state": g.state, "reason": g.reason}).Info("notification job settled without sending")
		return
	}
	keys := make([]string, len(g.messages))
	for i, m := range g.messages {
		keys[i] = m.Key
	}
	job.State, job.Reason, job.MessageKeys = platform.JobGenerated, "", keys
	job.Trail = append(job.Trail, platform.NewStep("generator", "generated", fmt.Sprintf("%d message(s)", len(keys))))
}

// jobData is what the templates render: the job's event data, resolved from its blob when it
// was too large for the row.
func (s *Service) jobData(ctx context.Context, job *platform.NotificationJob) (map[string]any, error) {
	raw, err := s.d.Blobs.Resolve(ctx, job.EventData, job.EventDataBlob)
	if err != nil {
		return nil, err
	}
	data := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &data); err != nil {
			return nil, platform.Permanent(fmt.Errorf("job %s: eventData: %v", job.Key, err))
		}
	}
	return data, nil
}

// keepLegacyKey gives msg the key an older version made for it, if that message exists. Before
// issue 20 a webhook URL carrying a credential was in its message key whole; now it is hashed
// (platform.MessageKey). A job whose generation began before the upgrade and is retried after
// it must find the message it already made, or the recipient would get it twice.
func (s *Service) keepLegacyKey(ctx context.Context, msg *platform.OutgoingMessage) error {
	if msg.Recipient.Channel != platform.ChannelWebhook {
		return nil
	}
	old := msg.JobKey + "|" + msg.Recipient.Channel + "|" + msg.Recipient.Address
	if old == msg.Key || platform.KeyLength(old) > platform.MaxKeyLength {
		return nil
	}
	switch _, err := s.d.Distributor.Get(ctx, old); {
	case err == nil:
		msg.Key = old
	case !errors.Is(err, platform.ErrNotFound):
		return err
	}
	return nil
}
