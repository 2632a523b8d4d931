package platform

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"
)

// Lifecycle events are supplementary events the platform publishes about its own effects, so
// that an automation rule can react to them ("a run failed → notify the owner"). They are best
// effort (a crash between an effect's outcome and its event loses the event: it is never the
// primary path of anything), marked Supplementary, published only while some rule names their
// type, and keyed from the effect's key, so that the same outcome of the same effect is the
// same event (its consumers find their effects done). Their entity is the effect:
// EntityTypeEffect, with a GUID derived from the effect's key.
const (
	EntityTypeEffect = 1_000_000

	EventNotificationSent    = 1_000_001
	EventNotificationFailed  = 1_000_002
	EventNotificationSkipped = 1_000_003
	EventWebhookDelivered    = 1_000_011
	EventWebhookFailed       = 1_000_012
	EventRunSucceeded        = 1_000_021
	EventRunFailed           = 1_000_022
)

// LifecycleEventTypes names every lifecycle event type, for documentation and rules.
var LifecycleEventTypes = map[int]string{
	EventNotificationSent: "notification.sent", EventNotificationFailed: "notification.failed",
	EventNotificationSkipped: "notification.skipped", EventWebhookDelivered: "webhook.delivered",
	EventWebhookFailed: "webhook.failed", EventRunSucceeded: "run.succeeded", EventRunFailed: "run.failed",
}

// IsLifecycleEvent tells a lifecycle event type.
func IsLifecycleEvent(eventTypeID int) bool {
	_, ok := LifecycleEventTypes[eventTypeID]
	return ok
}

// Effect is what a lifecycle event says about one effect.
type Effect struct {
	Key            string    `json:"effectKey"`
	Kind           string    `json:"kind"` // notification, webhook or run
	State          string    `json:"state"`
	BusinessUnitID int64     `json:"-"`
	CreatedAt      time.Time `json:"createdAt"` // the effect's: with its key, the event's identity
	Channel        string    `json:"channel,omitempty"`
	Attempts       int       `json:"attempts,omitempty"`
	Error          string    `json:"error,omitempty"`
	ProviderID     string    `json:"providerId,omitempty"`
	// Set when a rule's action made the effect: the event carries them on, so that the loop
	// guard sees the chain. ChainDepth is the effect's: how many rule actions lie between it
	// and a service's event (0 for an effect of a service's event itself).
	CausedByRule string `json:"causedByRule,omitempty"`
	ChainDepth   int    `json:"-"`
	Correlation  string `json:"-"`
}

// LifecycleEvent is the event of type eventTypeID about e.
func LifecycleEvent(eventTypeID int, e Effect) (*EntityEvent, error) {
	if !IsLifecycleEvent(eventTypeID) {
		return nil, fmt.Errorf("%d is not a lifecycle event type", eventTypeID)
	}
	payload, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(e.Key))
	sum[6], sum[8] = sum[6]&0x0f|0x50, sum[8]&0x3f|0x80 // a name-based (version 5 style) UUID
	guid := fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
	return &EntityEvent{
		EventTypeID: eventTypeID, EntityTypeID: EntityTypeEffect, ActionTypeID: ActionUpdate, EntityGUID: guid,
		BusinessUnitID: e.BusinessUnitID, CreatedOn: e.CreatedAt.UTC().Truncate(100 * time.Nanosecond), Payload: payload,
		Source: "platform/lifecycle", CausedByRule: e.CausedByRule, ChainDepth: min(e.ChainDepth, MaxChainDepth),
		CorrelationID: e.Correlation, Supplementary: true,
	}, nil
}
