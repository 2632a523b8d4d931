package notify

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
)

// ensureJob creates j unless its key exists, then makes sure the next step happens: a job that
// was written but whose next message was lost (a crash between the two) is sent on again.
// Different content under the key is a conflict: the job stops, support is told.
//
// With generateHere, a job released at once is generated before it is written (generated
// below): it is created Generated with its message keys (or Skipped or Failed with its
// reason), and its messages are ensured after, so a job and its messages cost one write each.
// A crash between the two redelivers the event, which finds the job Generated and makes the
// messages it names that are missing (completeGenerated), on any replica. A generation that
// fails writes the job Generating and hands it to the generator, as before.
func (s *Service) ensureJob(ctx context.Context, j *platform.NotificationJob, stage string, generateHere bool) (*platform.NotificationJob, bool, error) {
	var err error
	if j.EventData, j.EventDataBlob, err = s.d.Blobs.Offload(ctx, j.EventData, tables.MaxInlineSnapshot); err != nil {
		return nil, false, err
	}
	j.Trail = []platform.Step{platform.NewStep(stage, "created", "")}
	if j.CreatedAt.IsZero() {
		j.CreatedAt = time.Now().UTC()
	}
	var gen *generation
	if s.dueNow(ctx, j) {
		// The scheduler would release it at once: write it released, and skip the hop (one
		// enqueue, dequeue, delete, read and write fewer per job).
		j.State, j.DueAt = platform.JobGenerating, j.CreatedAt
		j.Trail = append(j.Trail, platform.NewStep("scheduler", "released to generator", "at creation: enabled, no delay, no cancellation key"))
		if generateHere {
			gen = s.generated(ctx, j)
		}
	}
	stored, etag, created, err := s.jobs.Ensure(ctx, j)
	if err != nil {
		return nil, false, err
	}
	if !created && stored.ContentHash() != j.ContentHash() {
		return stored, false, s.conflict(ctx, stored, etag, stage)
	}
	// A job found as it was created (this is a redelivery; the first one may have died before
	// sending the next step) gets its next step again: duplicates are harmless.
	switch stored.State {
	case platform.JobCreated:
		err = s.next(ctx, platform.QueueNotificationScheduler, stored, "", 0)
	case platform.JobGenerating:
		if generateHere {
			err = s.generateHere(ctx, stored, etag)
			break
		}
		if !created {
			etag = "" // a redelivery's row may be moving on: the generator reads it
		}
		err = s.next(ctx, platform.QueueNotificationGenerator, stored, etag, 0)
	case platform.JobGenerated, platform.JobSkipped, platform.JobFailed:
		switch {
		case created && gen != nil:
			err = s.handOver(ctx, stored, gen)
		case !created && stored.State == platform.JobGenerated && stage == "event":
			// A redelivery: the first delivery may have died between the job and its messages.
			err = s.completeGenerated(ctx, stored, gen)
		}
	}
	if err != nil {
		return nil, false, err
	}
	return stored, created, nil
}

// generated generates j before it is written (ensureJob, generateHere) and records the
// outcome on it. When generating fails or comes to a poison (a type no longer registered), it
// is nil and j is as it was: written Generating, the generator does it.
func (s *Service) generated(ctx context.Context, j *platform.NotificationJob) *generation {
	g, err := s.decide(ctx, j)
	if err != nil {
		queues.TraceLog(ctx, s.d.Log).WithError(err).WithField("jobKey", j.Key).Info("generation left to notification-generator")
		return nil
	}
	if g.poison != nil {
		return nil
	}
	g.apply(ctx, s, j)
	return g
}

// handOver ensures the messages of a job just written generated (ensureJob), and settles it.
func (s *Service) handOver(ctx context.Context, stored *platform.NotificationJob, g *generation) error {
	for _, msg := range g.messages {
		if err := s.d.Distributor.Ensure(ctx, msg, "generator"); err != nil {
			return err
		}
	}
	s.settled(ctx, stored)
	return nil
}

// completeGenerated makes sure every message a Generated job names exists and is on its way,
// when its event comes again: the job may have been written generated (ensureJob) by a delivery
// that died before its messages. A message found is never compared with a new rendering (a
// template edited since must not turn it into a Conflict): one still Pending is handed to the
// distributor again (its hand-off may be what was lost), one settled is left alone. A message
// missing is made from g, this delivery's generation, or from a generation of the stored job
// here, whatever this replica's roles; when no generation makes it any more (its settings
// changed since), the event fails with the reason and is retried, then poisoned with it.
func (s *Service) completeGenerated(ctx context.Context, job *platform.NotificationJob, g *generation) error {
	var missing []string
	for _, key := range job.MessageKeys {
		m, err := s.d.Distributor.Get(ctx, key)
		switch {
		case errors.Is(err, platform.ErrNotFound):
			missing = append(missing, key)
		case err != nil:
			return err
		case m.State == platform.MessagePending:
			if err := s.d.Distributor.SendOn(ctx, key); err != nil {
				return err
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if g == nil {
		var err error
		if g, err = s.decide(ctx, job); err != nil {
			return fmt.Errorf("job %s is generated and %d of its messages are missing; generating them: %w", job.Key, len(missing), err)
		}
	}
	for _, key := range missing {
		i := slices.IndexFunc(g.messages, func(m *platform.OutgoingMessage) bool { return m.Key == key })
		if i < 0 {
			now := "other recipients"
			if g.state != platform.JobGenerated {
				now = fmt.Sprintf("%s (%s)", g.state, g.reason)
			}
			return fmt.Errorf("job %s is generated with message %s, which is missing, and generating the job again no longer makes it (now: %s): "+
				"its settings changed since; send it by hand if it is still wanted", job.Key, platform.ShownKey(key), now)
		}
		if err := s.d.Distributor.Restore(ctx, g.messages[i], "generator"); err != nil {
			return err
		}
	}
	return nil
}

// dueNow reports whether the scheduler would release job j at once: its option is enabled
// with no delay, it has no sendAt ahead and no cancellation key to look up. Anything else (a
// missing option, settings not open) takes the scheduler's path, which explains itself.
func (s *Service) dueNow(ctx context.Context, j *platform.NotificationJob) bool {
	if j.CancellationKey != "" || j.SendAt.After(j.CreatedAt) {
		return false
	}
	opt, err := s.d.Settings.Option(ctx, j.BusinessUnitID, j.NotificationEventTypeID)
	return err == nil && opt.IsEnabled && opt.DelaySeconds == 0
}

func (s *Service) conflict(ctx context.Context, stored *platform.NotificationJob, etag tables.ETag, stage string) error {
	queues.TraceLog(ctx, s.d.Log).WithFields(logrus.Fields{"jobKey": stored.Key, "state": stored.State}).
		Error("notification job conflict: different content arrived under an existing key; automatic sending stopped for it")
	var wasFinal bool
	job, _, changed, err := tables.Modify(ctx, s.jobs, stored.Key, stored, etag, func(j *platform.NotificationJob) error {
		if j.State == platform.JobConflict {
			return tables.ErrUnchanged
		}
		wasFinal = j.State.Final()
		j.State, j.Reason = platform.JobConflict, platform.ReasonConflict
		j.Trail = append(j.Trail, platform.NewStep(stage, "conflict", "different content under the same key"))
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark job %s as conflict: %w", stored.Key, err)
	}
	if changed && !wasFinal {
		s.settled(ctx, job) // a job settled before (Generated, Skipped…) settled then
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
	// Set by an automation rule's action, never from a request: the job, its messages and
	// their lifecycle events carry them (platform.NotificationJob.CausedByRule).
	CausedByRule string `json:"-"`
	ChainDepth   int    `json:"-"`
}

// ErrInvalidJob: a direct job request that breaks a rule; it is a platform.ErrInvalidInput.
var ErrInvalidJob = fmt.Errorf("invalid notification job: %w", platform.ErrInvalidInput)

// ErrJobConflict: a direct job's idempotency key was used before with different content.
var ErrJobConflict = errors.New("idempotency key reused with different content")

// MaxRecipients is the most recipients one job may have: more is a mailing, not a
// notification, and would not fit in one table row. A generator that finds more fails the job
// with reason too-many-recipients.
const MaxRecipients = 100

// CreateJob creates a direct job. Without an idempotency key its key is random: direct
// notifications have no replay identity and are at-least-once by design (a caller that
// retries should send an idempotency key). It refuses event-derived types: those come only
// from events (the dual-path guardrail). created is false when the idempotency key named an
// existing, equal job.
func (s *Service) CreateJob(ctx context.Context, d DirectJob, idempotencyKey string) (job *platform.NotificationJob, created bool, err error) {
	id := d.NotificationEventTypeID
	t, known := s.d.Types.Lookup(id)
	switch {
	case known && t.Path == mappings.FromEvents:
		return nil, false, fmt.Errorf("%w: notificationEventTypeId %d (%s) is derived from events only; publish the event with its hint instead",
			ErrInvalidJob, id, t.Name)
	case !known:
		return nil, false, fmt.Errorf("%w: notificationEventTypeId %d is not a direct notification type (known: %v)", ErrInvalidJob, id, s.d.Types.IDs(mappings.Direct))
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
	// Whatever names a row must fit in a table key, or the job could be created and never
	// cancelled (the cancellation key is the key of its cancellation row). The idempotency key
	// is hashed into the job key, but is held to the same bound: one rule for every key given.
	for _, k := range []struct{ field, value string }{{"cancellationKey", d.CancellationKey}, {"idempotency key", idempotencyKey}} {
		if err := platform.CheckKeyLength(k.field, k.value); err != nil {
			return nil, false, fmt.Errorf("%w: %v", ErrInvalidJob, err)
		}
	}
	j := &platform.NotificationJob{
		NotificationEventTypeID: id, BusinessUnitID: d.BusinessUnitID, EventData: data,
		CancellationKey: d.CancellationKey, CausedByRule: d.CausedByRule, ChainDepth: d.ChainDepth,
	}
	if d.SendAt != nil {
		j.SendAt = d.SendAt.UTC()
	}
	if idempotencyKey != "" {
		j.Key = platform.DirectJobKey(id, d.BusinessUnitID, idempotencyKey)
	} else {
		j.Key = newUUID()
	}
	for i, r := range d.Recipients {
		r, err := s.checkRecipient(ctx, j.Key, r)
		if err != nil {
			return nil, false, fmt.Errorf("%w: recipients[%d]: %v", ErrInvalidJob, i, err)
		}
		j.Recipients = append(j.Recipients, r)
	}
	stored, created, err := s.ensureJob(ctx, j, "direct", false)
	if err != nil {
		return nil, false, err
	}
	if stored.State == platform.JobConflict {
		return stored, false, fmt.Errorf("%w: job %s", ErrJobConflict, stored.Key)
	}
	if created {
		path := PathDirect
		if d.CausedByRule != "" {
			path = PathAutomation
		}
		s.created(ctx, stored, path)
	}
	return stored, created, nil
}

// Cancel cancels every job carrying cancellationKey in businessUnitID (0: in every business
// unit) that was created before now and has not been generated yet. A negative unit is
// invalid input.
func (s *Service) Cancel(ctx context.Context, cancellationKey string, businessUnitID int64) error {
	if cancellationKey == "" {
		return fmt.Errorf("%w: empty cancellation key", ErrInvalidJob)
	}
	if err := platform.CheckKeyLength("cancellationKey", cancellationKey); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidJob, err)
	}
	if businessUnitID < 0 {
		return fmt.Errorf("%w: businessUnitId: want 0 (every business unit) or > 0", ErrInvalidJob)
	}
	_, err := s.cancellations.Cancel(ctx, cancellationKey, businessUnitID)
	return err
}

// newUUID is a random (version 4) UUID: a direct job's key without an idempotency key.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
