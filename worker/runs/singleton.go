package runs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// Singleton agents: the row ("singleton", agent) of AgentRuns names the run that holds the
// agent, and only its holder executes. A run takes its lease (Running) before it claims the
// row, so of two that start at once the second to claim sees the first Running; the claim is
// written even when the run holds the row already (a retry), so that of two claims at once
// exactly one write wins and the other reads again.

// busy reports whether o, the singleton's holder, stops another run of its agent. Skip: o is
// Running under a live lease. Cancel: o's lease may still be held by a runner executing it —
// Running, or cancelled but its runner not yet let go (letGo clears the lease).
func busy(o *Run, mode SingletonMode, now time.Time) bool {
	if mode == SingletonCancel {
		return now.Before(o.LeaseUntil)
	}
	return o.State == Running && now.Before(o.LeaseUntil)
}

// claimSingleton makes run the holder of its agent's singleton row, unless the holder is busy:
// then it returns it. In cancel mode a holder that is not over is cancelled first, replaced
// by run (its runner stops at its next heartbeat; a holder not executing never starts).
func (s *Service) claimSingleton(ctx context.Context, run *Run, mode SingletonMode) (other *Run, err error) {
	for range 3 {
		holder, etag, err := s.runs.Singleton(ctx, run.Agent)
		if err != nil {
			return nil, err
		}
		if holder != "" && holder != run.ID {
			o, err := s.displace(ctx, holder, run, mode)
			if err != nil {
				return nil, err
			}
			if o != nil && busy(o, mode, time.Now()) {
				return o, nil
			}
		}
		err = s.runs.SetSingleton(ctx, run.Agent, run.ID, etag)
		if !errors.Is(err, platform.ErrConflict) && !errors.Is(err, platform.ErrExists) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("singleton %s: still moving after 3 attempts: %w", run.Agent, platform.ErrConflict)
}

// displace reads holder (nil when it is gone) and, in cancel mode, cancels it for run unless
// it is over.
func (s *Service) displace(ctx context.Context, holder string, run *Run, mode SingletonMode) (*Run, error) {
	o, _, err := s.runs.Get(ctx, holder)
	switch {
	case errors.Is(err, platform.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case mode != SingletonCancel || o.State.Final():
		return o, nil
	}
	o, err = s.cancel(ctx, holder, "singleton: replaced by run "+run.ID)
	if errors.Is(err, ErrFinished) { // it ended meanwhile: its lease went with it
		err = nil
	}
	return o, err
}

// waitFor is the cancel mode's wait before the lease: while the singleton's holder (another
// run) may still execute, it is cancelled and run looks again after slotWait, still Queued.
// It reports whether run waits.
func (s *Service) waitFor(ctx context.Context, run *Run) (bool, error) {
	holder, _, err := s.runs.Singleton(ctx, run.Agent)
	if err != nil || holder == "" || holder == run.ID {
		return false, err
	}
	o, err := s.displace(ctx, holder, run, SingletonCancel)
	if err != nil || o == nil || !busy(o, SingletonCancel, time.Now()) {
		return false, err
	}
	return true, s.enqueue(ctx, run.ID, slotWait)
}

// requeue gives back the lease run just took (Queued again, the attempt not counted) because
// other, the run it replaces, may still execute; run looks again after slotWait. A conflict
// (run cancelled meanwhile) is returned: Handle reads the run again.
func (s *Service) requeue(ctx context.Context, log logrus.FieldLogger, run *Run, etag tables.ETag, other *Run) error {
	run.State, run.Attempts, run.LeaseHolder, run.LeaseUntil = Queued, run.Attempts-1, "", time.Time{}
	if run.Attempts == 0 {
		run.StartedAt = time.Time{}
	}
	if _, err := s.runs.Update(ctx, run, etag); err != nil {
		return err
	}
	log.WithField("replaced", other.ID).Info("singleton: waiting for the replaced run's runner to let go")
	return s.enqueue(ctx, run.ID, slotWait)
}

// letGo clears the lease of run, cancelled under this runner, once its agent has returned:
// a singleton run that replaced it need not wait for the lease to end. Best effort.
func (s *Service) letGo(ctx context.Context, log logrus.FieldLogger, run *Run) {
	ctx, done := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer done()
	_, _, _, err := tables.Modify(ctx, s.runs, run.ID, nil, "", func(cur *Run) error {
		if cur.State != Cancelled || cur.Epoch != run.Epoch || cur.LeaseHolder != run.LeaseHolder || cur.LeaseUntil.IsZero() {
			return tables.ErrUnchanged
		}
		cur.LeaseUntil = time.Time{}
		return nil
	})
	if err != nil {
		log.WithError(err).Warn("cancelled run's lease not let go: it ends on its own")
	}
}
