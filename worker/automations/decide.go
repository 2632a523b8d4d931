package automations

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"cel.dev/cel-go/interpreter"

	"github.com/platform/platform"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
)

// Outcomes of a decision.
const (
	Fired        = "fired"
	FilterFalse  = "filter_false"
	FilterError  = "filter_error"
	Deduped      = "deduped"
	RateLimited  = "rate_limited"
	LoopGuard    = "loop_guard"
	Disabled     = "disabled"
	Shadow       = "shadow"
	ActionFailed = "action_failed"
)

// decideAll decides every rule in rules for ev. A transient failure of one rule's claim or
// action does not stop the others: their decisions are returned with the joined error, and
// the retry decides again (each step is idempotent).
func (s *Service) decideAll(ctx context.Context, ev *platform.EntityEvent, rules []*compiled) ([]tables.Decision, error) {
	act, actErr := activation(ev)
	project := ""
	if actErr == nil {
		project = projectOf(act)
	}
	var errs []error
	ds := make([]tables.Decision, 0, len(rules))
	evKey := ev.Key()    // once: it formats the event's time, a fifth of a rule's evaluation
	now := s.now().UTC() // one instant for the event's decisions: stored once, not per rule
	for _, cr := range rules {
		r := cr.rule
		if r.ProjectID != "" && r.ProjectID != project {
			continue // another project's rule: its event type matched, its scope did not
		}
		d := tables.Decision{EventKey: evKey, RuleID: r.ID, RuleVersion: r.Version}
		if actErr != nil {
			d.Outcome, d.Detail = FilterError, actErr.Error()
		} else if err := s.decide(ctx, cr, ev, act, &d, true); err != nil {
			errs = append(errs, fmt.Errorf("rule %s: %w", r.ID, err))
			continue // undecided: the retry decides it
		}
		d.DecidedAt = now
		ds = append(ds, d)
	}
	return ds, errors.Join(errs...)
}

// decide decides one rule for ev into d, and acts when it fires. An error is transient. Not
// live (a test or an explanation), a stop by the loop guard does not count towards disabling
// the rule.
func (s *Service) decide(ctx context.Context, cr *compiled, ev *platform.EntityEvent, act interpreter.Activation, d *tables.Decision, live bool) error {
	r := cr.rule
	switch {
	case !r.Enabled:
		d.Outcome, d.Detail = Disabled, r.Note
		return nil
	case r.ID != "" && ev.CausedByRule == r.ID: // a rule not stored (test --rule) has published nothing
		d.Outcome, d.Detail = LoopGuard, "the event was published by this rule's own action"
		if live {
			s.tripped(ctx, r, "its own events")
		}
		return nil
	case ev.ChainDepth >= s.cfg.MaxChainDepth:
		d.Outcome, d.Detail = LoopGuard, fmt.Sprintf("chain depth %d reaches the cap of %d", ev.ChainDepth, s.cfg.MaxChainDepth)
		if live {
			s.tripped(ctx, r, "the chain-depth cap")
		}
		return nil
	case cr.broken != nil:
		d.Outcome, d.Detail = FilterError, "the rule as stored does not compile: "+cr.broken.Error()
		return nil
	}
	if cr.filter != nil {
		ok, err := cr.filter.evalBool(act)
		if err != nil {
			d.Outcome, d.Detail = FilterError, err.Error()
			return nil
		}
		if !ok {
			d.Outcome = FilterFalse
			return nil
		}
	}
	var key string
	if cr.dedupe == nil {
		key = ev.Key()
	} else {
		var err error
		if key, err = cr.dedupe.evalString(act); err != nil {
			d.Outcome, d.Detail = FilterError, "dedupeKey: "+err.Error()
			return nil
		}
	}
	d.DedupeKey = key
	if r.Shadow {
		d.Outcome, d.Detail = Shadow, "would "+r.Action.Describe()
		return nil
	}
	refund := func() {} // a token spent on a key that fired before goes back
	if rl := r.RateLimit; rl != nil {
		rk := ""
		if cr.rateKey != nil {
			var err error
			if rk, err = cr.rateKey.evalString(act); err != nil {
				d.Outcome, d.Detail = FilterError, "rateLimit.key: "+err.Error()
				return nil
			}
		}
		if !s.guard.allow(r.ID, rk, rl, s.now()) {
			// Over the limit. A key that fired before is deduped, not limited, and a
			// redelivery of the event that fired it is not re-decided as limited: the claim
			// says which (a read only on this rare path).
			first, err := s.d.Claims.Get(ctx, r.ID, 1, key)
			switch {
			case err != nil && !errors.Is(err, platform.ErrNotFound):
				return err
			case first == nil:
				d.Outcome, d.Detail = RateLimited, fmt.Sprintf("over %d per %s", rl.Count, rl.Per)
				s.tripped(ctx, r, "its rate limit")
				return nil
			case first.EventKey != ev.Key():
				d.Outcome, d.Detail = Deduped, dedupedBy(first)
				return nil
			}
		} else {
			refund = func() { s.guard.refund(r.ID, rk) }
		}
	}
	return s.fire(ctx, r, ev, key, 1, d, refund)
}

// fire claims (rule, generation, key) and acts. The claim comes first: an effect without a
// claim could be repeated by another event with the same key; a claim without its effect (a
// crash between) is finished by the redelivery, which finds its own claim.
func (s *Service) fire(ctx context.Context, r *Rule, ev *platform.EntityEvent, key string, generation int, d *tables.Decision, refund func()) error {
	d.Generation = generation
	token := effectToken(r.ID, generation, key)
	effect, err := s.effectID(r, ev, token)
	if err != nil {
		d.Outcome, d.Detail = ActionFailed, err.Error()
		return nil
	}
	claim := &tables.Claim{RuleID: r.ID, Generation: generation, DedupeKey: key, EventKey: ev.Key(), EffectID: effect, ClaimedAt: s.now()}
	first, err := s.d.Claims.Take(ctx, claim)
	switch {
	case errors.Is(err, platform.ErrExists) && first.EventKey != ev.Key():
		d.Outcome, d.Detail = Deduped, dedupedBy(first)
		refund()
		return nil
	case errors.Is(err, platform.ErrExists):
		effect = first.EffectID // this event's own claim, from an earlier delivery: finish its effect
	case err != nil:
		return err
	}
	if err := s.act(ctx, r, ev, token, generation); err != nil {
		if errors.Is(err, platform.ErrInvalidInput) || platform.IsPermanent(err) {
			// The key made no effect: its claim goes, so that a later event with the key can
			// fire once the cause is fixed (an endpoint enabled again), instead of being
			// deduped against nothing.
			if rerr := s.d.Claims.Release(ctx, claim); rerr != nil {
				return rerr // retried: the action fails again, the release is tried again
			}
			d.Outcome, d.Detail = ActionFailed, err.Error()
			queues.TraceLog(ctx, s.log).WithError(err).WithFields(map[string]any{"ruleId": r.ID, "eventKey": ev.Key()}).Error("automation action refused; no retry helps")
			return nil
		}
		return err
	}
	d.Outcome, d.Detail = Fired, effect
	return nil
}

// dedupedBy says which effect and event a deduped decision defers to.
func dedupedBy(first *tables.Claim) string {
	return fmt.Sprintf("first effect %s, by event %s at %s", first.EffectID, first.EventKey, first.ClaimedAt.Format("2006-01-02T15:04:05Z"))
}

// effectToken names the one effect of (rule, generation, dedupe key): any key, of any
// characters and length, gives a short token of safe characters.
func effectToken(ruleID string, generation int, key string) string {
	sum := sha256.Sum256([]byte(key))
	return fmt.Sprintf("%s.g%d.%s", ruleID, generation, hex.EncodeToString(sum[:16]))
}

// tripped counts a stop by the rate limit or the loop guard, and disables a rule that keeps
// tripping.
func (s *Service) tripped(ctx context.Context, r *Rule, what string) {
	if !s.guard.trip(r.ID, s.now()) {
		return
	}
	note := fmt.Sprintf("disabled automatically: stopped by %s %d times within %s", what, s.cfg.DisableAfterTrips, s.cfg.TripWindow)
	if _, err := s.setEnabled(ctx, r.ID, false, note, "automations"); err != nil {
		queues.TraceLog(ctx, s.log).WithError(err).WithField("ruleId", r.ID).Error("automation rule keeps tripping; disabling it failed")
		return
	}
	queues.TraceLog(ctx, s.log).WithFields(map[string]any{"ruleId": r.ID, "reason": note}).Error("automation rule disabled")
}
