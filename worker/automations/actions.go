package automations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/platform/platform"
)

// idempotencyKey is the key of a rule's effect in the action's own store: the same token
// gives the same job, delivery, run or event.
func idempotencyKey(token string) string { return "automation:" + token }

// effectID is the id the effect of token will have: known before acting, it is written in the
// claim.
func (s *Service) effectID(r *Rule, ev *platform.EntityEvent, token string) (string, error) {
	switch a := r.Action; {
	case a.Notify != nil:
		return s.d.NotifyKey(a.Notify, r.BusinessUnitID, idempotencyKey(token)), nil
	case a.Webhook != nil:
		return platform.DeliveryKey(a.Webhook.EndpointID, idempotencyKey(token)), nil
	case a.Run != nil:
		return s.d.RunID(a.Run.Agent, idempotencyKey(token)), nil
	case a.Publish != nil:
		return published(r, ev).Key(), nil
	}
	return "", fmt.Errorf("%w: rule %s has no action", platform.ErrInvalidInput, r.ID)
}

// act performs r's action for ev, under token.
func (s *Service) act(ctx context.Context, r *Rule, ev *platform.EntityEvent, token string, generation int) error {
	o := Origin{RuleID: r.ID, RuleVersion: r.Version, EventKey: ev.Key(), CorrelationID: correlation(ev), ChainDepth: ev.ChainDepth + 1}
	switch a := r.Action; {
	case a.Notify != nil:
		_, err := s.d.Notify(ctx, a.Notify, r.BusinessUnitID, ev.Payload, idempotencyKey(token), o)
		return err
	case a.Webhook != nil:
		return s.d.Deliver(ctx, a.Webhook.EndpointID, ev, platform.DeliveryKey(a.Webhook.EndpointID, idempotencyKey(token)), o)
	case a.Run != nil:
		canonical := *ev
		canonical.PayloadBlob = ""
		input, err := json.Marshal(&canonical)
		if err != nil {
			return err
		}
		_, err = s.d.StartRun(ctx, a.Run.Agent, idempotencyKey(token), r.BusinessUnitID, input, o)
		return err
	case a.Publish != nil:
		if generation > 1 {
			return fmt.Errorf("%w: a publish action is not replayed: the event it published has the same key, and its consumers would find their effects done", platform.ErrInvalidInput)
		}
		return s.d.Publish(ctx, published(r, ev))
	}
	return errors.New("no action")
}

// published is the event a publish action makes of ev: the same entity and instant (so a
// redelivery publishes the same key), the action's types, the rule's id and one more link in
// the chain.
func published(r *Rule, ev *platform.EntityEvent) *platform.EntityEvent {
	a := r.Action.Publish
	out := &platform.EntityEvent{
		EventTypeID: a.EventTypeID, EntityTypeID: ev.EntityTypeID, ActionTypeID: ev.ActionTypeID,
		EntityGUID: ev.EntityGUID, EntityID: ev.EntityID, BusinessUnitID: ev.BusinessUnitID, CreatedOn: ev.CreatedOn,
		Payload: ev.Payload, PayloadBlob: ev.PayloadBlob, TenantID: ev.TenantID, ActorID: ev.ActorID,
		CorrelationID: correlation(ev), Source: "automation/" + r.ID, CausedByRule: r.ID, ChainDepth: ev.ChainDepth + 1,
	}
	if ev.PayloadBlob != "" {
		out.Payload = nil // the claim-checked payload travels by its (same unit's) blob name
	}
	if a.EntityTypeID > 0 {
		out.EntityTypeID = a.EntityTypeID
	}
	if a.ActionTypeID > 0 {
		out.ActionTypeID = a.ActionTypeID
	}
	return out
}

// correlation carries the event's correlation id along the chain; an event without one
// starts a chain named by its key.
func correlation(ev *platform.EntityEvent) string {
	if ev.CorrelationID != "" {
		return ev.CorrelationID
	}
	return ev.Key()
}
