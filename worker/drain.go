package worker

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Drained reports whether every work queue this worker's roles consume is empty — each
// physical queue its consumers read: every shard, and the queues of another shard count they
// found, one count each (poison queues are not work: they hold what needs a person; delayed
// and backing-off messages count as not empty) — the outbox holds no intent waiting to be
// materialized or settled (with RoleAPI), and nothing is in flight in this worker.
func (w *Worker) Drained(ctx context.Context) (bool, error) {
	idle, before := w.idle()
	if !idle {
		return false, nil
	}
	for _, c := range w.consumers {
		for _, q := range c.Queues() {
			n, err := w.queues.ApproximateCount(ctx, q)
			if err != nil || n > 0 {
				return false, err
			}
		}
	}
	if !w.outbox.Disabled() {
		if busy, err := w.outbox.Busy(ctx); err != nil || busy {
			return false, err
		}
	}
	// Nothing was received while we counted, so the counts describe an idle worker.
	idle, after := w.idle()
	return idle && after == before, nil
}

func (w *Worker) idle() (bool, int64) {
	all := true
	var received int64
	for _, c := range w.consumers {
		idle, n := c.Idle()
		all, received = all && idle, received+n
	}
	return all, received
}

// WaitDrained returns once Drained holds, or with ctx's error.
func (w *Worker) WaitDrained(ctx context.Context, poll time.Duration) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		ok, err := w.Drained(ctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			w.log.WithError(err).Warn("drain: could not read queue counts")
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain: %w", ctx.Err())
		case <-t.C:
		}
	}
}
