package webhooks

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
)

// noteOutcome keeps endpoint e's health after an attempt to deliver to it that ended with err:
// the first failure since a success marks it failing (FailingSince), a success clears the
// mark, and a failure when it has been failing for Config.DisableAfter disables it, with the
// reason, logged. Only changes are written: a healthy endpoint costs nothing. A write that
// fails is logged and left: the attempt's own outcome is what the distributor records.
func (s *Service) noteOutcome(ctx context.Context, e *tables.Endpoint, sendErr error) {
	now := time.Now().UTC()
	log := queues.TraceLog(ctx, s.log).WithField("endpointId", e.ID)
	var err error
	switch {
	case sendErr == nil && e.FailingSince.IsZero():
		return
	case sendErr == nil:
		err = s.store.SetFailingSince(ctx, e.ID, time.Time{})
	case e.FailingSince.IsZero():
		err = s.store.SetFailingSince(ctx, e.ID, now)
	case now.Sub(e.FailingSince) >= s.cfg.DisableAfter:
		reason := fmt.Sprintf("every delivery failed since %s (%s); the last: %v",
			e.FailingSince.Format(time.RFC3339), now.Sub(e.FailingSince).Round(time.Second), sendErr)
		if err = s.store.AutoDisable(ctx, e.ID, reason, now); err == nil {
			log.WithFields(logrus.Fields{"failingSince": e.FailingSince.Format(time.RFC3339), "reason": reason}).
				Warn("webhook endpoint disabled: its deliveries have all failed for too long")
			err = s.changed(ctx) // every replica stops creating its deliveries
		}
	default:
		return
	}
	if err != nil && ctx.Err() == nil {
		log.WithError(err).Warn("webhook endpoint: could not record its health")
	}
}
