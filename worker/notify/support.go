package notify

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/delivery"
)

// CancelJob stops job key before it is released to the generator, by hand: Created or
// Scheduled → Skipped with reason cancelled-by-support, a trail step "support Skipped:
// cancelled-by-support: REASON (by WHO)", and the job-settled hook called (metrics, lifecycle event). A job the scheduler
// released (Generating, Generated) or that settled otherwise is a *delivery.StateError; a missing job, or one of a
// business unit a.Visible refuses, is ErrNoSuchKey.
//
// It is safe against the scheduler: both write the row at the version they read (ETag). If
// the scheduler released the job first, the cancel reads Generating and refuses; if the cancel
// wrote first, the scheduler's write fails, and its retry reads the job Skipped — final — and
// stops, as does a hold that comes due later, and the generator (which never sees a job that
// was not released).
func (s *Service) CancelJob(ctx context.Context, key string, a delivery.Actor) (*platform.NotificationJob, error) {
	var found platform.JobState
	job, _, changed, err := tables.Modify(ctx, s.jobs, key, nil, "", func(j *platform.NotificationJob) error {
		if a.Visible != nil && !a.Visible(j.BusinessUnitID) {
			return ErrNoSuchKey
		}
		if found = j.State; j.State != platform.JobCreated && j.State != platform.JobScheduled {
			return tables.ErrUnchanged
		}
		j.State, j.Reason = platform.JobSkipped, platform.ReasonCancelledBySupport
		j.Trail = append(j.Trail, platform.NewStep("support", string(platform.JobSkipped), fmt.Sprintf("%s: %s (by %s)", platform.ReasonCancelledBySupport, a.Reason, a.By)))
		return nil
	})
	switch {
	case errors.Is(err, platform.ErrNotFound):
		return nil, ErrNoSuchKey
	case err != nil:
		return nil, err
	case !changed && (found == platform.JobGenerating || found == platform.JobGenerated):
		return nil, &delivery.StateError{Key: key, State: string(found), Want: "already released to the generator"}
	case !changed:
		return nil, &delivery.StateError{Key: key, State: string(found), Want: "the job is settled already"}
	}
	s.d.Log.WithFields(logrus.Fields{"jobKey": key, "by": a.By, "reason": a.Reason}).Warn("notification job cancelled by support")
	s.settled(ctx, job)
	return job, nil
}
