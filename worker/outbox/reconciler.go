package outbox

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// reconcileOnce settles the Pending intents older than StaleAfter: a probe says whether the
// mutation committed; committed → Confirmed (then materialized), not → Discarded (nothing is
// ever emitted). An intent no probe can answer for is left alone and logged for support.
func (s *Service) reconcileOnce(ctx context.Context) {
	if _, err := s.Reconcile(ctx); err != nil && ctx.Err() == nil {
		s.log.WithError(err).Warn("outbox reconciler failed; next sweep retries")
	}
}

// Reconcile settles the stale Pending intents now (what the worker does every
// ReconcileEvery) and says how many it settled.
func (s *Service) Reconcile(ctx context.Context) (settled int, err error) {
	before := platform.SourceKeyAt(time.Now().Add(-s.cfg.StaleAfter))
	for {
		intents, parked, err := s.store.ListParked(ctx, platform.IntentPending, before, materializeBatch)
		s.logParked(parked)
		if err != nil {
			return settled, err
		}
		progressed := false
		for _, in := range intents {
			committed, known, err := s.probe(ctx, in)
			if err != nil {
				return settled, err
			}
			if !known {
				s.log.WithFields(logrus.Fields{"sourceKey": in.SourceKey, "source": in.Event.Source}).
					Warn("stale outbox intent: no probe for its source; left Pending for support (confirm or discard it by hand)")
				continue
			}
			to, reason := platform.IntentDiscarded, "reconciler: the mutation did not commit"
			if committed {
				to, reason = platform.IntentConfirmed, "reconciler: the mutation committed"
			}
			_, moved, err := s.store.Move(ctx, in.SourceKey, to, reason)
			if err != nil && !errors.Is(err, tables.ErrIntentSettled) {
				return settled, err
			}
			if moved {
				s.intent(TransitionSettled)
			}
			s.log.WithFields(logrus.Fields{"sourceKey": in.SourceKey, "state": to}).Info("stale outbox intent settled")
			settled++
			progressed = true
		}
		if (len(intents) < materializeBatch || !progressed) && len(parked) == 0 {
			return settled, nil
		}
	}
}

func (s *Service) probe(ctx context.Context, in *platform.OutboxIntent) (committed, known bool, err error) {
	if in.SourceRow != nil {
		committed, err = s.tables.RowExists(ctx, *in.SourceRow)
		return committed, true, err
	}
	if p, ok := s.cfg.Probes[in.Event.Source]; ok && in.Event.Source != "" {
		committed, err = p(ctx, in)
		return committed, true, err
	}
	return false, false, nil
}

// Busy reports whether the outbox holds work: confirmed intents not yet materialized, or
// pending ones not yet confirmed, discarded or reconciled.
func (s *Service) Busy(ctx context.Context) (bool, error) {
	for _, st := range []platform.IntentState{platform.IntentConfirmed, platform.IntentPending} {
		in, err := s.store.List(ctx, st, "", 1)
		if err != nil || len(in) > 0 {
			return true, err
		}
	}
	return false, nil
}
