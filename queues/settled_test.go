package queues_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
)

// Observe is told of each message once it is settled, with its outcome: processed, poisoned,
// retried (then processed), and abandoned by a stop whose deadline cut its handler short.
func TestObserveTellsHowEachMessageWasSettled(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	var mu sync.Mutex
	seen := map[string][]queues.Settled{}
	var stuck atomic.Bool
	cons := start(t, c, queues.ConsumerConfig{
		Handler: func(ctx context.Context, m *queues.Message) error {
			switch string(m.Body) {
			case "slow":
				time.Sleep(50 * time.Millisecond)
			case "bad":
				return platform.Permanent(errors.New("bad input"))
			case "flaky":
				if m.DequeueCount == 1 {
					return errors.New("unavailable, once")
				}
			case "stuck":
				stuck.Store(true)
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		},
		Observe: func(s queues.Settled) {
			mu.Lock()
			defer mu.Unlock()
			// Keyed by outcome and delivery: the body is the handler's, not Observe's.
			seen[string(s.Outcome)] = append(seen[string(s.Outcome)], s)
		},
	})
	enqueue(t, c, "slow", "bad", "flaky")
	testenv.Eventually(t, 20*time.Second, "four settles", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen[string(queues.Processed)]) == 2 && len(seen[string(queues.Poisoned)]) == 1 && len(seen[string(queues.Retried)]) == 1
	})
	enqueue(t, c, "stuck")
	testenv.Eventually(t, 10*time.Second, "the stuck handler running", stuck.Load)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = cons.Stop(ctx)

	mu.Lock()
	defer mu.Unlock()
	if n := len(seen[string(queues.Abandoned)]); n != 1 {
		t.Fatalf("%d abandoned once Stop returned, want 1: %+v", n, seen)
	}
	var slow bool
	for outcome, all := range seen {
		for _, s := range all {
			if s.Queue != work || !s.Handled || s.InsertedAt.IsZero() || s.PickedUp.Before(s.InsertedAt.Add(-time.Second)) {
				t.Errorf("%s: %+v", outcome, s)
			}
			slow = slow || s.Took >= 50*time.Millisecond && outcome == string(queues.Processed)
		}
	}
	if !slow {
		t.Error("no processed message took the slow handler's 50ms")
	}
	if r := seen[string(queues.Retried)][0]; r.DequeueCount != 1 {
		t.Errorf("retried on delivery %d, want 1", r.DequeueCount)
	}
}
