package mappings

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/platform/platform"
)

// NotificationTypes is an append-only registry of notification type ids and names. There are
// two, one per path (DESIGN §1 dual-path guardrail): the types created directly by callers and
// the types derived from events. They must never share an id.
type NotificationTypes struct {
	mu    sync.RWMutex
	names map[int]string
}

// Register adds type id. Registering an id twice is an error.
func (r *NotificationTypes) Register(id int, name string) error {
	if id <= 0 {
		return fmt.Errorf("notification type %d: want > 0", id)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.names[id]; dup {
		return fmt.Errorf("notification type %d is already registered", id)
	}
	if r.names == nil {
		r.names = map[int]string{}
	}
	r.names[id] = name
	return nil
}

// Has reports whether id is registered.
func (r *NotificationTypes) Has(id int) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.names[id]
	return ok
}

// Name is id's name, or "" when unknown.
func (r *NotificationTypes) Name(id int) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.names[id]
}

// IDs lists the registered ids, ascending.
func (r *NotificationTypes) IDs() []int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]int, 0, len(r.names))
	for id := range r.names {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// JobRequest is a notification an event asks for.
type JobRequest struct {
	NotificationEventTypeID int
	EventData               json.RawMessage // what the templates render; the event's payload by default
}

// NotificationMapping is a dedicated mapping: it inspects an event of its type and decides
// which notifications it means, if any (e.g. a settings change that users are told about).
type NotificationMapping interface {
	Jobs(ev *platform.EntityEvent) ([]JobRequest, error)
}

// NotificationRegistry holds both paths' types and the dedicated mappings of event types.
type NotificationRegistry struct {
	Direct       NotificationTypes // created by callers, random keys, at-least-once by design
	EventDerived NotificationTypes // derived from events, keyed from the event, exactly once

	mu        sync.RWMutex
	dedicated map[int][]NotificationMapping
}

// RegisterDedicated adds a dedicated mapping for eventTypeID (several may share one type).
func (r *NotificationRegistry) RegisterDedicated(eventTypeID int, m NotificationMapping) error {
	if eventTypeID <= 0 || m == nil {
		return fmt.Errorf("dedicated notification mapping for event type %d: want a type > 0 and a mapping", eventTypeID)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dedicated == nil {
		r.dedicated = map[int][]NotificationMapping{}
	}
	r.dedicated[eventTypeID] = append(r.dedicated[eventTypeID], m)
	return nil
}

// Overlap lists the ids registered on both paths; the guardrail wants it empty.
func (r *NotificationRegistry) Overlap() []int {
	var both []int
	for _, id := range r.Direct.IDs() {
		if r.EventDerived.Has(id) {
			both = append(both, id)
		}
	}
	return both
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

// Derive lists the notifications ev asks for: the one its hint names, and those its dedicated
// mappings decide. A hint that names no event-derived type is a permanent error: the call-site
// attached a wrong id.
func (r *NotificationRegistry) Derive(ev *platform.EntityEvent) ([]JobRequest, error) {
	var out []JobRequest
	if h := ev.NotificationEventTypeID; h != 0 {
		switch {
		case r.EventDerived.Has(h):
			out = append(out, JobRequest{NotificationEventTypeID: h, EventData: ev.Payload})
		case r.Direct.Has(h):
			return nil, platform.Permanent(&platform.FieldError{Field: "notificationEventTypeId",
				Problem: fmt.Sprintf("%d (%s) is created directly, never derived from an event", h, r.Direct.Name(h))})
		default:
			return nil, platform.Permanent(&platform.FieldError{Field: "notificationEventTypeId",
				Problem: fmt.Sprintf("unknown notification type %d", h)})
		}
	}
	r.mu.RLock()
	mappings := r.dedicated[ev.EventTypeID]
	r.mu.RUnlock()
	for _, m := range mappings {
		reqs, err := m.Jobs(ev)
		if err != nil {
			return nil, err
		}
		for _, req := range reqs {
			if !r.EventDerived.Has(req.NotificationEventTypeID) {
				return nil, fmt.Errorf("dedicated mapping of event type %d asks for %d, which is not an event-derived type", ev.EventTypeID, req.NotificationEventTypeID)
			}
			if !slices.ContainsFunc(out, func(o JobRequest) bool { return o.NotificationEventTypeID == req.NotificationEventTypeID }) {
				out = append(out, req)
			}
		}
	}
	return out, nil
}

// ChangedFieldsMapping derives notification type NotificationEventTypeID when an event's
// changedFields name one of Notable (compared case-insensitively). EventData carries the
// notable names and the payload.
type ChangedFieldsMapping struct {
	NotificationEventTypeID int
	Notable                 []string
}

// Jobs implements NotificationMapping.
func (m ChangedFieldsMapping) Jobs(ev *platform.EntityEvent) ([]JobRequest, error) {
	var notable []string
	for _, f := range ev.ChangedFields {
		if slices.ContainsFunc(m.Notable, func(n string) bool { return strings.EqualFold(n, f) }) {
			notable = append(notable, f)
		}
	}
	if len(notable) == 0 {
		return nil, nil
	}
	data, err := json.Marshal(map[string]any{"changedFields": notable, "settings": ev.Payload})
	if err != nil {
		return nil, err
	}
	return []JobRequest{{NotificationEventTypeID: m.NotificationEventTypeID, EventData: data}}, nil
}

// Template is a notification's subject, text and HTML bodies (Go templates; the HTML one is
// html/template, so data is escaped).
type Template struct {
	Subject string `json:"subject"`
	Text    string `json:"text"`
	HTML    string `json:"html,omitempty"`
}

// Generator says how to turn a job of one notification type into messages.
type Generator struct {
	// Template is the default template name (blob notification-templates/{name}.json); a
	// NotificationOption's TemplateName overrides it.
	Template string
	// Default is the built-in template used when no blob of that name exists; nil: none.
	Default *Template
	// Recipients derives recipients from the job's data when the job names none.
	Recipients func(data map[string]any) []platform.Recipient
	// Subscribers: when the job names none, the recipients are the business unit's
	// NotificationSubscriber rows for the type.
	Subscribers bool
}

// Generators is the generator handler registry, by notification type.
type Generators struct {
	mu sync.RWMutex
	m  map[int]Generator
}

// Register adds the generator of notification type id; twice is an error.
func (g *Generators) Register(id int, gen Generator) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, dup := g.m[id]; dup {
		return fmt.Errorf("generator for notification type %d is already registered", id)
	}
	if g.m == nil {
		g.m = map[int]Generator{}
	}
	g.m[id] = gen
	return nil
}

// Lookup returns the generator of notification type id.
func (g *Generators) Lookup(id int) (Generator, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	gen, ok := g.m[id]
	return gen, ok
}

// EmailField reads the recipient from a field of the job's data, e.g. guardianEmail.
func EmailField(field, nameField string) func(map[string]any) []platform.Recipient {
	return func(data map[string]any) []platform.Recipient {
		addr, _ := data[field].(string)
		if strings.TrimSpace(addr) == "" {
			return nil
		}
		name, _ := data[nameField].(string)
		return []platform.Recipient{{Channel: platform.ChannelEmail, Address: addr, Name: name}}
	}
}
