// Package lifecycle gives every long-running piece of the process one lifecycle: a
// non-blocking Start, a graceful Stop that is safe twice and before Start, and a Group that
// starts pieces in dependency order and stops them in reverse. A Stop whose deadline passes
// does not hang: it cancels what is left, joins it, and says what it abandoned.
//
// It is the one place that starts goroutines for loops; elsewhere only per-message handlers do.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Component is one long-running piece: a consumer, a loop, a writer, a server.
type Component interface {
	// Start starts the piece and returns without blocking; ctx bounds the start, not the run.
	Start(ctx context.Context) error
	// Stop ends it: gracefully until ctx ends, then at once. It returns an error wrapping
	// ErrAbandoned when the deadline cut work short, naming what. Stop before Start, and a
	// second Stop, return nil.
	Stop(ctx context.Context) error
}

// ErrAbandoned: a stop's deadline passed before work in progress finished; the work was
// cancelled. (Queue messages then reappear after their visibility timeout: that is the retry.)
var ErrAbandoned = errors.New("abandoned at the stop deadline")

// CancelGrace is how long a stop waits, after its deadline, for work it has just cancelled to
// return. Work that honours its context returns well within it.
const CancelGrace = 2 * time.Second

// Jitter spreads d by ±20 %, so that loops and retries that began together do not stay
// together.
func Jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// Done returns a channel closed when wg's count reaches zero.
func Done(wg *sync.WaitGroup) <-chan struct{} {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

// state is where a component or group is in its one life.
type state int

const (
	idle state = iota
	running
	stopped
)

// errRunsOnce: Start after Stop, or Start twice.
func errRunsOnce(what string, s state) error {
	if s == running {
		return fmt.Errorf("%s: already started", what)
	}
	return fmt.Errorf("%s: stopped; it runs once (make a new one)", what)
}

// Task runs one function in its own goroutine from Start until Stop cancels its context, and
// joins it. The function must return soon after its context ends.
type Task struct {
	name string
	run  func(ctx context.Context)

	mu     sync.Mutex
	state  state
	cancel context.CancelFunc
	done   chan struct{}
}

// Go returns a Task named name that runs run.
func Go(name string, run func(ctx context.Context)) *Task {
	return &Task{name: name, run: run}
}

// Every returns a Task that runs f at once and then every d (each wait spread by Jitter) until
// stopped. f gets the task's context, which ends at Stop.
func Every(name string, d time.Duration, f func(ctx context.Context)) *Task {
	return Go(name, func(ctx context.Context) {
		for {
			f(ctx)
			select {
			case <-ctx.Done():
				return
			case <-time.After(Jitter(d)):
			}
		}
	})
}

// Start implements Component.
func (t *Task) Start(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != idle {
		return errRunsOnce(t.name, t.state)
	}
	// The task outlives the start: its context is its own, ended by Stop.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t.state, t.cancel, t.done = running, cancel, make(chan struct{})
	go func() {
		defer close(t.done)
		t.run(runCtx)
	}()
	return nil
}

// Cancel ends the task's context without waiting (Stop still joins it); a no-op before Start.
func (t *Task) Cancel() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cancel != nil {
		t.cancel()
	}
}

// Done is closed when the task's function has returned; nil before Start.
func (t *Task) Done() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done
}

// Stop implements Component: it cancels the task's context and waits for it to return.
func (t *Task) Stop(ctx context.Context) error {
	t.mu.Lock()
	s := t.state
	t.state = stopped
	t.mu.Unlock()
	if s != running {
		return nil
	}
	// A loop has nothing in flight worth waiting for: it is cancelled at once, and only one
	// that ignores its context past the grace is reported.
	t.cancel()
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
	}
	select {
	case <-t.done:
		return nil
	case <-time.After(CancelGrace):
		return fmt.Errorf("%s: still running %s after it was cancelled: %w", t.name, CancelGrace, ErrAbandoned)
	}
}

// Funcs makes a Component of a start and a stop function (either may be nil); Stop runs only
// after a successful Start, and once.
func Funcs(name string, start, stop func(ctx context.Context) error) Component {
	return &funcs{name: name, start: start, stop: stop}
}

type funcs struct {
	name        string
	start, stop func(ctx context.Context) error

	mu    sync.Mutex
	state state
}

func (f *funcs) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state != idle {
		return errRunsOnce(f.name, f.state)
	}
	if f.start != nil {
		if err := f.start(ctx); err != nil {
			f.state = stopped
			return err
		}
	}
	f.state = running
	return nil
}

func (f *funcs) Stop(ctx context.Context) error {
	f.mu.Lock()
	s := f.state
	f.state = stopped
	f.mu.Unlock()
	if s != running || f.stop == nil {
		return nil
	}
	return f.stop(ctx)
}
