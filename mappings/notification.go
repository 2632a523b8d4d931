package mappings

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/platform/platform"
)

// NotificationPath is how the jobs of a notification type come to be. A type is on exactly one
// path (docs/contracts.md, "The promise they serve", the dual-path guardrail): a type derived from
// events and also created directly would be sent twice for one occurrence.
type NotificationPath int

const (
	// FromEvents: derived from events only, by the hint an event carries
	// (notificationEventTypeId) or by a dedicated mapping; keyed from the event, exactly once.
	FromEvents NotificationPath = iota + 1
	// Direct: created by callers only (platform notify, POST /v1/notification-jobs); random
	// keys unless the caller sends an Idempotency-Key, so at-least-once by design.
	Direct
)

func (p NotificationPath) String() string {
	switch p {
	case FromEvents:
		return "derived from events"
	case Direct:
		return "direct"
	}
	return fmt.Sprintf("path %d", int(p))
}

// NotificationType is one notification, registered once: its id and name, the path its jobs
// come by, the dedicated mappings that derive it (FromEvents only), and how a job of it
// becomes messages.
type NotificationType struct {
	ID   int // persisted in keys and rows: never renumber
	Name string
	Path NotificationPath
	// Mappings derive the type from events of an event type (the key) that carry no hint: each
	// decides from the event itself (e.g. a settings change that users are told about).
	// FromEvents only. Without mappings, only events carrying the type's id as their hint
	// derive it.
	Mappings map[int]NotificationMapping
	// Render says how a job becomes messages (the generator's handler). Required.
	Render *Renderer
}

// NotificationMapping is a dedicated mapping: it decides whether an event of its type means
// its notification, and with what data (what the templates render).
type NotificationMapping interface {
	Match(ev *platform.EntityEvent) (eventData json.RawMessage, ok bool, err error)
}

// Renderer says how a job of one notification type becomes messages.
type Renderer struct {
	// Template is the default template name (blob notification-templates/{name}.json); a
	// NotificationOption's TemplateName overrides it. Required.
	Template string
	// Default is the built-in template used when no blob of that name exists; nil: none.
	Default *Template
	// Recipients derives recipients from the job's data when the job names none.
	Recipients func(data map[string]any) []platform.Recipient
	// Subscribers: when the job names none, the recipients are the business unit's
	// NotificationSubscriber rows for the type.
	Subscribers bool
}

// Template is a notification's subject, text and HTML bodies (Go templates; the HTML one is
// html/template, so data is escaped).
type Template struct {
	Subject string `json:"subject"`
	Text    string `json:"text"`
	HTML    string `json:"html,omitempty"`
}

// JobRequest is a notification an event asks for.
type JobRequest struct {
	NotificationEventTypeID int
	EventData               json.RawMessage // what the templates render; the event's payload by default
}

// NotificationRegistry holds the notification types. It is append-only: a type is registered
// once, and its registration is checked whole when it is made.
type NotificationRegistry struct {
	mu        sync.RWMutex
	types     map[int]*NotificationType
	dedicated map[int][]int // event type → the types with a mapping for it, in registration order
}

// NewNotificationRegistry registers types in order and returns the first refusal, which names
// the type.
func NewNotificationRegistry(types ...NotificationType) (*NotificationRegistry, error) {
	r := &NotificationRegistry{}
	for _, t := range types {
		if err := r.Register(t); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds t. It refuses, naming the type: an id or name missing, no path, no renderer
// (no template name), an id registered before (on the other path: the dual-path guardrail),
// mappings on a direct type (that is both paths too).
func (r *NotificationRegistry) Register(t NotificationType) error {
	name := fmt.Sprintf("notification type %d (%s)", t.ID, t.Name)
	switch {
	case t.ID <= 0:
		return fmt.Errorf("%s: want an id > 0", name)
	case strings.TrimSpace(t.Name) == "":
		return fmt.Errorf("notification type %d: want a name", t.ID)
	case t.Path != FromEvents && t.Path != Direct:
		return fmt.Errorf("%s: want a path, mappings.FromEvents or mappings.Direct", name)
	case t.Render == nil || t.Render.Template == "":
		return fmt.Errorf("%s: no renderer: set Render with a template name (and a built-in Default)", name)
	case t.Path == Direct && len(t.Mappings) > 0:
		return fmt.Errorf("%s is direct but has event mappings: a type is either direct or derived from events (dual-path guardrail)", name)
	}
	for et, m := range t.Mappings {
		if et <= 0 || m == nil {
			return fmt.Errorf("%s: mapping for event type %d: want an event type > 0 and a mapping", name, et)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, dup := r.types[t.ID]; dup {
		if old.Path != t.Path {
			return fmt.Errorf("%s is registered both as %s and as %s: a type is on one path only (dual-path guardrail)", name, old.Path, t.Path)
		}
		return fmt.Errorf("%s is registered twice (first as %q)", name, old.Name)
	}
	if r.types == nil {
		r.types, r.dedicated = map[int]*NotificationType{}, map[int][]int{}
	}
	r.types[t.ID] = &t
	ets := make([]int, 0, len(t.Mappings))
	for et := range t.Mappings {
		ets = append(ets, et)
	}
	slices.Sort(ets)
	for _, et := range ets {
		r.dedicated[et] = append(r.dedicated[et], t.ID)
	}
	return nil
}

// MustRegister is Register that panics: for start-up code registering fixed types.
func (r *NotificationRegistry) MustRegister(t NotificationType) {
	if err := r.Register(t); err != nil {
		panic(err)
	}
}

// Lookup returns type id.
func (r *NotificationRegistry) Lookup(id int) (NotificationType, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.types[id]
	if !ok {
		return NotificationType{}, false
	}
	return *t, true
}

// IDs lists the ids of the types on path p, ascending.
func (r *NotificationRegistry) IDs(p NotificationPath) []int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var ids []int
	for id, t := range r.types {
		if t.Path == p {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Types lists the registered types, by id.
func (r *NotificationRegistry) Types() []NotificationType {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]NotificationType, 0, len(r.types))
	for _, t := range r.types {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b NotificationType) int { return a.ID - b.ID })
	return out
}

// Kind is which of the dual-path guardrail's sets a type is in.
type Kind string

const (
	// KindDirect: created directly only (Path Direct); an event's hint naming it is refused.
	KindDirect Kind = "direct"
	// KindHint: derived from events by their hint (notificationEventTypeId) only.
	KindHint Kind = "hint"
	// KindMapping: derived from events by dedicated mappings of their event types, and by a
	// hint as well.
	KindMapping Kind = "mapping"
)

// Kind says which of the guardrail's sets t is in.
func (t NotificationType) Kind() Kind {
	switch {
	case t.Path == Direct:
		return KindDirect
	case len(t.Mappings) > 0:
		return KindMapping
	}
	return KindHint
}

// MappingEventTypes are the event types whose dedicated mappings derive t, ascending.
func (t NotificationType) MappingEventTypes() []int {
	var ets []int
	for et := range t.Mappings {
		ets = append(ets, et)
	}
	slices.Sort(ets)
	return ets
}

// Accepts reports whether ev may mean a notification: it carries a hint, or its type has a
// dedicated mapping. Every other event is skipped: no over-fire.
func (r *NotificationRegistry) Accepts(ev *platform.EntityEvent) bool {
	if ev.NotificationEventTypeID != 0 {
		return true
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.dedicated[ev.EventTypeID]) > 0
}

// Derive lists the notifications ev asks for: the one its hint names, and those whose
// dedicated mappings match it. A hint that names no type derived from events is a permanent
// error: the call-site attached a wrong id.
func (r *NotificationRegistry) Derive(ev *platform.EntityEvent) ([]JobRequest, error) {
	var out []JobRequest
	if h := ev.NotificationEventTypeID; h != 0 {
		t, ok := r.Lookup(h)
		switch {
		case !ok:
			return nil, platform.Permanent(&platform.FieldError{Field: "notificationEventTypeId",
				Problem: fmt.Sprintf("unknown notification type %d", h)})
		case t.Path == Direct:
			return nil, platform.Permanent(&platform.FieldError{Field: "notificationEventTypeId",
				Problem: fmt.Sprintf("%d (%s) is created directly, never derived from an event", h, t.Name)})
		}
		out = append(out, JobRequest{NotificationEventTypeID: h, EventData: ev.Payload})
	}
	r.mu.RLock()
	ids := r.dedicated[ev.EventTypeID]
	r.mu.RUnlock()
	for _, id := range ids {
		if slices.ContainsFunc(out, func(o JobRequest) bool { return o.NotificationEventTypeID == id }) {
			continue // the hint asked for it already
		}
		t, _ := r.Lookup(id)
		data, ok, err := t.Mappings[ev.EventTypeID].Match(ev)
		if err != nil {
			return nil, fmt.Errorf("mapping of notification type %d (%s) for event type %d: %w", id, t.Name, ev.EventTypeID, err)
		}
		if ok {
			out = append(out, JobRequest{NotificationEventTypeID: id, EventData: data})
		}
	}
	return out, nil
}

// ChangedFieldsMapping matches an event whose changedFields name one of Notable (compared
// case-insensitively). Its data carries the notable names and the payload.
type ChangedFieldsMapping struct {
	Notable []string
}

// Match implements NotificationMapping.
func (m ChangedFieldsMapping) Match(ev *platform.EntityEvent) (json.RawMessage, bool, error) {
	var notable []string
	for _, f := range ev.ChangedFields {
		if slices.ContainsFunc(m.Notable, func(n string) bool { return strings.EqualFold(n, f) }) {
			notable = append(notable, f)
		}
	}
	if len(notable) == 0 {
		return nil, false, nil
	}
	data, err := json.Marshal(map[string]any{"changedFields": notable, "settings": ev.Payload})
	return data, err == nil, err
}

// EmailField reads the recipient from a field of the job's data, e.g. guardianEmail. It takes
// no display name: a name from event data would let whoever writes the event choose what the
// recipient's mail client shows as the addressee (and the generator drops one anyway).
func EmailField(field string) func(map[string]any) []platform.Recipient {
	return func(data map[string]any) []platform.Recipient {
		addr, _ := data[field].(string)
		if strings.TrimSpace(addr) == "" {
			return nil
		}
		return []platform.Recipient{{Channel: platform.ChannelEmail, Address: addr}}
	}
}
