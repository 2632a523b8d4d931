// Package mappings owns what events mean: the append-only registries that map event types to their
// consequences, the kinds of mapping, and the example domain of docs/contracts.md, "Example
// domain". A mapping builds row models only; it never derives a key and never touches storage —
// the worker does both, the same way for every mapping.
package mappings

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/platform/platform"
)

// HistoryMapping turns one event into the timeline entries it writes.
type HistoryMapping interface {
	Entries(ev *platform.EntityEvent) ([]platform.HistoryEntry, error)
}

// Hinted writes one row on the event's own timeline: the event's snapshot, the action derived
// from its action type, and a fixed summary.
type Hinted struct {
	Summary string // e.g. "Attendee created"
}

// Entries implements HistoryMapping.
func (h Hinted) Entries(ev *platform.EntityEvent) ([]platform.HistoryEntry, error) {
	return []platform.HistoryEntry{h.entry(ev, ev.EntityTypeID, ev.Identity(), h.Summary)}, nil
}

func (h Hinted) entry(ev *platform.EntityEvent, entityTypeID int, identity, summary string) platform.HistoryEntry {
	return platform.HistoryEntry{
		EntityTypeID:   entityTypeID,
		EntityIdentity: identity,
		Action:         ActionName(ev.ActionTypeID),
		Summary:        summary,
		Snapshot:       ev.Payload,
	}
}

// EntityRef names another entity's timeline.
type EntityRef struct {
	EntityTypeID int
	Identity     string // as in keys: a lowercase GUID or a decimal id
}

// Multi writes the event's own row, as Hinted does, and one row on each related entity's
// timeline (an incident on the timeline of every attendee it involves).
type Multi struct {
	Hinted
	// Related lists the other timelines. An error means the event is malformed (permanent).
	Related func(ev *platform.EntityEvent) ([]EntityRef, error)
	// RelatedSummary is the summary on the related timelines.
	RelatedSummary string
}

// Entries implements HistoryMapping.
func (m Multi) Entries(ev *platform.EntityEvent) ([]platform.HistoryEntry, error) {
	related, err := m.Related(ev)
	if err != nil {
		return nil, err
	}
	out := []platform.HistoryEntry{m.entry(ev, ev.EntityTypeID, ev.Identity(), m.Summary)}
	seen := map[EntityRef]bool{{ev.EntityTypeID, ev.Identity()}: true}
	for _, r := range related {
		if seen[r] {
			continue // one row per timeline, however often the payload names it
		}
		seen[r] = true
		out = append(out, m.entry(ev, r.EntityTypeID, r.Identity, m.RelatedSummary))
	}
	return out, nil
}

// GUIDList reads a payload field holding an array of entity GUIDs, as related entities of type
// entityTypeID. A missing field is no relation; a malformed one is a permanent error.
func GUIDList(field string, entityTypeID int) func(ev *platform.EntityEvent) ([]EntityRef, error) {
	return func(ev *platform.EntityEvent) ([]EntityRef, error) {
		if len(ev.Payload) == 0 {
			return nil, nil
		}
		var p map[string]json.RawMessage
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			return nil, platform.Permanent(&platform.FieldError{Field: "payload", Problem: err.Error()})
		}
		raw, ok := p[field]
		if !ok || string(raw) == "null" {
			return nil, nil
		}
		var guids []string
		if err := json.Unmarshal(raw, &guids); err != nil {
			return nil, platform.Permanent(&platform.FieldError{Field: "payload." + field, Problem: "want an array of UUID strings"})
		}
		refs := make([]EntityRef, 0, len(guids))
		for i, g := range guids {
			norm, err := platform.NormalizeGUID(g)
			if err != nil || norm == "" {
				return nil, platform.Permanent(&platform.FieldError{Field: fmt.Sprintf("payload.%s[%d]", field, i), Problem: fmt.Sprintf("want a UUID, got %q", g)})
			}
			refs = append(refs, EntityRef{EntityTypeID: entityTypeID, Identity: norm})
		}
		return refs, nil
	}
}

// ActionName is the action derived from an action type id (docs/contracts.md, "Example domain").
func ActionName(actionTypeID int) string {
	switch actionTypeID {
	case platform.ActionCreate:
		return "Create"
	case platform.ActionUpdate:
		return "Update"
	case platform.ActionDelete:
		return "Delete"
	case platform.ActionSubmit:
		return "Submit"
	}
	return "Action " + strconv.Itoa(actionTypeID)
}

// HistoryRegistry maps event types to their history mapping. It is append-only: a type, once
// registered, keeps its mapping for the life of the process (ids are persisted in keys).
type HistoryRegistry struct {
	mu sync.RWMutex
	m  map[int]HistoryMapping
}

// Register adds the mapping of eventTypeID. Registering a type twice is an error.
func (r *HistoryRegistry) Register(eventTypeID int, m HistoryMapping) error {
	if eventTypeID <= 0 {
		return fmt.Errorf("history registry: event type %d: want > 0", eventTypeID)
	}
	if m == nil {
		return fmt.Errorf("history registry: event type %d: nil mapping", eventTypeID)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[eventTypeID]; dup {
		return fmt.Errorf("history registry: event type %d is already registered", eventTypeID)
	}
	if r.m == nil {
		r.m = map[int]HistoryMapping{}
	}
	r.m[eventTypeID] = m
	return nil
}

// MustRegister is Register for start-up code: it panics on error.
func (r *HistoryRegistry) MustRegister(eventTypeID int, m HistoryMapping) {
	if err := r.Register(eventTypeID, m); err != nil {
		panic(err)
	}
}

// Lookup returns the mapping of eventTypeID.
func (r *HistoryRegistry) Lookup(eventTypeID int) (HistoryMapping, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m, ok := r.m[eventTypeID]
	return m, ok
}

// EventTypes lists the registered event types, ascending.
func (r *HistoryRegistry) EventTypes() []int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]int, 0, len(r.m))
	for id := range r.m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
