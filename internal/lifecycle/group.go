package lifecycle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Group runs components with one lifecycle. Stages start in the order they were added, and
// stop in reverse: what is used starts before its users and stops after them. The components
// of one stage start one after the other and stop at the same time, sharing the stop's
// deadline. A Group runs once: Start twice, or after Stop, is an error that starts nothing.
type Group struct {
	// StopTimeout bounds the stop of what a failed Start had started. Default 30s.
	StopTimeout time.Duration

	mu      sync.Mutex
	stages  []stage
	state   state
	started []stage // what Start started, in order; Stop stops these
}

type stage struct {
	name    string
	members []Component
}

// Add appends a stage named name (the name prefixes its errors).
func (g *Group) Add(name string, members ...Component) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stages = append(g.stages, stage{name: name, members: members})
}

// Start starts the stages in order. When one fails, it stops what already started (in
// reverse, within StopTimeout) and returns the failure.
func (g *Group) Start(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != idle {
		return errRunsOnce("group", g.state)
	}
	g.state = running
	for _, st := range g.stages {
		done := stage{name: st.name}
		for _, c := range st.members {
			if err := c.Start(ctx); err != nil {
				g.started = append(g.started, done)
				g.state = stopped
				stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmp.Or(g.StopTimeout, 30*time.Second))
				defer cancel()
				return errors.Join(fmt.Errorf("start %s: %w", st.name, err), g.stopStarted(stopCtx))
			}
			done.members = append(done.members, c)
		}
		g.started = append(g.started, done)
	}
	return nil
}

// Stop stops the started stages in reverse order; safe twice and before Start. Each stage
// gets what is left of ctx; a stage whose members report abandoned work makes Stop return
// their errors joined (errors.Is(err, ErrAbandoned)), and the stages after it still stop.
func (g *Group) Stop(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != running {
		g.state = stopped
		return nil
	}
	g.state = stopped
	return g.stopStarted(ctx)
}

func (g *Group) stopStarted(ctx context.Context) error {
	var errs []error
	for i := len(g.started) - 1; i >= 0; i-- {
		st := g.started[i]
		results := make([]error, len(st.members))
		var wg sync.WaitGroup
		for j, c := range st.members {
			wg.Add(1)
			go func() { defer wg.Done(); results[j] = c.Stop(ctx) }()
		}
		wg.Wait()
		for _, err := range results {
			if err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", st.name, err))
			}
		}
	}
	g.started = nil
	return errors.Join(errs...)
}
