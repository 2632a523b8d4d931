package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/platform/platform"
)

// Trace answers "why did this (not) send?" for an event key, a job key or a message key: the
// chain from the event's history row through each job (state, reason, trail) to each outgoing
// message (state, attempts, provider id, last error).
type Trace struct {
	Key   string      `json:"key"`
	Kind  string      `json:"kind"` // event, job or message
	Event *TraceEvent `json:"event,omitempty"`
	Jobs  []TraceJob  `json:"jobs,omitempty"`
	// Deliveries are the event's webhook deliveries, one per subscribed endpoint.
	Deliveries []*platform.OutgoingMessage `json:"deliveries,omitempty"`
	// Notes are plain sentences for the reader: what is missing and what to look at.
	Notes []string `json:"notes,omitempty"`
}

// TraceEvent is what the worker recorded of the event itself.
type TraceEvent struct {
	EventKey string                  `json:"eventKey"`
	History  *platform.HistoryRecord `json:"history,omitempty"`
	Hint     int                     `json:"notificationEventTypeId,omitempty"`
	// Derived are the notification types the event asks for, by its hint and dedicated mappings.
	Derived []int `json:"derived,omitempty"`
}

// TraceJob is one job and its messages.
type TraceJob struct {
	JobKey   string                      `json:"jobKey"`
	Job      *platform.NotificationJob   `json:"job,omitempty"`
	Messages []*platform.OutgoingMessage `json:"messages,omitempty"`
}

// Trace builds the chain for key.
func (w *Worker) Trace(ctx context.Context, key string) (*Trace, error) {
	n := w.notify
	t := &Trace{Key: key}
	var jobKeys []string
	switch {
	case strings.HasPrefix(key, "webhook:"):
		t.Kind = "delivery"
		m, _, err := n.messages.Get(ctx, key)
		if errors.Is(err, platform.ErrNotFound) {
			t.Notes = append(t.Notes, "no such delivery: the event has not been processed, or the endpoint did not subscribe to it then")
			return t, nil
		}
		if err != nil {
			return nil, err
		}
		t.Deliveries = []*platform.OutgoingMessage{m}
		return t, nil
	case strings.Contains(key, "|"):
		t.Kind = "message"
		jobKey, _, _ := strings.Cut(key, "|")
		jobKeys = []string{jobKey}
	case strings.HasPrefix(key, "notification-job:") || isUUID(key):
		t.Kind = "job"
		jobKeys = []string{key}
	default:
		t.Kind = "event"
		ev, err := parseEventKey(key)
		if err != nil {
			return nil, err
		}
		te := &TraceEvent{EventKey: key}
		t.Event = te
		rec, err := n.history.Get(ctx, ev.EntityTypeID, ev.Identity(), ev.CreatedOn, ev.EventTypeID, ev.ActionTypeID)
		switch {
		case errors.Is(err, platform.ErrNotFound):
			t.Notes = append(t.Notes, "no history row: the worker has not processed this event — still queued, or poisoned (look in entity-events-poison), or its type has no history rule")
		case err != nil:
			return nil, err
		default:
			te.History, te.Hint = rec, rec.NotificationEventTypeID
			ev.NotificationEventTypeID, ev.ChangedFields, ev.Payload, ev.BusinessUnitID = rec.NotificationEventTypeID, rec.ChangedFields, rec.Snapshot, rec.BusinessUnitID
			reqs, derr := n.registry.Derive(ev)
			if derr != nil {
				t.Notes = append(t.Notes, "the event's notification mapping fails: "+derr.Error())
			}
			for _, r := range reqs {
				te.Derived = append(te.Derived, r.NotificationEventTypeID)
				jobKeys = append(jobKeys, platform.EventJobKey(r.NotificationEventTypeID, key))
			}
			if len(reqs) == 0 && derr == nil {
				t.Notes = append(t.Notes, "no notification: the event carries no hint (notificationEventTypeId) and no dedicated mapping of its type asked for one")
			}
			ev.EventTypeID = rec.EventTypeID
			for _, e := range w.hooks.matching(ev) {
				m, _, err := n.messages.Get(ctx, DeliveryKey(e.ID, key))
				if errors.Is(err, platform.ErrNotFound) {
					t.Notes = append(t.Notes, "endpoint "+e.ID+" subscribes to this event but has no delivery for it (it was added after the event, or the event is still being processed)")
					continue
				}
				if err != nil {
					return nil, err
				}
				t.Deliveries = append(t.Deliveries, m)
			}
		}
	}
	for _, jk := range jobKeys {
		tj := TraceJob{JobKey: jk}
		job, _, err := n.jobs.Get(ctx, jk)
		switch {
		case errors.Is(err, platform.ErrNotFound):
			t.Notes = append(t.Notes, "job "+jk+" does not exist: the event has not reached the notification concern yet, or failed there (look in entity-events-poison)")
		case err != nil:
			return nil, err
		default:
			tj.Job = job
			keys := job.MessageKeys
			if t.Kind == "message" {
				keys = []string{key}
			}
			for _, mk := range keys {
				m, _, err := n.messages.Get(ctx, mk)
				if errors.Is(err, platform.ErrNotFound) {
					t.Notes = append(t.Notes, "message "+mk+" does not exist")
					continue
				}
				if err != nil {
					return nil, err
				}
				tj.Messages = append(tj.Messages, m)
			}
			if job.EventKey != "" && t.Event == nil {
				t.Event = &TraceEvent{EventKey: job.EventKey}
			}
		}
		t.Jobs = append(t.Jobs, tj)
	}
	return t, nil
}

// parseEventKey reads {eventTypeId}:{entityTypeId}:{identity}:{createdOn:O}:{actionTypeId}.
func parseEventKey(key string) (*platform.EntityEvent, error) {
	bad := fmt.Errorf("%w: %q is not an event key, a job key or a message key", ErrInvalidInput, key)
	parts := strings.SplitN(key, ":", 4)
	last := strings.LastIndexByte(key, ':')
	if len(parts) != 4 || last < 0 {
		return nil, bad
	}
	createdOn := key[len(parts[0])+len(parts[1])+len(parts[2])+3 : last]
	ev := &platform.EntityEvent{}
	var err1, err2, err3, err4 error
	ev.EventTypeID, err1 = strconv.Atoi(parts[0])
	ev.EntityTypeID, err2 = strconv.Atoi(parts[1])
	ev.ActionTypeID, err3 = strconv.Atoi(key[last+1:])
	ev.CreatedOn, err4 = time.Parse(time.RFC3339Nano, createdOn)
	if errors.Join(err1, err2, err3, err4) != nil {
		return nil, bad
	}
	if g, err := platform.NormalizeGUID(parts[2]); err == nil && g != "" {
		ev.EntityGUID = g
	} else if id, err := strconv.ParseInt(parts[2], 10, 64); err == nil && id > 0 {
		ev.EntityID = id
	} else {
		return nil, bad
	}
	return ev, nil
}

func isUUID(s string) bool {
	g, err := platform.NormalizeGUID(s)
	return err == nil && g != ""
}
