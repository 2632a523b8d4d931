package automations

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/platform/platform"
)

// Rule is one version of an automation rule: when an event of one of EventTypes in
// BusinessUnitID (and ProjectID, when set) passes Filter, it does Action once per DedupeKey.
type Rule struct {
	ID             string `json:"id"`
	Version        int    `json:"version"`
	Name           string `json:"name,omitempty"`
	BusinessUnitID int64  `json:"businessUnitId"`
	// ProjectID, when set, limits the rule to events whose payload's projectId is it (the
	// event's "project").
	ProjectID string `json:"projectId,omitempty"`
	Enabled   bool   `json:"enabled"`
	// Shadow: the rule evaluates and records what it would do, and does nothing.
	Shadow     bool  `json:"shadow"`
	EventTypes []int `json:"eventTypes"`
	// Filter is a CEL expression over `event` that must be true for the rule to act; empty is
	// true. A field that is missing makes the outcome filter_error, never a silent false.
	Filter string `json:"filter,omitempty"`
	// DedupeKey is a CEL expression giving a string: the rule acts once per value, forever
	// (per generation). Empty: the event's occurrence key (event.key).
	DedupeKey string     `json:"dedupeKey,omitempty"`
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
	Action    Action     `json:"action"`
	// Note says why this version exists: added, enabled, disabled by hand, disabled
	// automatically (and why).
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy,omitempty"`
}

// RateLimit allows Count firings per Per (per value of Key, a CEL string expression, when
// set). Over it, an event is skipped and its decision says rate_limited. The count is kept by
// each replica: N replicas allow up to N times as many.
type RateLimit struct {
	Count int      `json:"count"`
	Per   Duration `json:"per"`
	Key   string   `json:"key,omitempty"`
}

// Action is what a rule does: exactly one of its fields is set.
type Action struct {
	Notify  *NotifyAction  `json:"notify,omitempty"`
	Webhook *WebhookAction `json:"webhook,omitempty"`
	Run     *RunAction     `json:"run,omitempty"`
	Publish *PublishAction `json:"publish,omitempty"`
}

// NotifyAction creates a direct notification job of a registered direct type, with the
// event's payload as its data; its recipients are the type's subscribers unless given.
type NotifyAction struct {
	NotificationEventTypeID int                  `json:"notificationEventTypeId"`
	Recipients              []platform.Recipient `json:"recipients,omitempty"`
}

// WebhookAction delivers the event to one webhook endpoint of the rule's business unit.
type WebhookAction struct {
	EndpointID string `json:"endpointId"`
}

// RunAction starts a run of a registered agent with the event as its input.
type RunAction struct {
	Agent string `json:"agent"`
}

// PublishAction publishes a new entity event about the same entity, at the same instant, with
// the same payload: of EventTypeID, and EntityTypeID / ActionTypeID when set (else the
// event's). It carries the rule's id and the chain depth: the loop guard reads them.
type PublishAction struct {
	EventTypeID  int `json:"eventTypeId"`
	EntityTypeID int `json:"entityTypeId,omitempty"`
	ActionTypeID int `json:"actionTypeId,omitempty"`
}

// Kind names the action: notify, webhook, run or publish ("" when none is set).
func (a Action) Kind() string {
	switch {
	case a.Notify != nil:
		return "notify"
	case a.Webhook != nil:
		return "webhook"
	case a.Run != nil:
		return "run"
	case a.Publish != nil:
		return "publish"
	}
	return ""
}

// Describe says what the action does, in a decision's words.
func (a Action) Describe() string {
	switch {
	case a.Notify != nil:
		return fmt.Sprintf("notify type %d", a.Notify.NotificationEventTypeID)
	case a.Webhook != nil:
		return "webhook to endpoint " + a.Webhook.EndpointID
	case a.Run != nil:
		return "run agent " + a.Run.Agent
	case a.Publish != nil:
		return fmt.Sprintf("publish event type %d", a.Publish.EventTypeID)
	}
	return "nothing"
}

// Duration is a time.Duration written as Go writes one ("90s", "1m", "1h").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf(`want a duration such as "1m"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf(`want a duration such as "1m": %v`, err)
	}
	*d = Duration(v)
	return nil
}

// Limits on what a rule may hold.
const (
	MaxExpressionLen = 4096
	MaxEventTypes    = 50
	MaxNameLen       = 200
	maxRuleBytes     = 64 << 10
)

// definition is what AutomationRule.Definition holds: the rule minus the columns.
type definition struct {
	Name       string     `json:"name,omitempty"`
	EventTypes []int      `json:"eventTypes"`
	Filter     string     `json:"filter,omitempty"`
	DedupeKey  string     `json:"dedupeKey,omitempty"`
	RateLimit  *RateLimit `json:"rateLimit,omitempty"`
	Action     Action     `json:"action"`
}

// checkShape checks what needs no compiler and no lookup: ids, sizes, the action's shape.
func (r *Rule) checkShape() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", platform.ErrInvalidInput, field, fmt.Sprintf(format, a...))
	}
	switch {
	case r.BusinessUnitID <= 0:
		return bad("businessUnitId", "want > 0")
	case len(r.Name) > MaxNameLen:
		return bad("name", "at most %d characters", MaxNameLen)
	case len(r.ProjectID) > 200 || strings.ContainsAny(r.ProjectID, "\x00\n\r"):
		return bad("projectId", "at most 200 characters, no control characters")
	case len(r.EventTypes) == 0:
		return bad("eventTypes", "want at least one")
	case len(r.EventTypes) > MaxEventTypes:
		return bad("eventTypes", "at most %d", MaxEventTypes)
	case len(r.Filter) > MaxExpressionLen:
		return bad("filter", "%d characters, at most %d", len(r.Filter), MaxExpressionLen)
	case len(r.DedupeKey) > MaxExpressionLen:
		return bad("dedupeKey", "%d characters, at most %d", len(r.DedupeKey), MaxExpressionLen)
	}
	for _, t := range r.EventTypes {
		if t <= 0 {
			return bad("eventTypes", "%d is not an event type", t)
		}
	}
	if rl := r.RateLimit; rl != nil {
		switch {
		case rl.Count <= 0:
			return bad("rateLimit.count", "want > 0")
		case time.Duration(rl.Per) < time.Second || time.Duration(rl.Per) > 24*time.Hour:
			return bad("rateLimit.per", "want 1s-24h")
		case len(rl.Key) > MaxExpressionLen:
			return bad("rateLimit.key", "at most %d characters", MaxExpressionLen)
		}
	}
	n := 0
	for _, set := range []bool{r.Action.Notify != nil, r.Action.Webhook != nil, r.Action.Run != nil, r.Action.Publish != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return bad("action", "want exactly one of notify, webhook, run, publish; got %d", n)
	}
	switch a := r.Action; {
	case a.Notify != nil && a.Notify.NotificationEventTypeID <= 0:
		return bad("action.notify.notificationEventTypeId", "want > 0")
	case a.Notify != nil && len(a.Notify.Recipients) > 100:
		return bad("action.notify.recipients", "at most 100")
	case a.Webhook != nil && a.Webhook.EndpointID == "":
		return bad("action.webhook.endpointId", "required")
	case a.Run != nil && a.Run.Agent == "":
		return bad("action.run.agent", "required")
	case a.Publish != nil && a.Publish.EventTypeID <= 0:
		return bad("action.publish.eventTypeId", "want > 0")
	case a.Publish != nil && (a.Publish.EntityTypeID < 0 || a.Publish.ActionTypeID < 0):
		return bad("action.publish", "entityTypeId and actionTypeId: want > 0 when set")
	}
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }
