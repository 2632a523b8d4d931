package automations

import (
	"context"
	"errors"
	"fmt"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// Evaluation is what a rule decides, or would decide, for one event — without acting.
type Evaluation struct {
	RuleID      string `json:"ruleId,omitempty"`
	RuleVersion int    `json:"ruleVersion,omitempty"`
	EventKey    string `json:"eventKey"`
	// Outcome is what the rule would decide now: fired (it would act), filter_false,
	// filter_error, deduped, loop_guard, disabled or shadow. The rate limit is not evaluated.
	Outcome   string `json:"outcome"`
	Detail    string `json:"detail,omitempty"`
	DedupeKey string `json:"dedupeKey,omitempty"`
	// Clauses are the filter's top-level && terms, each evaluated: the false ones are why.
	Clauses []Clause `json:"clauses,omitempty"`
	// Recorded is the decision the rule made on the event when it was processed (explain).
	Recorded *tables.Decision `json:"recorded,omitempty"`
}

// Test evaluates a rule (stored or not) on ev, acting on nothing: what it would decide, and
// each clause of its filter. It reads one claim, to tell a key that fired before.
func (s *Service) Test(ctx context.Context, r *Rule, ev *platform.EntityEvent) (*Evaluation, error) {
	cr, err := compileRule(r)
	if err != nil {
		return nil, err
	}
	return s.evaluate(ctx, cr, ev)
}

func (s *Service) evaluate(ctx context.Context, cr *compiled, ev *platform.EntityEvent) (*Evaluation, error) {
	r := cr.rule
	e := &Evaluation{RuleID: r.ID, RuleVersion: r.Version, EventKey: ev.Key()}
	act, err := activation(ev)
	if err != nil {
		e.Outcome, e.Detail = FilterError, err.Error()
		return e, nil
	}
	if cr.filter != nil {
		if e.Clauses, err = explain(cr.filter, act); err != nil {
			return nil, err
		}
	}
	d := &tables.Decision{}
	switch {
	case ev.BusinessUnitID != r.BusinessUnitID || !containsInt(r.EventTypes, ev.EventTypeID):
		e.Outcome, e.Detail = FilterFalse, fmt.Sprintf("the rule is for event types %v in business unit %d", r.EventTypes, r.BusinessUnitID)
		return e, nil
	case r.ProjectID != "" && r.ProjectID != projectOf(act):
		e.Outcome, e.Detail = FilterFalse, fmt.Sprintf("the rule is for project %q, the event's is %q", r.ProjectID, projectOf(act))
		return e, nil
	}
	// decide's own steps, up to the claim: the rate limit is left out (it is this replica's
	// state, and testing must not spend it).
	probe := *cr
	probe.rule = &Rule{}
	*probe.rule = *r
	probe.rule.Shadow, probe.rule.RateLimit = true, nil
	if err := s.decide(ctx, &probe, ev, act, d, false); err != nil {
		return nil, err
	}
	e.Outcome, e.Detail, e.DedupeKey = d.Outcome, d.Detail, d.DedupeKey
	if d.Outcome != Shadow {
		return e, nil
	}
	if r.Shadow {
		return e, nil // a shadow rule would record exactly this
	}
	e.Outcome, e.Detail = Fired, "would "+r.Action.Describe()
	if r.ID == "" {
		return e, nil // not stored: it has no claims
	}
	first, err := s.d.Claims.Get(ctx, r.ID, 1, d.DedupeKey)
	switch {
	case errors.Is(err, platform.ErrNotFound):
	case err != nil:
		return nil, err
	case first.EventKey != ev.Key():
		e.Outcome, e.Detail = Deduped, fmt.Sprintf("first effect %s, by event %s", first.EffectID, first.EventKey)
	default:
		e.Detail = "fired: " + first.EffectID
	}
	return e, nil
}

// Explain re-evaluates rule ruleID (its newest version) on the event eventKey as it was
// processed (kept with its decisions), and says which clause of the filter was false, beside
// the decision recorded then. platform.ErrNotFound: no such rule, or the rule made no decision
// on the event — a rule decides only events of its business unit, so without its decision the
// event may be another unit's, whose payload an explanation would reveal clause by clause.
func (s *Service) Explain(ctx context.Context, ruleID, eventKey string) (*Evaluation, error) {
	r, err := s.Get(ctx, ruleID)
	if err != nil {
		return nil, err
	}
	ev, recorded, err := s.decidedBy(ctx, ruleID, eventKey)
	if err != nil {
		return nil, err
	}
	e, err := s.Test(ctx, r, ev)
	if err != nil {
		return nil, err
	}
	e.Recorded = recorded
	return e, nil
}

// Decisions lists the decisions made on eventKey (none: an empty list).
func (s *Service) Decisions(ctx context.Context, eventKey string) ([]tables.Decision, error) {
	ds, _, err := s.d.Decisions.List(ctx, eventKey)
	return ds, err
}

// decidedBy reads the event eventKey as it was when rules decided on it, and rule ruleID's
// decision on it; platform.ErrNotFound when that rule made none.
func (s *Service) decidedBy(ctx context.Context, ruleID, eventKey string) (*platform.EntityEvent, *tables.Decision, error) {
	ds, stored, err := s.d.Decisions.List(ctx, eventKey)
	if err != nil {
		return nil, nil, err
	}
	var recorded *tables.Decision
	for i := range ds {
		if ds[i].RuleID == ruleID {
			recorded = &ds[i]
		}
	}
	if recorded == nil {
		return nil, nil, fmt.Errorf("%w: rule %s recorded no decision on event %s (a rule decides only events of its unit and types, once it exists)", platform.ErrNotFound, ruleID, eventKey)
	}
	body := stored.Event
	if stored.Blob != "" {
		if body, err = s.d.Blobs.Resolve(ctx, nil, stored.Blob); err != nil {
			return nil, nil, fmt.Errorf("read the decided event: %w", err)
		}
	}
	if len(body) == 0 {
		return nil, nil, fmt.Errorf("%w: no rule decided on event %s (no rule named its type when it was processed, or it was not processed)", platform.ErrNotFound, eventKey)
	}
	ev, err := platform.DecodeEvent(body)
	if err != nil {
		return nil, nil, fmt.Errorf("the decided event: %w", err)
	}
	return ev, recorded, nil
}

// Replay fires rule ruleID once more for the event eventKey, whatever its filter, dedupe key
// and state (shadow, disabled) said — an operator's explicit act, recorded with who did it: a new generation of the event's dedupe key, recorded as its own decision (row
// {ruleId}~g{n}) beside the first. The effect has a key of its own, so it is a new job,
// delivery or run — once, however often the replay itself is retried with the same
// generation in mind. A publish action is not replayed.
func (s *Service) Replay(ctx context.Context, ruleID, eventKey, by string) (*tables.Decision, error) {
	r, err := s.Get(ctx, ruleID)
	if err != nil {
		return nil, err
	}
	ev, _, err := s.decidedBy(ctx, ruleID, eventKey)
	if err != nil {
		return nil, err
	}
	if r.Action.Publish != nil {
		return nil, fmt.Errorf("%w: rule %s publishes events; an event published again has the same key and changes nothing", platform.ErrInvalidInput, ruleID)
	}
	cr, err := compileRule(r)
	if err != nil {
		return nil, err
	}
	key := ev.Key()
	if cr.dedupe != nil {
		act, err := activation(ev)
		if err != nil {
			return nil, err
		}
		if key, err = cr.dedupe.evalString(act); err != nil {
			return nil, fmt.Errorf("%w: dedupeKey: %v", platform.ErrInvalidInput, err)
		}
	}
	gen := 2
	for ; gen < 1000; gen++ {
		_, err := s.d.Claims.Get(ctx, r.ID, gen, key)
		if errors.Is(err, platform.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	d := &tables.Decision{EventKey: eventKey, RuleID: r.ID, RuleVersion: r.Version, DedupeKey: key}
	if err := s.fire(ctx, r, ev, key, gen, d, func() {}); err != nil {
		return nil, err
	}
	d.Detail = fmt.Sprintf("replay (generation %d) by %s: %s", gen, by, d.Detail)
	d.DecidedAt = s.now().UTC()
	row := *d
	row.RuleID = fmt.Sprintf("%s~g%d", r.ID, gen)
	if err := s.record(ctx, ev, []tables.Decision{row}); err != nil {
		return nil, err
	}
	return d, nil
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
