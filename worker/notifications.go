package worker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/settings"
	"github.com/platform/platform/tables"
)

// NotificationConfig tunes the notification pipeline. Zero fields take the defaults their
// comments give.
type NotificationConfig struct {
	// SendLease is how long a distributor may hold a message in Sending. A message still
	// Sending after it (the sender crashed inside the send window) becomes Unknown and is never
	// resent automatically. Default 2m.
	SendLease time.Duration
	// MaxAttempts is how many sends a message gets before it is Failed. Default 5.
	MaxAttempts int
	// MaxHold is the longest single hold on the scheduler queue; longer delays chain several.
	// Default (and maximum) 7 days less a minute: the queue's visibility limit.
	MaxHold time.Duration
	// TemplateCacheTTL is how long a template read from blob storage is reused. Default 1m.
	TemplateCacheTTL time.Duration
	// SMTP sends email; nil writes email to the log instead (local development).
	SMTP *SMTPConfig
	// WebhookSecret signs webhook-channel messages (HMAC-SHA256). Default: unsigned is refused,
	// so a webhook recipient without a secret fails permanently.
	WebhookSecret string
	// WebhookAllowlist lists the hosts and CIDRs that webhooks may target although they are
	// private, loopback or link-local (PLATFORM_WEBHOOK_ALLOWLIST). Default: none.
	WebhookAllowlist []string
	// EndpointCacheTTL is how long the list of webhook endpoints is reused: a new endpoint
	// receives events from at most this long after it was added. Default 10s.
	EndpointCacheTTL time.Duration
}

func (c *NotificationConfig) setDefaults() {
	c.SendLease = cmp.Or(c.SendLease, 2*time.Minute)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, 5)
	c.MaxHold = min(cmp.Or(c.MaxHold, 7*24*time.Hour-time.Minute), 7*24*time.Hour-time.Minute)
	c.TemplateCacheTTL = cmp.Or(c.TemplateCacheTTL, time.Minute)
}

// notifications is the pipeline: the post-processor that derives jobs from events, the direct
// job client, and the scheduler, generator and distributor stages.
type notifications struct {
	cfg           NotificationConfig
	log           logrus.FieldLogger
	registry      *mappings.NotificationRegistry
	generators    *mappings.Generators
	queues        *queues.Client
	blobs         *blobs.Client
	jobs          *tables.Jobs
	messages      *tables.Messages
	cancellations *tables.Cancellations
	history       *tables.History
	settings      *settings.DB
	templates     *templateStore
	email         Provider
	webhook       Provider
	endpoint      Provider
}

func (n *notifications) step(stage, decision, reason string) platform.Step {
	return platform.Step{At: time.Now().UTC(), Stage: stage, Decision: decision, Reason: reason}
}

// ---- jobs: both paths -------------------------------------------------------------------

// ensureJob creates j unless its key exists, then makes sure the next step happens: a job that
// was written but whose scheduler message was lost (a crash between the two) is scheduled
// again. Different content under the key is a conflict: the job stops, support is told.
func (n *notifications) ensureJob(ctx context.Context, j *platform.NotificationJob, stage string) (*platform.NotificationJob, bool, error) {
	if len(j.EventData) > tables.MaxInlineSnapshot {
		name, err := n.blobs.PutPayload(ctx, j.EventData)
		if err != nil {
			return nil, false, err
		}
		j.EventData, j.EventDataBlob = nil, name
	}
	j.Trail = []platform.Step{n.step(stage, "created", "")}
	if j.CreatedAt.IsZero() {
		j.CreatedAt = time.Now().UTC()
	}
	if n.dueNow(ctx, j) {
		// The scheduler would release it at once: write it released, and skip the hop (one
		// enqueue, dequeue, delete, read and write fewer per job).
		j.State, j.DueAt = platform.JobGenerating, j.CreatedAt
		j.Trail = append(j.Trail, n.step("scheduler", "released to generator", "at creation: enabled, no delay, no cancellation key"))
	}
	stored, etag, created, err := n.jobs.Ensure(ctx, j)
	if err != nil {
		return nil, false, err
	}
	if !created && stored.ContentHash() != j.ContentHash() {
		return stored, false, n.conflict(ctx, stored, etag, stage)
	}
	// A job found as it was created (this is a redelivery; the first one may have died
	// before sending the next step) gets its next step again: duplicates are harmless.
	switch stored.State {
	case platform.JobCreated:
		err = n.enqueueJob(ctx, platform.QueueNotificationScheduler, stored.Key, 0)
	case platform.JobGenerating:
		next := stageMessage{JobKey: stored.Key}
		if created {
			next.Job, next.ETag = stored, etag // the generator's first delivery needs no read
		}
		err = n.enqueueStage(ctx, platform.QueueNotificationGenerator, next, 0)
	}
	if err != nil {
		return nil, false, err
	}
	return stored, created, nil
}

// dueNow reports whether the scheduler would release job j at once: its option is enabled
// with no delay, it has no sendAt ahead and no cancellation key to look up. Anything else (a
// missing option too) takes the scheduler's path, which explains itself in the trail.
func (n *notifications) dueNow(ctx context.Context, j *platform.NotificationJob) bool {
	if n.settings == nil || j.CancellationKey != "" || j.SendAt.After(j.CreatedAt) {
		return false // not started (a tool creating a job), or the scheduler must look
	}
	opt, err := n.settings.Option(ctx, j.BusinessUnitID, j.NotificationEventTypeID)
	return err == nil && opt.IsEnabled && opt.DelaySeconds == 0
}

func (n *notifications) conflict(ctx context.Context, stored *platform.NotificationJob, etag tables.ETag, stage string) error {
	n.log.WithFields(logrus.Fields{"jobKey": stored.Key, "state": stored.State}).
		Error("notification job conflict: different content arrived under an existing key; automatic sending stopped for it")
	if stored.State == platform.JobConflict {
		return nil
	}
	stored.State, stored.Reason = platform.JobConflict, platform.ReasonConflict
	stored.Trail = append(stored.Trail, n.step(stage, "conflict", "different content under the same key"))
	if _, err := n.jobs.Update(ctx, stored, etag); err != nil {
		return fmt.Errorf("mark job %s as conflict: %w", stored.Key, err)
	}
	return nil
}

type stageMessage struct {
	JobKey     string `json:"jobKey,omitempty"`
	MessageKey string `json:"messageKey,omitempty"`
	// ETag with Job or Message is the row as its writer just wrote it, so the next stage's
	// first delivery needs no read. Only a first delivery trusts it: a redelivery reads the
	// row, which may have moved on. A write at a stale ETag fails (412) and changes nothing.
	ETag    tables.ETag               `json:"etag,omitempty"`
	Job     *platform.NotificationJob `json:"job,omitempty"`
	Message *platform.OutgoingMessage `json:"message,omitempty"`
}

// maxCarried bounds a stage message that carries its row: past it the row is left out and
// read instead (a queue message holds 64 KiB).
const maxCarried = 48 << 10

func (n *notifications) enqueueStage(ctx context.Context, queue string, sm stageMessage, delay time.Duration) error {
	b, _ := json.Marshal(sm)
	if len(b) > maxCarried {
		sm.ETag, sm.Job, sm.Message = "", nil, nil
		b, _ = json.Marshal(sm)
	}
	return n.queues.Enqueue(ctx, queue, string(b), delay)
}

func (n *notifications) enqueueJob(ctx context.Context, queue, jobKey string, delay time.Duration) error {
	return n.enqueueStage(ctx, queue, stageMessage{JobKey: jobKey}, delay)
}

// carried is the row a first delivery carries, if any.
func carried[T any](m *queues.Message, row *T, etag tables.ETag) (*T, tables.ETag, bool) {
	if m.DequeueCount != 1 || row == nil || etag == "" {
		return nil, "", false
	}
	return row, etag, true
}

func decodeStage(m *queues.Message) (stageMessage, error) {
	var s stageMessage
	if err := json.Unmarshal(m.Body, &s); err != nil || (s.JobKey == "" && s.MessageKey == "") {
		return s, platform.Permanent(fmt.Errorf("not a stage message: want {\"jobKey\":…} or {\"messageKey\":…}"))
	}
	return s, nil
}

// NotificationProcessor is the post-processor that derives notification jobs from events: the
// hint an event carries, and the dedicated mappings of its type.
type NotificationProcessor struct{ n *notifications }

// Name implements PostProcessor.
func (*NotificationProcessor) Name() string { return "notification" }

// Accepts implements PostProcessor: only events with a hint or a dedicated mapping.
func (p *NotificationProcessor) Accepts(ev *platform.EntityEvent) bool {
	return p.n.registry.Accepts(ev)
}

// Process implements PostProcessor.
func (p *NotificationProcessor) Process(ctx context.Context, ev *platform.EntityEvent) error {
	reqs, err := p.n.registry.Derive(ev)
	if err != nil {
		return err
	}
	for _, req := range reqs {
		j := &platform.NotificationJob{
			Key:                     platform.EventJobKey(req.NotificationEventTypeID, ev.Key()),
			NotificationEventTypeID: req.NotificationEventTypeID,
			BusinessUnitID:          ev.BusinessUnitID,
			EventKey:                ev.Key(),
			EventData:               req.EventData,
		}
		_, created, err := p.n.ensureJob(ctx, j, "event")
		if err != nil {
			return err
		}
		if created {
			p.n.log.WithFields(logrus.Fields{
				"EventTypeId": ev.EventTypeID, "EventKey": ev.Key(), "BusinessUnitId": ev.BusinessUnitID,
				"NotificationEventTypeId": req.NotificationEventTypeID, "JobKey": j.Key,
			}).Info("event-derived notification job created")
		}
	}
	return nil
}

// DirectJob is a notification a caller asks for directly (platform notify, POST
// /v1/notification-jobs).
type DirectJob struct {
	NotificationEventTypeID int                  `json:"notificationEventTypeId"`
	BusinessUnitID          int64                `json:"businessUnitId"`
	EventData               json.RawMessage      `json:"eventData,omitempty"`
	Recipients              []platform.Recipient `json:"recipients,omitempty"`
	SendAt                  *time.Time           `json:"sendAt,omitempty"`
	CancellationKey         string               `json:"cancellationKey,omitempty"`
}

// ErrInvalidInput: a request that breaks a rule (bad input: CLI exit 2, HTTP 400).
var ErrInvalidInput = errors.New("invalid input")

// ErrInvalidJob: a direct job request that breaks a rule; it is an ErrInvalidInput.
var ErrInvalidJob = fmt.Errorf("invalid notification job: %w", ErrInvalidInput)

// ErrJobConflict: a direct job's idempotency key was used before with different content.
var ErrJobConflict = errors.New("idempotency key reused with different content")

// CreateNotificationJob creates a direct job. Without an idempotency key its key is random:
// direct notifications have no replay identity and are at-least-once by design (a caller that
// retries should send an idempotency key). It refuses event-derived types: those come only
// from events (the dual-path guardrail).
// created is false when the idempotency key named an existing, equal job.
func (w *Worker) CreateNotificationJob(ctx context.Context, d DirectJob, idempotencyKey string) (job *platform.NotificationJob, created bool, err error) {
	n := w.notify
	t := d.NotificationEventTypeID
	switch {
	case n.registry.EventDerived.Has(t):
		return nil, false, fmt.Errorf("%w: notificationEventTypeId %d (%s) is derived from events only; publish the event with its hint instead",
			ErrInvalidJob, t, n.registry.EventDerived.Name(t))
	case !n.registry.Direct.Has(t):
		return nil, false, fmt.Errorf("%w: notificationEventTypeId %d is not a direct notification type (known: %v)", ErrInvalidJob, t, n.registry.Direct.IDs())
	case d.BusinessUnitID <= 0:
		return nil, false, fmt.Errorf("%w: businessUnitId: want > 0", ErrInvalidJob)
	}
	data, err := platform.CheckPayload(d.EventData)
	if err != nil {
		return nil, false, fmt.Errorf("%w: eventData: %v", ErrInvalidJob, err)
	}
	if len(d.Recipients) > MaxRecipients {
		return nil, false, fmt.Errorf("%w: recipients: at most %d, got %d", ErrInvalidJob, MaxRecipients, len(d.Recipients))
	}
	for i, r := range d.Recipients {
		r = r.Normalize()
		if err := w.checkRecipient(ctx, r); err != nil {
			return nil, false, fmt.Errorf("%w: recipients[%d]: %v", ErrInvalidJob, i, err)
		}
		d.Recipients[i] = r
	}
	j := &platform.NotificationJob{
		NotificationEventTypeID: t, BusinessUnitID: d.BusinessUnitID, EventData: data,
		Recipients: d.Recipients, CancellationKey: d.CancellationKey,
	}
	if d.SendAt != nil {
		j.SendAt = d.SendAt.UTC()
	}
	if idempotencyKey != "" {
		j.Key = platform.DirectJobKey(t, d.BusinessUnitID, idempotencyKey)
	} else {
		j.Key = randomUUID()
	}
	stored, created, err := n.ensureJob(ctx, j, "direct")
	if err != nil {
		return nil, false, err
	}
	if stored.State == platform.JobConflict {
		return stored, false, fmt.Errorf("%w: job %s", ErrJobConflict, stored.Key)
	}
	return stored, created, nil
}

// MaxRecipients is the most recipients one job may have: more is a mailing, not a
// notification, and would not fit in one table row. A generator that finds more fails the job
// with reason too-many-recipients.
const MaxRecipients = 100

// checkRecipient refuses a recipient no provider should be handed: an email that is not one
// bare address (a line break in it could add a header), a webhook the SSRF rule refuses.
func (w *Worker) checkRecipient(ctx context.Context, r platform.Recipient) error {
	switch r.Channel {
	case platform.ChannelEmail:
		if a, err := mail.ParseAddress(r.Address); err != nil || a.Address != r.Address {
			return fmt.Errorf("%q is not an email address such as ada@example.com", r.Address)
		}
		return nil
	case platform.ChannelWebhook:
		return w.targets.checkURL(ctx, r.Address)
	default:
		return fmt.Errorf("channel %q: want email or webhook", r.Channel)
	}
}

// CancelNotifications cancels every job carrying cancellationKey that was created before now
// and has not been generated yet.
func (w *Worker) CancelNotifications(ctx context.Context, cancellationKey string) error {
	if cancellationKey == "" {
		return fmt.Errorf("%w: empty cancellation key", ErrInvalidJob)
	}
	_, err := w.notify.cancellations.Cancel(ctx, cancellationKey)
	return err
}

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ---- scheduler --------------------------------------------------------------------------

// schedule decides whether a job goes out, and when: the option must be seeded and enabled,
// the job not cancelled; a delay or sendAt holds it on the scheduler queue, in hops of at most
// MaxHold. The job row moves first and the next message follows; a crash in between leaves
// this message to be redelivered, and the redelivery, finding the row moved on, sends the
// next message again (duplicates are harmless downstream), so no job is ever stranded.
func (n *notifications) schedule(ctx context.Context, m *queues.Message) error {
	s, err := decodeStage(m)
	if err != nil {
		return err
	}
	job, etag, err := n.jobs.Get(ctx, s.JobKey)
	if errors.Is(err, platform.ErrNotFound) {
		return platform.Permanent(fmt.Errorf("job %s does not exist", s.JobKey))
	}
	if err != nil {
		return err
	}
	switch {
	case job.State.Final():
		return nil // a duplicate message: this step is done
	case job.State == platform.JobGenerating:
		return n.enqueueJob(ctx, platform.QueueNotificationGenerator, job.Key, 0)
	}
	opt, err := n.settings.Option(ctx, job.BusinessUnitID, job.NotificationEventTypeID)
	if skip, err := n.skipReason(ctx, job, opt, err); err != nil || skip != "" {
		if err != nil {
			return err
		}
		return n.finish(ctx, job, etag, "scheduler", platform.JobSkipped, skip)
	}
	due := job.CreatedAt.Add(time.Duration(opt.DelaySeconds) * time.Second)
	if job.SendAt.After(due) {
		due = job.SendAt
	}
	if wait := time.Until(due); wait > 0 {
		if job.State != platform.JobScheduled || !job.DueAt.Equal(due) {
			job.State, job.DueAt = platform.JobScheduled, due
			job.Trail = append(job.Trail, n.step("scheduler", "held", "due "+due.Format(time.RFC3339Nano)))
			if err := n.updateJob(ctx, job, etag); err != nil {
				return err
			}
		}
		return n.enqueueJob(ctx, platform.QueueNotificationScheduler, job.Key, min(wait, n.cfg.MaxHold))
	}
	job.State, job.DueAt = platform.JobGenerating, due
	job.Trail = append(job.Trail, n.step("scheduler", "released to generator", ""))
	if err := n.updateJob(ctx, job, etag); err != nil {
		return err
	}
	return n.enqueueJob(ctx, platform.QueueNotificationGenerator, job.Key, 0)
}

// skipReason is why a job must not go out now, or "": option missing or disabled, cancelled.
// opt and optErr are the job's NotificationOption as read.
func (n *notifications) skipReason(ctx context.Context, job *platform.NotificationJob, opt settings.Option, optErr error) (string, error) {
	switch {
	case errors.Is(optErr, settings.ErrNotSeeded):
		return platform.ReasonOptionNotSeeded, nil
	case optErr != nil:
		return "", optErr
	case !opt.IsEnabled:
		return platform.ReasonDisabled, nil
	}
	if job.CancellationKey != "" {
		at, err := n.cancellations.CancelledAt(ctx, job.CancellationKey)
		if err != nil {
			return "", err
		}
		if !at.IsZero() && !at.Before(job.CreatedAt) {
			return platform.ReasonCancelled, nil
		}
	}
	return "", nil
}

// updateJob writes job at etag. Losing the race to another replica is fine when that replica
// moved the job on; otherwise the step is retried.
func (n *notifications) updateJob(ctx context.Context, job *platform.NotificationJob, etag tables.ETag) error {
	_, err := n.jobs.Update(ctx, job, etag)
	if errors.Is(err, platform.ErrConflict) {
		return fmt.Errorf("job %s changed under us; retrying: %w", job.Key, err)
	}
	return err
}

func (n *notifications) finish(ctx context.Context, job *platform.NotificationJob, etag tables.ETag, stage string, state platform.JobState, reason string) error {
	job.State, job.Reason = state, reason
	job.Trail = append(job.Trail, n.step(stage, string(state), reason))
	n.log.WithFields(logrus.Fields{"jobKey": job.Key, "state": state, "reason": reason}).Info("notification job settled without sending")
	return n.updateJob(ctx, job, etag)
}

// ---- generator --------------------------------------------------------------------------

type renderData struct {
	Data      map[string]any
	Recipient platform.Recipient
	Job       struct {
		Key                     string
		BusinessUnitID          int64
		NotificationEventTypeID int
	}
}

// generate turns a due job into one outgoing message per (channel, recipient). Messages are
// ensured and sent to the distributor before the job says Generated, so a crash in between
// repeats the step, and the repeat finds its messages already there.
func (n *notifications) generate(ctx context.Context, m *queues.Message) error {
	s, err := decodeStage(m)
	if err != nil {
		return err
	}
	job, etag, ok := carried(m, s.Job, s.ETag)
	if !ok {
		if job, etag, err = n.jobs.Get(ctx, s.JobKey); errors.Is(err, platform.ErrNotFound) {
			return platform.Permanent(fmt.Errorf("job %s does not exist", s.JobKey))
		}
		if err != nil {
			return err
		}
	}
	if job.State.Final() {
		return nil
	}
	gen, ok := n.generators.Lookup(job.NotificationEventTypeID)
	if !ok {
		if err := n.finish(ctx, job, etag, "generator", platform.JobFailed, platform.ReasonNoGeneratorHandler); err != nil {
			return err
		}
		return platform.Permanent(fmt.Errorf("%s: no generator handler for notification type %d", platform.ReasonNoGeneratorHandler, job.NotificationEventTypeID))
	}
	opt, err := n.settings.Option(ctx, job.BusinessUnitID, job.NotificationEventTypeID)
	if skip, err := n.skipReason(ctx, job, opt, err); err != nil || skip != "" {
		if err != nil {
			return err
		}
		return n.finish(ctx, job, etag, "generator", platform.JobSkipped, skip)
	}
	data, err := n.jobData(ctx, job)
	if err != nil {
		return err
	}
	recipients, err := n.recipients(ctx, job, gen, data)
	if err != nil {
		return err
	}
	if len(recipients) == 0 {
		return n.finish(ctx, job, etag, "generator", platform.JobSkipped, platform.ReasonNoRecipients)
	}
	if len(recipients) > MaxRecipients {
		return n.finish(ctx, job, etag, "generator", platform.JobFailed, platform.ReasonTooManyRecipients)
	}
	var allowed []platform.Recipient
	for _, r := range recipients {
		if slices.Contains(opt.Channels, r.Channel) {
			allowed = append(allowed, r)
		}
	}
	if len(allowed) == 0 {
		return n.finish(ctx, job, etag, "generator", platform.JobSkipped, platform.ReasonNoChannel)
	}
	name := cmp.Or(opt.TemplateName, gen.Template)
	tmpl, err := n.templates.load(ctx, name, gen)
	if errors.Is(err, errNoTemplate) {
		return n.finish(ctx, job, etag, "generator", platform.JobFailed, platform.ReasonNoTemplate+": "+name)
	}
	if err != nil {
		return err
	}
	var keys []string
	for _, r := range allowed {
		rd := renderData{Data: data, Recipient: r}
		rd.Job.Key, rd.Job.BusinessUnitID, rd.Job.NotificationEventTypeID = job.Key, job.BusinessUnitID, job.NotificationEventTypeID
		subject, text, html, err := render(tmpl, rd)
		if err != nil {
			return n.finish(ctx, job, etag, "generator", platform.JobFailed, platform.ReasonTemplateError+": "+err.Error())
		}
		msg := &platform.OutgoingMessage{
			Key: platform.MessageKey(job.Key, r), JobKey: job.Key,
			NotificationEventTypeID: job.NotificationEventTypeID, BusinessUnitID: job.BusinessUnitID,
			Recipient: r, Subject: subject, Text: text, HTML: html,
			Trail: []platform.Step{n.step("generator", "rendered", "template "+name)},
		}
		if err := n.ensureMessage(ctx, msg); err != nil {
			return err
		}
		keys = append(keys, msg.Key)
	}
	job.State, job.Reason, job.MessageKeys = platform.JobGenerated, "", keys
	job.Trail = append(job.Trail, n.step("generator", "generated", fmt.Sprintf("%d message(s)", len(keys))))
	return n.updateJob(ctx, job, etag)
}

func (n *notifications) ensureMessage(ctx context.Context, msg *platform.OutgoingMessage) error {
	stored, etag, created, err := n.messages.Ensure(ctx, msg)
	if err != nil {
		return err
	}
	if !created && stored.ContentHash() != msg.ContentHash() {
		n.log.WithFields(logrus.Fields{"messageKey": stored.Key, "state": stored.State}).
			Error("outgoing message conflict: different content under an existing key; it will not be sent automatically")
		if stored.State == platform.MessagePending {
			stored.State, stored.LastError = platform.MessageConflict, platform.ReasonConflict
			stored.Trail = append(stored.Trail, n.step("generator", "conflict", "re-rendered content differs"))
			if _, err := n.messages.Update(ctx, stored, etag); err != nil && !errors.Is(err, platform.ErrConflict) {
				return err
			}
		}
		return nil
	}
	if stored.State != platform.MessagePending {
		return nil // already on its way, or settled
	}
	return n.enqueueStage(ctx, platform.QueueNotificationDistributor, stageMessage{MessageKey: msg.Key, Message: stored, ETag: etag}, 0)
}

func (n *notifications) jobData(ctx context.Context, job *platform.NotificationJob) (map[string]any, error) {
	raw := job.EventData
	if job.EventDataBlob != "" {
		b, err := n.blobs.GetPayload(ctx, job.EventDataBlob)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	data := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &data); err != nil {
			return nil, platform.Permanent(fmt.Errorf("job %s: eventData: %v", job.Key, err))
		}
	}
	return data, nil
}

func (n *notifications) recipients(ctx context.Context, job *platform.NotificationJob, gen mappings.Generator, data map[string]any) ([]platform.Recipient, error) {
	var out []platform.Recipient
	switch {
	case len(job.Recipients) > 0:
		out = job.Recipients
	case gen.Recipients != nil:
		out = gen.Recipients(data)
	case gen.Subscribers:
		subs, err := n.settings.Subscribers(ctx, job.BusinessUnitID, job.NotificationEventTypeID)
		if err != nil {
			return nil, err
		}
		for _, s := range subs {
			out = append(out, platform.Recipient{Channel: s.Channel, Address: s.Address, Name: s.DisplayName})
		}
	}
	seen := map[string]bool{}
	var uniq []platform.Recipient
	for _, r := range out {
		r = r.Normalize()
		if r.Address == "" || seen[r.Channel+"|"+r.Address] {
			continue
		}
		seen[r.Channel+"|"+r.Address] = true
		uniq = append(uniq, r)
	}
	return uniq, nil
}

// ---- distributor ------------------------------------------------------------------------

// distribute sends one message, exactly once in effect: claim it (Pending → Sending, ETag
// conditional) before calling the provider, so a racing duplicate finds it Sending or Sent
// and leaves it. A message found Sending after its lease is Unknown: the sender died inside
// the send window, and whether the provider got it cannot be known, so it is never resent
// automatically.
func (n *notifications) distribute(ctx context.Context, qm *queues.Message) error {
	s, err := decodeStage(qm)
	if err != nil {
		return err
	}
	msg, etag, ok := carried(qm, s.Message, s.ETag)
	if !ok {
		if msg, etag, err = n.messages.Get(ctx, s.MessageKey); errors.Is(err, platform.ErrNotFound) {
			return platform.Permanent(fmt.Errorf("message %s does not exist", s.MessageKey))
		}
		if err != nil {
			return err
		}
	}
	log := n.log.WithField("messageKey", msg.Key)
	switch msg.State {
	case platform.MessagePending:
	case platform.MessageSending:
		if time.Now().Before(msg.LeaseUntil) {
			return fmt.Errorf("message %s is being sent by another worker until %s", msg.Key, msg.LeaseUntil.Format(time.RFC3339))
		}
		msg.State = platform.MessageUnknown
		msg.LastError = "the sender stopped inside the send window; the provider may or may not have it"
		msg.Trail = append(msg.Trail, n.step("distributor", "unknown", "lease expired while Sending"))
		if _, err := n.messages.Update(ctx, msg, etag); err != nil {
			if errors.Is(err, platform.ErrConflict) {
				return nil // another replica settled it
			}
			return err
		}
		log.WithField("attempts", msg.Attempts).Error("outgoing message is Unknown: crashed inside the send window; not resent — check with the provider")
		return nil
	default:
		return nil // Sent, Failed, Unknown, Conflict: settled
	}

	// Claim.
	msg.State, msg.Attempts = platform.MessageSending, msg.Attempts+1
	msg.LeaseUntil, msg.Claim = time.Now().Add(n.cfg.SendLease).UTC(), randomUUID()
	msg.Trail = append(msg.Trail, n.step("distributor", "claimed", fmt.Sprintf("attempt %d", msg.Attempts)))
	etag, err = n.claim(ctx, msg, etag)
	if err != nil || etag == "" {
		return err
	}

	provider, err := n.provider(msg.Recipient.Channel)
	var providerID string
	if err == nil {
		sendCtx, cancel := context.WithTimeout(ctx, n.cfg.SendLease/2)
		providerID, err = provider.Send(sendCtx, msg)
		cancel()
	}

	msg.LeaseUntil = time.Time{}
	var ambiguous *ambiguousError
	switch {
	case errors.As(err, &ambiguous):
		msg.State, msg.LastError = platform.MessageUnknown, err.Error()
		msg.Trail = append(msg.Trail, n.step("distributor", "unknown", err.Error()))
	case err == nil:
		msg.State, msg.ProviderID, msg.LastError = platform.MessageSent, providerID, ""
		msg.Trail = append(msg.Trail, n.step("distributor", "sent", providerID))
	case platform.IsPermanent(err):
		msg.State, msg.LastError = platform.MessageFailed, err.Error()
		msg.Trail = append(msg.Trail, n.step("distributor", "failed", err.Error()))
	case msg.Attempts >= n.cfg.MaxAttempts:
		msg.State, msg.LastError = platform.MessageFailed, fmt.Sprintf("gave up after %d attempts: %v", msg.Attempts, err)
		msg.Trail = append(msg.Trail, n.step("distributor", "failed", msg.LastError))
	default:
		msg.State, msg.LastError = platform.MessagePending, err.Error()
		msg.Trail = append(msg.Trail, n.step("distributor", "will retry", err.Error()))
	}
	if _, uerr := n.messages.Update(ctx, msg, etag); uerr != nil {
		// The row still says Sending: the redelivery waits out the lease and reports Unknown
		// rather than risk a second send.
		return fmt.Errorf("record outcome of %s (%s): %w", msg.Key, msg.State, uerr)
	}
	switch msg.State {
	case platform.MessageSent:
		log.WithField("providerId", providerID).Info("message sent")
	case platform.MessageFailed:
		log.WithField("error", msg.LastError).Error("message failed")
	case platform.MessageUnknown:
		log.WithField("error", msg.LastError).Error("outgoing message is Unknown: the provider may have it; not resent — check with the provider")
	case platform.MessagePending:
		return fmt.Errorf("send %s: %w", msg.Key, err) // retried with the consumer's backoff
	}
	return nil
}

// claim writes msg, moved to Sending under a fresh Claim, at etag, and returns the new ETag,
// or "" when another distributor claimed the message first. On a 412 the stored row tells
// what happened: Sending under this Claim is the claim's own echo (the write happened, its
// reply was lost, the retry met the new ETag); still Pending means the ETag was stale (a
// carried row that moved on) and the claim is made again on the row as stored.
func (n *notifications) claim(ctx context.Context, msg *platform.OutgoingMessage, etag tables.ETag) (tables.ETag, error) {
	for range 2 {
		newTag, err := n.messages.Update(ctx, msg, etag)
		if !errors.Is(err, platform.ErrConflict) {
			return newTag, err
		}
		stored, storedTag, err := n.messages.Get(ctx, msg.Key)
		if err != nil {
			return "", err // redelivered: it finds the row as it is and decides again
		}
		switch {
		case stored.State == platform.MessageSending && stored.Claim == msg.Claim:
			return storedTag, nil
		case stored.State != platform.MessagePending:
			return "", nil // claimed, sent or settled by another distributor
		}
		stored.State, stored.Attempts, stored.LeaseUntil, stored.Claim = msg.State, stored.Attempts+1, msg.LeaseUntil, msg.Claim
		stored.Trail = append(stored.Trail, msg.Trail[len(msg.Trail)-1])
		*msg, etag = *stored, storedTag
	}
	return "", nil // lost the race twice: whoever won sends it
}

func (n *notifications) provider(channel string) (Provider, error) {
	switch channel {
	case platform.ChannelEmail:
		return n.email, nil
	case platform.ChannelWebhook:
		return n.webhook, nil
	case platform.ChannelEndpoint:
		return n.endpoint, nil
	}
	return nil, platform.Permanent(fmt.Errorf("no provider for channel %q", channel))
}
