package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/platform/platform"
)

// Trace answers "why did this (not) send?" for an event key, a job key, a message key or a
// webhook delivery key: the chain from the event's history row through each job (state,
// reason, trail) to each outgoing message (state, attempts, provider id, last error), and the
// event's webhook deliveries.
type Trace struct {
	Key   string      `json:"key"`
	Kind  string      `json:"kind"` // event, job, message or delivery
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
func (s *Service) Trace(ctx context.Context, key string) (*Trace, error) {
	t := &Trace{Key: key}
	var jobKeys []string
	if _, _, ok := platform.ParseDeliveryKey(key); ok {
		t.Kind = "delivery"
		m, err := s.d.Distributor.Get(ctx, key)
		if errors.Is(err, platform.ErrNotFound) {
			t.Notes = append(t.Notes, "no such delivery: the event has not been processed, or the endpoint did not subscribe to it then")
			return t, nil
		}
		if err != nil {
			return nil, err
		}
		t.Deliveries = []*platform.OutgoingMessage{m}
		return t, nil
	}
	if jobKey, ok := platform.MessageJobKey(key); ok {
		t.Kind, jobKeys = "message", []string{jobKey}
	} else if g, err := platform.NormalizeGUID(key); strings.HasPrefix(key, "notification-job:") || (err == nil && g != "") {
		t.Kind, jobKeys = "job", []string{key}
	} else {
		t.Kind = "event"
		if jobKeys, err = s.traceEvent(ctx, t, key); err != nil {
			return nil, err
		}
	}
	for _, jk := range jobKeys {
		tj, err := s.traceJob(ctx, t, jk)
		if err != nil {
			return nil, err
		}
		t.Jobs = append(t.Jobs, tj)
	}
	return t, nil
}

// traceEvent fills in what the worker recorded of event key and returns the keys of the jobs
// the event asks for.
func (s *Service) traceEvent(ctx context.Context, t *Trace, key string) ([]string, error) {
	ev, err := platform.ParseEventKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not an event key, a job key, a message key or a delivery key", platform.ErrInvalidInput, key)
	}
	te := &TraceEvent{EventKey: key}
	t.Event = te
	rec, err := s.history.Get(ctx, ev.EntityTypeID, ev.Identity(), ev.CreatedOn, ev.EventTypeID, ev.ActionTypeID)
	switch {
	case errors.Is(err, platform.ErrNotFound):
		t.Notes = append(t.Notes, "no history row: the worker has not processed this event — still queued, or poisoned (look in entity-events-poison), or its type has no history rule")
		return nil, nil
	case err != nil:
		return nil, err
	}
	te.History, te.Hint = rec, rec.NotificationEventTypeID
	ev.NotificationEventTypeID, ev.ChangedFields, ev.Payload, ev.BusinessUnitID = rec.NotificationEventTypeID, rec.ChangedFields, rec.Snapshot, rec.BusinessUnitID
	reqs, derr := s.d.Types.Derive(ev)
	if derr != nil {
		t.Notes = append(t.Notes, "the event's notification mapping fails: "+derr.Error())
	}
	var jobKeys []string
	for _, r := range reqs {
		te.Derived = append(te.Derived, r.NotificationEventTypeID)
		jobKeys = append(jobKeys, platform.EventJobKey(r.NotificationEventTypeID, key))
	}
	if len(reqs) == 0 && derr == nil {
		t.Notes = append(t.Notes, "no notification: the event carries no hint (notificationEventTypeId) and no dedicated mapping of its type asked for one")
	}
	if s.d.DeliveryKeys == nil {
		return jobKeys, nil
	}
	for _, dk := range s.d.DeliveryKeys(ev) {
		m, err := s.d.Distributor.Get(ctx, dk)
		if errors.Is(err, platform.ErrNotFound) {
			endpoint, _, _ := platform.ParseDeliveryKey(dk)
			t.Notes = append(t.Notes, "endpoint "+endpoint+" subscribes to this event but has no delivery for it (it was added after the event, or the event is still being processed)")
			continue
		}
		if err != nil {
			return nil, err
		}
		t.Deliveries = append(t.Deliveries, m)
	}
	return jobKeys, nil
}

// traceJob reads job jk and its messages (only the traced one, for a message key).
func (s *Service) traceJob(ctx context.Context, t *Trace, jk string) (TraceJob, error) {
	tj := TraceJob{JobKey: jk}
	job, _, err := s.jobs.Get(ctx, jk)
	switch {
	case errors.Is(err, platform.ErrNotFound):
		t.Notes = append(t.Notes, "job "+jk+" does not exist: the event has not reached the notification concern yet, or failed there (look in entity-events-poison)")
		return tj, nil
	case err != nil:
		return tj, err
	}
	tj.Job = job
	keys := job.MessageKeys
	if t.Kind == "message" {
		keys = []string{t.Key}
	}
	for _, mk := range keys {
		m, err := s.d.Distributor.Get(ctx, mk)
		if errors.Is(err, platform.ErrNotFound) {
			t.Notes = append(t.Notes, "message "+mk+" does not exist")
			continue
		}
		if err != nil {
			return tj, err
		}
		tj.Messages = append(tj.Messages, m)
	}
	if job.EventKey != "" && t.Event == nil {
		t.Event = &TraceEvent{EventKey: job.EventKey}
	}
	return tj, nil
}
