package notify

import (
	"context"
	"errors"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/queues"
)

// Name implements the router's PostProcessor: the concern that derives notification jobs from
// events, by the hint an event carries and the dedicated mappings of its type.
func (*Service) Name() string { return "notification" }

// Accepts implements PostProcessor: only events with a hint or a dedicated mapping.
func (s *Service) Accepts(ev *platform.EntityEvent) bool { return s.d.Types.Accepts(ev) }

// Process implements PostProcessor: it ensures one job per notification the event asks for,
// keyed from the event.
func (s *Service) Process(ctx context.Context, ev *platform.EntityEvent) error {
	reqs, err := s.d.Types.Derive(ev)
	if err != nil {
		return err
	}
	// Every job is ensured even when one fails, so that a job that cannot be completed (its
	// message can no longer be generated) does not keep its event's other jobs from existing.
	var errs []error
	for _, req := range reqs {
		j := &platform.NotificationJob{
			Key:                     platform.EventJobKey(req.NotificationEventTypeID, ev.Key()),
			NotificationEventTypeID: req.NotificationEventTypeID,
			BusinessUnitID:          ev.BusinessUnitID,
			EventKey:                ev.Key(),
			EventData:               req.EventData,
			// An event a rule published keeps its chain: this job's outcomes are the rule's too.
			CausedByRule: ev.CausedByRule,
			ChainDepth:   ev.ChainDepth,
		}
		_, created, err := s.ensureJob(ctx, j, "event", s.cfg.GenerateInHandler)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if created {
			path := PathMapping
			if req.NotificationEventTypeID == ev.NotificationEventTypeID {
				path = PathHint // the hint comes first; a mapping of the same type adds no job
			}
			s.created(ctx, j, path)
			queues.TraceLog(ctx, s.d.Log).WithFields(logrus.Fields{
				"EventTypeId": ev.EventTypeID, "EventKey": ev.Key(), "BusinessUnitId": ev.BusinessUnitID,
				"NotificationEventTypeId": req.NotificationEventTypeID, "JobKey": j.Key,
			}).Info("event-derived notification job created")
		}
	}
	return errors.Join(errs...)
}
