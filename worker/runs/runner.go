package runs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/lifecycle"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
)

// The runner: a message of queue agent-runs is a run id. Handle reads the run and either
// leaves it (over), sends it back for later (someone else's live lease, a retry not yet due,
// no free slot, a singleton run it replaced still letting go), or takes the lease and executes it. The message is deleted only once the
// run's next step is recorded (a result, RetryWait and its delayed message), so a runner that
// dies anywhere leaves a message that finds the run again.

var errTimedOut = errors.New("run timed out")

// slotWait: a run that finds no free concurrency slot on this replica, or a singleton run it
// replaced still executing, looks again after it.
const slotWait = 2 * time.Second

// Handle is the agent-runs queue's handler.
func (s *Service) Handle(ctx context.Context, m *queues.Message) error {
	id := strings.TrimSpace(string(m.Body))
	if strings.HasPrefix(id, "{") {
		if rm, err := queues.DecodeJSON[runMessage](m); err == nil {
			id = rm.RunID
		}
	}
	if !validID(id) {
		return platform.Permanent(fmt.Errorf("agent-runs message %.80q is not a run id", id))
	}
	for range 3 {
		run, etag, err := s.runs.Get(ctx, id)
		if errors.Is(err, platform.ErrNotFound) {
			return platform.Permanent(err)
		}
		if err != nil {
			return err
		}
		if err = s.step(ctx, run, etag); !errors.Is(err, platform.ErrConflict) {
			return err
		}
		// The run moved between our read and our write: decide again on it as it is now.
	}
	return fmt.Errorf("run %s: still moving after 3 reads: %w", id, platform.ErrConflict)
}

func (s *Service) step(ctx context.Context, run *Run, etag tables.ETag) error {
	a, ok := s.agents[run.Agent]
	if !ok {
		// Another replica may know it; after the consumer's retries the message is poisoned
		// with this reason (redrive it once the agent is registered).
		return fmt.Errorf("run %s: agent %q is not registered in this worker", run.ID, run.Agent)
	}
	now := time.Now()
	switch run.State {
	case Succeeded, Failed, Cancelled, TimedOut:
		return nil
	case Running:
		if now.Before(run.LeaseUntil) {
			return s.enqueue(ctx, run.ID, run.LeaseUntil.Sub(now)) // its runner is alive: look again when the lease would have expired
		}
	case RetryWait:
		if now.Before(run.NextAttemptAt) {
			return s.enqueue(ctx, run.ID, run.NextAttemptAt.Sub(now))
		}
	}
	log := queues.TraceLog(ctx, s.log).WithFields(logrus.Fields{"run": run.ID, "agent": run.Agent})
	if run.State == Running {
		log = log.WithFields(logrus.Fields{"lostHolder": run.LeaseHolder, "lostEpoch": run.Epoch})
		if run.Attempts >= a.opts.MaxAttempts {
			return s.finish(ctx, log, run, etag, Failed, nil, fmt.Sprintf("runner %s lost its lease on attempt %d of %d", run.LeaseHolder, run.Attempts, a.opts.MaxAttempts))
		}
		log.Warn("run's lease expired (its runner died or stalled): taking it over")
	}
	if a.opts.Singleton == SingletonCancel {
		if wait, err := s.waitFor(ctx, run); wait || err != nil {
			return err
		}
	}
	if a.slots != nil {
		select {
		case a.slots <- struct{}{}:
			defer func() { <-a.slots }()
		default:
			return s.enqueue(ctx, run.ID, slotWait)
		}
	}
	if a.keys != nil {
		free, ok, err := s.takeKey(ctx, a, run)
		switch {
		case err != nil:
			return err
		case !ok:
			return s.enqueue(ctx, run.ID, slotWait)
		}
		defer free()
	}
	run.State, run.Epoch, run.Attempts = Running, run.Epoch+1, run.Attempts+1
	run.LeaseHolder, run.LeaseUntil, run.StartedAt, run.NextAttemptAt = s.cfg.Holder, now.Add(s.cfg.LeaseTTL).UTC(), now.UTC(), time.Time{}
	etag, err := s.runs.Update(ctx, run, etag)
	if err != nil {
		return err // ErrConflict: Handle reads it again
	}
	log = log.WithFields(logrus.Fields{"epoch": run.Epoch, "attempt": run.Attempts})
	if mode := a.opts.Singleton; mode != SingletonOff {
		other, err := s.claimSingleton(ctx, run, mode)
		switch {
		case err != nil:
			return err // our lease expires and the run is taken over after it
		case other != nil && mode == SingletonSkip:
			return s.finish(ctx, log, run, etag, Cancelled, nil, "singleton: run "+other.ID+" is running")
		case other != nil:
			return s.requeue(ctx, log, run, etag, other)
		}
	}
	return s.execute(ctx, log, a, run, etag)
}

// execute runs the agent under the lease just taken (etag is its write) and records the end.
func (s *Service) execute(ctx context.Context, log logrus.FieldLogger, a *agent, run *Run, etag tables.ETag) error {
	input, err := s.blobs.Resolve(ctx, run.Input, run.InputBlob)
	if err != nil {
		if errors.Is(err, platform.ErrNotFound) {
			return s.finish(ctx, log, run, etag, Failed, nil, "input blob "+run.InputBlob+" is missing")
		}
		return err
	}
	view := *run
	view.Input = input
	runCtx, lose := context.WithCancelCause(ctx)
	defer lose(nil)
	runCtx, cancel := context.WithTimeoutCause(runCtx, a.opts.Timeout, errTimedOut)
	defer cancel()
	hb := s.heartbeat(runCtx, lose, run, etag)
	began := time.Now()
	out, runErr := a.Run(runCtx, &view)
	etag, lost := hb.stop()
	log = log.WithField("took", time.Since(began).Round(time.Millisecond).String())
	switch {
	case lost != nil && errors.Is(lost, errRenewalFailed):
		// Nobody else has the run: this runner could not keep its lease. The message is
		// retried, and its redelivery takes the run over once the lease has run out; dropped,
		// the run would stay Running with no message to move it on.
		log.WithError(lost).Warn("run stopped: its lease could not be renewed; retried once the lease has run out")
		return lost
	case lost != nil:
		log.WithError(lost).Warn("run's result not recorded: the run was cancelled or taken over")
		s.letGo(ctx, log, run)
		return nil
	case ctx.Err() != nil:
		// The worker stops hard: leave the lease to expire; another runner takes the run over.
		return ctx.Err()
	case errors.Is(context.Cause(runCtx), errTimedOut):
		return s.finish(ctx, log, run, etag, TimedOut, nil, fmt.Sprintf("timed out after %s (attempt %d)", a.opts.Timeout, run.Attempts))
	case runErr == nil:
		return s.finish(ctx, log, run, etag, Succeeded, out, "")
	case platform.IsPermanent(runErr):
		return s.finish(ctx, log, run, etag, Failed, nil, fmt.Sprintf("attempt %d: %v", run.Attempts, runErr))
	case run.Attempts >= a.opts.MaxAttempts:
		return s.finish(ctx, log, run, etag, Failed, nil, fmt.Sprintf("attempt %d of %d: %v", run.Attempts, a.opts.MaxAttempts, runErr))
	}
	wait := s.backoff(run.Attempts)
	run.State, run.Error, run.LeaseUntil, run.NextAttemptAt = RetryWait, fmt.Sprintf("attempt %d: %v", run.Attempts, runErr), time.Time{}, time.Now().Add(wait).UTC()
	wctx, done := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer done()
	if written, err := s.write(wctx, log, run, etag); !written {
		return err
	}
	log.WithError(runErr).WithField("retryIn", wait.String()).Warn("run attempt failed; will retry")
	// If this fails, the message is retried: its redelivery finds RetryWait and waits it out.
	return s.enqueue(wctx, run.ID, wait)
}

// finish writes the run's end, conditional on etag (the runner's own last write): a runner
// whose epoch is stale, or whose run was cancelled meanwhile, has its result refused.
func (s *Service) finish(ctx context.Context, log logrus.FieldLogger, run *Run, etag tables.ETag, state State, out json.RawMessage, reason string) error {
	// The agent's work is done: record it even when a hard stop began meanwhile.
	ctx, done := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer done()
	if len(out) > 0 {
		if err := s.blobs.CheckPayloadSize(len(out)); err != nil {
			state, out, reason = Failed, nil, "output: "+err.Error()
		} else if !json.Valid(out) {
			state, out, reason = Failed, nil, "output: not a JSON value"
		}
	}
	inline, blob, err := s.blobs.Offload(ctx, out, tables.MaxInlineSnapshot)
	if err != nil {
		return fmt.Errorf("store run %s output: %w", run.ID, err)
	}
	run.State, run.Output, run.OutputBlob, run.Error = state, inline, blob, reason
	run.FinishedAt, run.LeaseUntil, run.NextAttemptAt = time.Now().UTC(), time.Time{}, time.Time{}
	if written, err := s.write(ctx, log, run, etag); !written {
		return err
	}
	log.WithFields(logrus.Fields{"state": state, "reason": reason}).Info("run finished")
	s.finished(ctx, run)
	return nil
}

// write records a runner's own step (run as it is to be), conditional on etag, its last
// write. When the row moved since (412), it reads it: still this lease — same epoch, holder,
// Running: the last renewal landed but its reply was lost — the step is written on the row
// as it is; moved on (cancelled, or taken over by a higher epoch), the step is dropped,
// logged, and written is false with no error (the message is done). Any other failure is
// returned (the message is retried, and finds the run again).
func (s *Service) write(ctx context.Context, log logrus.FieldLogger, run *Run, etag tables.ETag) (written bool, err error) {
	for range 3 {
		_, err = s.runs.Update(ctx, run, etag)
		if !errors.Is(err, platform.ErrConflict) {
			return err == nil, err
		}
		cur, curTag, gerr := s.runs.Get(ctx, run.ID)
		if gerr != nil {
			return false, gerr
		}
		if cur.Epoch != run.Epoch || cur.LeaseHolder != run.LeaseHolder || cur.State != Running {
			log.WithFields(logrus.Fields{"staleEpoch": run.Epoch, "refusedState": run.State, "nowState": cur.State, "nowEpoch": cur.Epoch, "nowHolder": cur.LeaseHolder}).
				Warn("run's result refused: the run moved on since this runner's lease (stale epoch or cancelled)")
			return false, nil
		}
		etag = curTag
	}
	return false, fmt.Errorf("run %s: still moving after 3 writes: %w", run.ID, platform.ErrConflict)
}

func (s *Service) backoff(attempt int) time.Duration {
	d := s.cfg.RetryBackoff
	for i := 1; i < attempt && d < s.cfg.MaxRetryBackoff; i++ {
		d *= 2
	}
	return lifecycle.Jitter(min(d, s.cfg.MaxRetryBackoff))
}

// heartbeat keeps a runner's lease: every third of LeaseTTL it moves LeaseUntil on, with a
// write conditional on its last one. A write that finds the run moved (cancelled, or another
// epoch) — or a lease that ran out while storage refused every renewal — cancels the agent.
type heartbeat struct {
	done, exited chan struct{}
	mu           sync.Mutex
	etag         tables.ETag
	lost         error
}

func (s *Service) heartbeat(ctx context.Context, lose context.CancelCauseFunc, run *Run, etag tables.ETag) *heartbeat {
	h := &heartbeat{done: make(chan struct{}), exited: make(chan struct{}), etag: etag}
	lease := *run
	go func() {
		defer close(h.exited)
		t := time.NewTicker(s.cfg.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-h.done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := s.renew(ctx, h, &lease); err != nil {
				h.mu.Lock()
				h.lost = err
				h.mu.Unlock()
				lose(err)
				return
			}
		}
	}()
	return h
}

// errRenewalFailed: a runner's renewals failed until its lease was about to run out; no other
// runner has the run (yet).
var errRenewalFailed = errors.New("run's lease not renewed")

// renew moves lease on once. It returns an error only when the lease is lost — or about to
// be: a renewal that fails when the lease would run out before the next beat stops the agent
// while the lease still holds, so that no other runner, taking the run over after it, runs
// the agent at the same time. Each renewal is bounded by a beat.
func (s *Service) renew(ctx context.Context, h *heartbeat, lease *Run) error {
	beat := s.cfg.LeaseTTL / 3
	ctx, cancel := context.WithTimeout(ctx, beat)
	defer cancel()
	next := *lease
	next.LeaseUntil = time.Now().Add(s.cfg.LeaseTTL).UTC()
	h.mu.Lock()
	etag := h.etag
	h.mu.Unlock()
	tag, err := s.runs.Update(ctx, &next, etag)
	if err == nil {
		h.mu.Lock()
		h.etag = tag
		h.mu.Unlock()
		lease.LeaseUntil = next.LeaseUntil
		return nil
	}
	if errors.Is(err, platform.ErrConflict) {
		cur, curTag, gerr := s.runs.Get(ctx, lease.ID)
		switch {
		case gerr == nil && (cur.Epoch != lease.Epoch || cur.State != Running || cur.LeaseHolder != lease.LeaseHolder):
			return fmt.Errorf("run is %s at epoch %d (this runner's epoch is %d)", cur.State, cur.Epoch, lease.Epoch)
		case gerr == nil:
			// Still ours: our last renewal was written but its reply lost. The next beat goes
			// on from it.
			h.mu.Lock()
			h.etag = curTag
			h.mu.Unlock()
			lease.LeaseUntil = cur.LeaseUntil
			return nil
		}
	}
	if time.Now().Add(beat).After(lease.LeaseUntil) {
		return fmt.Errorf("%w: lease runs out at %s, before another renewal: %w", errRenewalFailed, lease.LeaseUntil.Format(time.RFC3339Nano), err)
	}
	if ctx.Err() == nil {
		s.log.WithError(err).WithField("run", lease.ID).Warn("run heartbeat failed; retrying at the next beat")
	}
	return nil
}

// stop ends the heartbeat and returns the lease's last ETag, and why it was lost (nil if not).
func (h *heartbeat) stop() (tables.ETag, error) {
	close(h.done)
	<-h.exited
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.etag, h.lost
}
