package runs

import (
	"context"
	"errors"
	"sync"

	"github.com/platform/platform"
)

// Concurrency on one replica: Options.Concurrency is a channel of slots per agent,
// Options.ConcurrencyPerKey a count per concurrency key. A run that finds no free slot is
// sent back for slotWait; nothing is shared between replicas.

// takeKey holds a slot of run's concurrency key; free gives it back. ok is false when every
// slot of the key is taken on this replica (or, with err, when the run's input cannot be read
// to compute its key).
func (s *Service) takeKey(ctx context.Context, a *agent, run *Run) (free func(), ok bool, err error) {
	view := *run
	input, err := s.blobs.Resolve(ctx, run.Input, run.InputBlob)
	switch {
	case errors.Is(err, platform.ErrNotFound):
		input = nil // its runner fails the run ("input blob … is missing")
	case err != nil:
		return nil, false, err
	}
	view.Input = input
	key := a.opts.ConcurrencyKey(&view)
	if !a.keys.take(key) {
		return nil, false, nil
	}
	return func() { a.keys.give(key) }, true, nil
}

// keySlots counts the runs of an agent executing on this replica, per concurrency key.
type keySlots struct {
	mu   sync.Mutex
	max  int
	held map[string]int
}

// take holds a slot of key, if one is free.
func (k *keySlots) take(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.held[key] >= k.max {
		return false
	}
	k.held[key]++
	return true
}

// give frees a slot of key.
func (k *keySlots) give(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.held[key]--; k.held[key] <= 0 {
		delete(k.held, key)
	}
}
