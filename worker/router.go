package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/queues"
)

// PostProcessor is one concern that turns an event into its effects. Each keeps its own
// registry of mappings, and each effect it writes is keyed from the event, so that running it
// again for the same event changes nothing.
type PostProcessor interface {
	// Name is stable and unique: a retried message remembers, by name, which concerns are done.
	Name() string
	// Accepts reports whether this concern has anything to do for ev (its registry knows ev's
	// type). An event that no concern accepts is an unknown type: poisoned, never retried.
	Accepts(ev *platform.EntityEvent) bool
	// Process applies the concern's effects. A platform.Permanent error means no retry helps.
	// It runs at the same time as the other concerns' Process on the same event: it must
	// treat ev as read-only (copy what it changes).
	Process(ctx context.Context, ev *platform.EntityEvent) error
}

// Checker is what a PostProcessor implements when it may refuse an event as a whole (a
// related-timeline list over its cap, a snapshot over the payload limit). The router asks
// every concern that would run before it runs any: the concerns run at once, so a refusal
// found inside one Process would come after the others had mailed and delivered, and the
// event would be poisoned with its audit row missing. Check must not write anything.
type Checker interface {
	// Check returns a platform.Permanent error naming what is wrong with ev, or nil.
	Check(ev *platform.EntityEvent) error
}

// Router decodes entity events and hands each to every post-processor that accepts it. One
// concern failing never prevents another's effect, and a retry runs only the concerns that
// have not succeeded yet.
type Router struct {
	blobs      *blobs.Client
	processors []PostProcessor
	log        logrus.FieldLogger
	// ran, when set, is told of each concern's run on a message: runDone, runFailed, or
	// runSkipped (done on an earlier delivery). The host records metrics with it.
	ran func(m *queues.Message, concern, outcome string)
}

// NewRouter returns a router over processors, which must have unique names. b resolves
// claim-checked payloads.
func NewRouter(b *blobs.Client, log logrus.FieldLogger, processors ...PostProcessor) (*Router, error) {
	seen := map[string]bool{}
	for _, p := range processors {
		if seen[p.Name()] {
			return nil, fmt.Errorf("router: two post-processors named %q", p.Name())
		}
		seen[p.Name()] = true
	}
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Router{blobs: b, processors: processors, log: log}, nil
}

// Handle is the queues.Handler of entity-events.
func (r *Router) Handle(ctx context.Context, m *queues.Message) error {
	ev, err := platform.DecodeEvent(m.Body)
	if err != nil {
		return err
	}
	if err := r.resolvePayload(ctx, ev); err != nil {
		return err
	}
	traceEvent(ctx, ev)
	log := queues.TraceLog(ctx, r.log).WithFields(logrus.Fields{"eventKey": ev.Key(), "eventTypeId": ev.EventTypeID})
	var accepted int
	for _, p := range r.processors {
		if o, ok := p.(interface{ Observer() bool }); ok && o.Observer() {
			continue // an observer sees every event: it does not make a type known
		}
		if p.Accepts(ev) {
			accepted++
		}
	}
	if accepted == 0 && ev.Supplementary && platform.IsLifecycleEvent(ev.EventTypeID) {
		// A lifecycle event the platform published, best effort, for rules that may want it:
		// none does now (the rule was disabled meanwhile). Not an unknown type.
		log.Debug("supplementary event wanted by no concern: dropped")
		return nil
	}
	if accepted == 0 {
		return platform.Permanent(fmt.Errorf("unknown eventTypeId %d: no post-processor has a mapping for it", ev.EventTypeID))
	}
	// The concerns are independent: they run at once, so an event takes as long as its
	// slowest concern, not the sum of them (the handler's slot is held that much less).
	var todo []PostProcessor
	for _, p := range r.processors {
		switch {
		case !p.Accepts(ev):
		case m.Done(p.Name()):
			r.tell(m, p.Name(), runSkipped)
		default:
			todo = append(todo, p)
		}
	}
	// Every concern's refusal comes before any concern's effect: an event one concern
	// refuses is poisoned with nothing done.
	var refusals []error
	for _, p := range todo {
		if c, ok := p.(Checker); ok {
			if err := c.Check(ev); err != nil {
				refusals = append(refusals, fmt.Errorf("%s: %w", p.Name(), err))
			}
		}
	}
	if len(refusals) > 0 {
		return platform.Permanent(fmt.Errorf("refused before any concern ran: %w", errors.Join(refusals...)))
	}
	results := make([]error, len(todo))
	var wg sync.WaitGroup
	for i, p := range todo[min(1, len(todo)):] {
		wg.Add(1)
		go func() { defer wg.Done(); results[i+1] = r.process(ctx, p, ev) }()
	}
	if len(todo) > 0 {
		results[0] = r.process(ctx, todo[0], ev)
	}
	wg.Wait()
	var errs []error
	allPermanent := true
	for i, p := range todo {
		if err := results[i]; err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name(), err))
			allPermanent = allPermanent && platform.IsPermanent(err)
			r.tell(m, p.Name(), runFailed)
			continue
		}
		m.MarkDone(p.Name())
		r.tell(m, p.Name(), runDone)
	}
	if len(errs) == 0 {
		log.Debug("event processed")
		return nil
	}
	err = errors.Join(errs...)
	if allPermanent {
		return platform.Permanent(err)
	}
	return err
}

// Outcomes of a concern's run on a message, as Router.ran is told.
const (
	runDone    = "done"
	runFailed  = "failed"
	runSkipped = "skipped" // done on an earlier delivery of the message
)

func (r *Router) tell(m *queues.Message, concern, outcome string) {
	if r.ran != nil {
		r.ran(m, concern, outcome)
	}
}

// resolvePayload enforces the payload limit and fetches a claim-checked payload: bounded, its
// hash checked against its name (the decoder has checked the name is the event's business
// unit's). A payloadBlob that is not there can never appear later (the publisher writes the
// blob before the message): that is permanent, as is a blob over the limit or not matching
// its hash. The verified name stays in PayloadBlob beside the content.
func (r *Router) resolvePayload(ctx context.Context, ev *platform.EntityEvent) error {
	if err := r.blobs.CheckPayloadSize(len(ev.Payload)); err != nil {
		return platform.Permanent(&platform.FieldError{Field: "payload", Problem: err.Error()})
	}
	if ev.PayloadBlob == "" {
		return nil
	}
	b, err := r.blobs.EventPayload(ctx, ev.BusinessUnitID, ev.PayloadBlob)
	switch {
	case errors.Is(err, platform.ErrNotFound):
		return platform.Permanent(&platform.FieldError{Field: "payloadBlob", Problem: fmt.Sprintf("blob %q not found in %s", ev.PayloadBlob, platform.ContainerEventPayloads)})
	case errors.Is(err, platform.ErrInvalidInput):
		return platform.Permanent(&platform.FieldError{Field: "payloadBlob", Problem: err.Error()})
	case err != nil:
		return fmt.Errorf("resolve payloadBlob: %w", err)
	}
	payload, err := platform.CheckPayload(b)
	if err != nil {
		return platform.Permanent(&platform.FieldError{Field: "payloadBlob", Problem: "blob " + ev.PayloadBlob + ": " + err.Error()})
	}
	ev.Payload = payload
	return nil
}
