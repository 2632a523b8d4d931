package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/settings"
	"github.com/platform/platform/tables"
)

// Schedule is the queues.Handler of notification-scheduler. It decides whether a job goes out,
// and when: the option must be seeded and enabled, the job not cancelled; a delay or sendAt
// holds it on the scheduler queue, in hops of at most MaxHold.
func (s *Service) Schedule(ctx context.Context, m *queues.Message) error {
	job, etag, err := s.readJob(ctx, m, false)
	if err != nil {
		return err
	}
	switch {
	case job.State.Final():
		return nil // a duplicate message: this step is done
	case job.State == platform.JobGenerating:
		return s.next(ctx, platform.QueueNotificationGenerator, job, "", 0)
	}
	opt, err := s.d.Settings.Option(ctx, job.BusinessUnitID, job.NotificationEventTypeID)
	if skip, err := s.skipReason(ctx, job, opt, err); err != nil || skip != "" {
		if err != nil {
			return err
		}
		return s.finish(ctx, job, etag, "scheduler", platform.JobSkipped, skip)
	}
	due := job.CreatedAt.Add(time.Duration(opt.DelaySeconds) * time.Second)
	if job.SendAt.After(due) {
		due = job.SendAt
	}
	if wait := time.Until(due); wait > 0 {
		if job.State != platform.JobScheduled || !job.DueAt.Equal(due) {
			job.State, job.DueAt = platform.JobScheduled, due
			job.Trail = append(job.Trail, platform.NewStep("scheduler", "held", "due "+due.Format(time.RFC3339Nano)))
			if err := s.updateJob(ctx, job, etag); err != nil {
				return err
			}
		}
		return s.next(ctx, platform.QueueNotificationScheduler, job, "", min(wait, s.cfg.MaxHold))
	}
	job.State, job.DueAt = platform.JobGenerating, due
	job.Trail = append(job.Trail, platform.NewStep("scheduler", "released to generator", ""))
	if err := s.updateJob(ctx, job, etag); err != nil {
		return err
	}
	return s.next(ctx, platform.QueueNotificationGenerator, job, "", 0)
}

// skipReason is why a job must not go out now, or "": option missing or disabled, cancelled.
// opt and optErr are the job's NotificationOption as read.
func (s *Service) skipReason(ctx context.Context, job *platform.NotificationJob, opt settings.Option, optErr error) (string, error) {
	switch {
	case errors.Is(optErr, settings.ErrNotSeeded):
		return platform.ReasonOptionNotSeeded, nil
	case optErr != nil:
		return "", optErr
	case !opt.IsEnabled:
		return platform.ReasonDisabled, nil
	}
	if job.CancellationKey != "" {
		at, err := s.cancellations.CancelledAt(ctx, job.CancellationKey, job.BusinessUnitID)
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
func (s *Service) updateJob(ctx context.Context, job *platform.NotificationJob, etag tables.ETag) error {
	_, err := s.jobs.Update(ctx, job, etag)
	if errors.Is(err, platform.ErrConflict) {
		return fmt.Errorf("job %s changed under us; retrying: %w", job.Key, err)
	}
	return err
}

// finish settles a job that sends nothing, with its reason.
func (s *Service) finish(ctx context.Context, job *platform.NotificationJob, etag tables.ETag, stage string, state platform.JobState, reason string) error {
	job.State, job.Reason = state, reason
	job.Trail = append(job.Trail, platform.NewStep(stage, string(state), reason))
	queues.TraceLog(ctx, s.d.Log).WithFields(logrus.Fields{"jobKey": job.Key, "state": state, "reason": reason}).Info("notification job settled without sending")
	if err := s.updateJob(ctx, job, etag); err != nil {
		return err
	}
	s.settled(ctx, job)
	return nil
}
