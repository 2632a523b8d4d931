// Package notify is the notification concern: jobs (derived from events, or asked for
// directly), and the scheduler, generator and template stages that turn a job into outgoing
// messages, which the delivery distributor then sends. It owns the NotificationJobs and
// NotificationCancellations tables and the notification-scheduler and notification-generator
// queues; it reads the settings database (NotificationOption, NotificationSubscriber) and the
// templates in blob container notification-templates.
//
// Invariants:
//   - An event-derived job is keyed from its event (platform.EventJobKey): a redelivered event
//     finds its job. Creating a job is Ensure: absent → create; present and equal → make sure
//     its next step happens; present and different → Conflict, nothing sent, support told.
//   - Each stage moves the job's row first and sends the next step after: a crash in between
//     leaves the message to be redelivered, and the redelivery, finding the row moved on, sends
//     the next step again (harmless downstream). No job is ever stranded.
//   - A type is derived from events or created directly, never both (the dual-path
//     guardrail): the registry refuses it, and CreateJob refuses an event-derived type.
//   - Every decision is appended to the job's Trail, in the write the stage makes anyway:
//     Trace reads it back ("why did this not send?").
package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/settings"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/delivery"
)

// Config tunes the notification stages. Zero fields take the defaults their comments give.
type Config struct {
	// MaxHold is the longest single hold on the scheduler queue; longer delays chain several.
	// Default (and maximum) 7 days less a minute: the queue's visibility limit.
	MaxHold time.Duration
	// TemplateCacheTTL is how long a template read from blob storage is reused. Default 1m.
	TemplateCacheTTL time.Duration
}

func (c *Config) setDefaults() {
	const maxHold = 7*24*time.Hour - time.Minute
	c.MaxHold = min(cmp.Or(c.MaxHold, maxHold), maxHold)
	c.TemplateCacheTTL = cmp.Or(c.TemplateCacheTTL, time.Minute)
}

// Settings is what the stages read from the settings database. Before the database is open
// (a tool that creates a job without running the worker) Option fails, and a new job takes
// the scheduler's path, which explains itself in the trail.
type Settings interface {
	Option(ctx context.Context, businessUnitID int64, notificationTypeID int) (settings.Option, error)
	Subscribers(ctx context.Context, businessUnitID int64, notificationTypeID int) ([]settings.Subscriber, error)
	// UnitOptions and UnitSubscribers list a business unit's rows, for support (UnitSettings).
	UnitOptions(ctx context.Context, businessUnitID int64) ([]settings.UnitOption, error)
	UnitSubscribers(ctx context.Context, businessUnitID int64, limit int) ([]settings.UnitSubscriber, bool, error)
}

// Deps are the notification concern's parts, wired by the host.
type Deps struct {
	Log         logrus.FieldLogger
	Types       *mappings.NotificationRegistry
	Queues      *queues.Client
	Blobs       *blobs.Client
	Tables      *tables.Client
	Settings    Settings
	Distributor *delivery.Distributor
	Channels    *delivery.Channels
	// DeliveryKeys lists the webhook deliveries an event has, for Trace; nil: none.
	DeliveryKeys func(ev *platform.EntityEvent) []string
	// OnSettled, when set, is called (best effort) with each job this process just recorded in
	// a final state: Generated (its messages handed to the distributor), Skipped or Failed
	// (with their reason: it sends nothing), or Conflict (different content under its key).
	// A job settles once: a stage that finds it final, or loses the write to another replica,
	// does not call it.
	OnSettled func(ctx context.Context, job *platform.NotificationJob)
	// OnCreated, when set, is called (best effort) with each job this process created, and the
	// path it came by (PathHint, PathMapping, PathDirect, PathAutomation). A job found existing
	// (a redelivered event, a request repeated with its idempotency key) is not created again,
	// so it is not called: at most once per job (a crash, or a lost reply to the insert,
	// between the insert and the call misses one).
	OnCreated func(ctx context.Context, job *platform.NotificationJob, path string)
}

// The paths a job is created by (Deps.OnCreated).
const (
	PathHint       = "hint"       // the event named the type (notificationEventTypeId)
	PathMapping    = "mapping"    // a dedicated mapping of the event's type
	PathDirect     = "direct"     // asked for directly: the API, the CLI, the Go API
	PathAutomation = "automation" // a direct job an automation rule's action asked for
)

// Service is the notification concern.
type Service struct {
	cfg           Config
	d             Deps
	jobs          *tables.Jobs
	cancellations *tables.Cancellations
	history       *tables.History
	templates     *templateStore
}

// New returns the notification concern.
func New(cfg Config, d Deps) *Service {
	cfg.setDefaults()
	return &Service{cfg: cfg, d: d,
		jobs: d.Tables.Jobs(), cancellations: d.Tables.Cancellations(), history: d.Tables.History(),
		templates: &templateStore{blobs: d.Blobs, ttl: cfg.TemplateCacheTTL}}
}

// created tells Deps.OnCreated of job, created by path.
func (s *Service) created(ctx context.Context, job *platform.NotificationJob, path string) {
	if s.d.OnCreated != nil {
		s.d.OnCreated(ctx, job, path)
	}
}

// settled tells Deps.OnSettled of job, just recorded in a final state.
func (s *Service) settled(ctx context.Context, job *platform.NotificationJob) {
	if s.d.OnSettled != nil {
		s.d.OnSettled(ctx, job)
	}
}

// jobMessage is the scheduler's and generator's queue message: the job key, and on the
// generator's first delivery the row as its writer wrote it (queues.Carried).
type jobMessage struct {
	JobKey string                    `json:"jobKey"`
	ETag   tables.ETag               `json:"etag,omitempty"`
	Job    *platform.NotificationJob `json:"job,omitempty"`
}

// next sends a job's next step to queue, on the shard of its job key, carrying the row when
// etag is set.
func (s *Service) next(ctx context.Context, queue string, job *platform.NotificationJob, etag tables.ETag, delay time.Duration) error {
	bare := jobMessage{JobKey: job.Key}
	if etag == "" {
		return s.d.Queues.EnqueueCarrying(ctx, queue, job.Key, bare, bare, delay)
	}
	return s.d.Queues.EnqueueCarrying(ctx, queue, job.Key, jobMessage{JobKey: job.Key, Job: job, ETag: etag}, bare, delay)
}

// readJob is the job a stage message names: the row it carries on a first delivery, else the
// row as stored. A job that does not exist never will: that is permanent.
func (s *Service) readJob(ctx context.Context, m *queues.Message, carry bool) (*platform.NotificationJob, tables.ETag, error) {
	jm, err := queues.DecodeJSON[jobMessage](m)
	if err != nil || jm.JobKey == "" {
		return nil, "", platform.Permanent(errNotAStageMessage)
	}
	if carry {
		if job, etag, ok := queues.Carried(m, jm.Job, jm.ETag); ok {
			return job, etag, nil
		}
	}
	job, etag, err := s.jobs.Get(ctx, jm.JobKey)
	if errors.Is(err, platform.ErrNotFound) {
		return nil, "", platform.Permanent(fmt.Errorf("job %s does not exist", jm.JobKey))
	}
	return job, etag, err
}

var errNotAStageMessage = errors.New(`not a notification stage message: want {"jobKey":…}`)
