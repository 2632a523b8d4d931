package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/tables"
)

// lead campaigns for the materializer lease and, while holding it, materializes. Only one
// replica materializes at a time; if the leader dies, its lease expires and another takes over.
func (s *Service) lead(ctx context.Context) {
	var l *blobs.Lease
	var lastRenew time.Time
	setLeader := func(v bool) {
		s.mu.Lock()
		changed := s.leader != v
		if changed {
			s.log.WithField("leader", v).Info("materializer leadership changed")
		}
		s.leader = v
		s.mu.Unlock()
		if changed && s.onLeader != nil {
			s.onLeader(v)
		}
	}
	// hold campaigns for the lease, or renews it when a third of it has passed, and reports
	// whether this replica leads with time left on its lease. It runs before every batch, so
	// a long backlog never outlives the lease.
	hold := func() bool {
		if l == nil {
			var err error
			if l, err = s.blobs.NewLease(ctx, "outbox-materializer", s.cfg.LeaseDuration); err != nil {
				if ctx.Err() == nil {
					s.log.WithError(err).Warn("materializer lease unavailable")
				}
				return false
			}
		}
		switch {
		case !s.IsLeader():
			ok, err := l.Acquire(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.WithError(err).Warn("materializer: acquire lease")
			}
			if ok {
				lastRenew = time.Now()
			}
			setLeader(ok)
		case time.Since(lastRenew) >= s.cfg.LeaseDuration/3:
			if err := l.Renew(ctx); err != nil {
				if ctx.Err() == nil {
					s.log.WithError(err).Warn("materializer lost its lease")
				}
				setLeader(false)
			} else {
				lastRenew = time.Now()
			}
		}
		return s.IsLeader() && time.Since(lastRenew) < s.cfg.LeaseDuration*2/3
	}
	defer func() {
		if s.IsLeader() && l != nil {
			relCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = l.Release(relCtx)
			cancel()
		}
		setLeader(false)
	}()
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		for hold() && s.materializeBatch(ctx, hold) {
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// IsLeader reports whether this replica holds the materializer lease now.
func (s *Service) IsLeader() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leader
}

const materializeBatch = 100

// materializeBatch materializes up to a batch of confirmed intents; true when there may be more.
// held is asked before each intent (it renews the lease when due, at no request otherwise): a
// replica whose lease ran out mid-batch stops at once, instead of publishing intents the new
// leader already published, after the queues looked drained (found by make chaos).
func (s *Service) materializeBatch(ctx context.Context, held func() bool) bool {
	intents, parked, err := s.store.ListParked(ctx, platform.IntentConfirmed, "", materializeBatch)
	s.logParked(parked)
	if err != nil {
		if ctx.Err() == nil {
			s.log.WithError(err).Warn("materializer: list confirmed intents")
		}
		return false
	}
	for _, in := range intents {
		if !held() {
			return false
		}
		err := s.materialize(ctx, in)
		if err != nil && isRefused(err) {
			// No pass can ever publish it: park it with the reason, and go on with the rest.
			reason := "not published: " + err.Error()
			if err = s.store.Park(ctx, in, reason); err == nil {
				s.logParked([]tables.ParkedIntent{{SourceKey: in.SourceKey, Reason: reason}})
				continue
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.WithError(err).WithField("sourceKey", in.SourceKey).Warn("materialize failed; the next pass repeats it")
			}
			return false
		}
	}
	return len(intents) == materializeBatch || len(parked) > 0
}

// isRefused reports whether err says the intent's event can never be published (its
// payload refused), rather than that storage failed for now.
func isRefused(err error) bool {
	return platform.IsPermanent(err) || errors.Is(err, platform.ErrInvalidInput)
}

// logParked tells support (an error, since their events are not emitted until someone looks)
// and OnIntent about intents just parked.
func (s *Service) logParked(parked []tables.ParkedIntent) {
	for _, p := range parked {
		s.intent(TransitionParked)
		s.log.WithFields(logrus.Fields{"sourceKey": p.SourceKey, "reason": p.Reason}).
			Error("outbox intent parked: left for support, the others go on (platform outbox discard, or append it again)")
	}
}

// materialize writes the intent's PlatformEventLog row (already there: that step is done),
// enqueues its event, and marks it Materialized. A crash between any two steps leaves the
// intent Confirmed, and the next pass repeats the steps: the log row exists once (its key is
// the SourceKey), and an event enqueued twice has its effects once (every effect is keyed).
// An intent written before scoped claim-check names has its payload stored again under its
// business unit's name first (the queue accepts no other); a payload that cannot be (its blob
// missing, over the limit, not matching its hash) is a permanent error.
func (s *Service) materialize(ctx context.Context, in *platform.OutboxIntent) error {
	ev, err := s.blobs.RescopeEventPayload(ctx, in.Event)
	if err != nil {
		if blobs.IsPayloadRefused(err) {
			return platform.Permanent(err)
		}
		return err
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	rec := &tables.LogRecord{
		SourceKey: in.SourceKey, EventType: ev.EventTypeID, Source: ev.Source, TenantID: ev.TenantID,
		ProjectID: ev.BusinessUnitID, EntityName: ev.EntityTypeID, EntityID: ev.Identity(), Timestamp: ev.CreatedOn,
		PayloadJSON: string(payload), CorrelationID: ev.CorrelationID, ActorID: ev.ActorID,
	}
	if err := s.eventLog.Insert(ctx, rec); err != nil && !errors.Is(err, platform.ErrExists) {
		return err
	}
	if _, err := s.queues.Publish(ctx, ev); err != nil {
		return err
	}
	in.Event = ev
	if err := s.store.MarkMaterialized(ctx, in); err != nil {
		return err
	}
	s.intent(TransitionMaterialized)
	return nil
}
