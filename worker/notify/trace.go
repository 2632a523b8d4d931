package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
	"github.com/sirupsen/logrus"
)

// Trace answers "why did this (not) send?" for an event key, a job key, a message key or a
// webhook delivery key: the chain from the event's history row through each job (state,
// reason, trail) to each outgoing message (state, attempts, provider id, last error), and the
// event's webhook deliveries. Bodies are withheld unless asked for (TraceOptions.ShowBody).
type Trace struct {
	Key  string `json:"key"`
	Kind string `json:"kind"` // event, job, message or delivery
	// Answer is the trace in one sentence: did it send, and if not, why not (answer.go).
	Answer *Answer     `json:"answer,omitempty"`
	Event  *TraceEvent `json:"event,omitempty"`
	Jobs   []TraceJob  `json:"jobs,omitempty"`
	// Deliveries are the event's webhook deliveries, one per subscribed endpoint.
	Deliveries []*platform.OutgoingMessage `json:"deliveries,omitempty"`
	// Automations are the decisions of the automation rules that named the event's type: one
	// per rule (fired → its effect, filter_false, filter_error, deduped, rate_limited,
	// loop_guard, disabled, shadow, action_failed), and one per replay.
	Automations []tables.Decision `json:"automations,omitempty"`
	// BodiesWithheld: the messages' subject, text and HTML, the deliveries' bodies, the jobs'
	// event data and the event's snapshot were left out (TraceOptions.ShowBody).
	BodiesWithheld bool `json:"bodiesWithheld,omitempty"`
	// Notes are plain sentences for the reader: what is missing and what to look at.
	Notes []string `json:"notes,omitempty"`

	mappingError string // why the event's notification mapping failed, for the answer
}

// TraceOptions are what a trace shows. The zero value withholds bodies.
type TraceOptions struct {
	// ShowBody returns what messages say (subject, text, HTML, a delivery's body), what jobs
	// carry (event data) and the event's snapshot in its history row. Off by default: a body may hold a secret, such as a password-reset
	// link, that a support engineer tracing a key has no need to see.
	ShowBody bool
	// Requester is who asks (a remote address, "cli"): logged with the key when ShowBody is set.
	Requester string
	// Visible, when set, says whether the reader may see a business unit's rows: Trace answers
	// ErrNoSuchKey unless the traced root exists and its business unit is visible (an event's
	// history row, a job's or message's job row, a delivery's row), before it reads a body or
	// logs the access. nil: every key is traced, a missing root is a note.
	Visible func(businessUnitID int64) bool
}

// ErrNoSuchKey is a trace's answer, with TraceOptions.Visible set, for a key whose root does
// not exist or is of a business unit the reader may not see: the same words either way, so
// the answer never tells that another unit's row exists. It is a platform.ErrNotFound.
var ErrNoSuchKey error = noSuchKey{}

type noSuchKey struct{}

func (noSuchKey) Error() string { return "no such key" }
func (noSuchKey) Unwrap() error { return platform.ErrNotFound }

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
	JobKey string                    `json:"jobKey"`
	Job    *platform.NotificationJob `json:"job,omitempty"`
	// Type is the job's notification type, named: "IncidentSubmitted (102)".
	Type string `json:"type,omitempty"`
	// Answer is the job in one sentence (not in a message's trace: that holds one message).
	Answer   *Answer                     `json:"answer,omitempty"`
	Messages []*platform.OutgoingMessage `json:"messages,omitempty"`
}

// Trace builds the chain for key. A key that no row could have is a platform.ErrInvalidInput.
// o may be nil (bodies withheld).
func (s *Service) Trace(ctx context.Context, key string, o *TraceOptions) (*Trace, error) {
	var opts TraceOptions
	if o != nil {
		opts = *o
	}
	kind, err := traceKind(key)
	if err != nil {
		return nil, err
	}
	t, err := s.trace(ctx, key, kind, opts.Visible)
	if err != nil {
		return nil, err
	}
	// Logged once the reader may see the root: a refused trace shows no body.
	if opts.ShowBody {
		s.d.Log.WithFields(logrus.Fields{"key": platform.ShownKey(key), "requester": opts.Requester}).Info("trace with bodies shown")
	}
	s.answer(ctx, t)
	t.Key = platform.ShownKey(t.Key)
	s.present(ctx, t, opts.ShowBody)
	return t, nil
}

// traceKind tells what key names: a delivery, a message, a job or an event. Anything else, or
// a key too long to be any row's, is invalid input.
func traceKind(key string) (string, error) {
	const want = "an event key, a job key, a message key or a delivery key"
	if err := platform.CheckKeyLength("key", key); err != nil {
		return "", fmt.Errorf("%w: %v: want %s", platform.ErrInvalidInput, err, want)
	}
	if _, _, ok := platform.ParseDeliveryKey(key); ok {
		return "delivery", nil
	}
	if _, ok := platform.MessageJobKey(key); ok {
		return "message", nil
	}
	if g, err := platform.NormalizeGUID(key); strings.HasPrefix(key, "notification-job:") || (err == nil && g != "") {
		return "job", nil
	}
	if _, err := platform.ParseEventKey(key); err != nil {
		return "", fmt.Errorf("%w: %q is not %s", platform.ErrInvalidInput, key, want)
	}
	return "event", nil
}

// trace reads the chain of key, of kind. With visible set, a root that is missing or of a unit
// it refuses is ErrNoSuchKey, decided as soon as the root is read.
func (s *Service) trace(ctx context.Context, key, kind string, visible func(int64) bool) (*Trace, error) {
	t := &Trace{Key: key, Kind: kind}
	var jobKeys []string
	switch kind {
	case "delivery":
		m, err := s.d.Distributor.Get(ctx, key)
		switch {
		case visible != nil && (errors.Is(err, platform.ErrNotFound) || err == nil && !visible(m.BusinessUnitID)):
			return nil, ErrNoSuchKey
		case errors.Is(err, platform.ErrNotFound):
			t.Notes = append(t.Notes, "no such delivery: the event has not been processed, or the endpoint did not subscribe to it then")
			return t, nil
		case err != nil:
			return nil, err
		}
		t.Deliveries = []*platform.OutgoingMessage{m}
		return t, nil
	case "message", "job":
		jobKey := key
		if kind == "message" {
			jobKey, _ = platform.MessageJobKey(key)
		}
		tj, err := s.traceJob(ctx, t, jobKey, visible)
		if err != nil {
			return nil, err
		}
		t.Jobs = []TraceJob{tj}
		return t, nil
	}
	jobKeys, err := s.traceEvent(ctx, t, key, visible)
	if err != nil {
		return nil, err
	}
	for _, jk := range jobKeys {
		tj, err := s.traceJob(ctx, t, jk, nil) // the event's jobs are of its business unit
		if err != nil {
			return nil, err
		}
		t.Jobs = append(t.Jobs, tj)
	}
	return t, nil
}

// present makes t what its reader may see, on copies (the rows read may be cached by whoever
// returned them). Always: a webhook recipient's URL redacted (its query or userinfo may carry
// a credential; the row keeps it whole, to send to), and no blob name (storage detail). Bodies
// — what messages say, what jobs carry, the event's snapshot — only when showBody asks for
// them; then a body kept in a blob is read into the answer in place of its name.
func (s *Service) present(ctx context.Context, t *Trace, showBody bool) {
	withheld := false
	resolve := func(what string, inline []byte, name string) []byte {
		if name == "" || len(inline) > 0 {
			return inline
		}
		b, err := s.d.Blobs.Resolve(ctx, nil, name)
		if err != nil {
			// The error names the blob: it goes to the log, the reader gets a sentence.
			s.d.Log.WithError(err).WithField("of", what).Warn("trace: a body kept in storage could not be read")
			t.Notes = append(t.Notes, what+": its body is kept in storage and could not be read (the worker's log says why)")
		}
		return b
	}
	messages := func(ms []*platform.OutgoingMessage) {
		for i, m := range ms {
			c := *m
			c.Key, c.Recipient = platform.ShownKey(c.Key), c.Recipient.Shown()
			switch {
			case showBody:
				c.Text = string(resolve("message "+c.Key, []byte(c.Text), c.BodyBlob))
			case c.Subject != "" || c.Text != "" || c.HTML != "" || c.BodyBlob != "":
				c.Subject, c.Text, c.HTML, withheld = "", "", "", true
			}
			c.BodyBlob = ""
			ms[i] = &c
		}
	}
	messages(t.Deliveries)
	for i := range t.Jobs {
		tj := &t.Jobs[i]
		messages(tj.Messages)
		if tj.Job == nil {
			continue
		}
		tj.JobKey = platform.ShownKey(tj.JobKey)
		c := *tj.Job
		c.MessageKeys = make([]string, len(tj.Job.MessageKeys))
		for i, k := range tj.Job.MessageKeys {
			c.MessageKeys[i] = platform.ShownKey(k)
		}
		c.Recipients = make([]platform.Recipient, len(tj.Job.Recipients))
		for i, r := range tj.Job.Recipients {
			c.Recipients[i] = r.Shown()
		}
		switch {
		case showBody:
			c.EventData = resolve("job "+c.Key, c.EventData, c.EventDataBlob)
		case len(c.EventData) > 0 || c.EventDataBlob != "":
			c.EventData, withheld = nil, true
		}
		c.EventDataBlob = ""
		tj.Job = &c
	}
	if t.Event != nil && t.Event.History != nil {
		c := *t.Event.History
		switch {
		case !showBody:
			withheld = withheld || len(c.Snapshot) > 0 || c.SnapshotBlob != ""
			c.Snapshot = nil
		case len(c.Snapshot) == 0 && c.SnapshotBlob != "":
			data, err := s.d.Blobs.EventPayload(ctx, c.BusinessUnitID, c.SnapshotBlob)
			if err != nil {
				s.d.Log.WithError(err).WithField("of", c.HistoryEventKey).Warn("trace: a snapshot kept in storage could not be read")
				c.SnapshotError = "snapshot not shown: it is kept in storage and could not be read (the worker's log says why)"
			}
			c.Snapshot = data
		}
		e := *t.Event
		e.History, t.Event = &c, &e
	}
	if withheld {
		t.BodiesWithheld = true
		t.Notes = append(t.Notes, "bodies withheld (subject, text, HTML, event data, the event's snapshot): ask with --show-body (API: showBody=true); that access is logged")
	}
}

// traceEvent fills in what the worker recorded of event key and returns the keys of the jobs
// the event asks for. With visible set, an event without a history row, or whose row's
// business unit it refuses, is ErrNoSuchKey.
func (s *Service) traceEvent(ctx context.Context, t *Trace, key string, visible func(int64) bool) ([]string, error) {
	ev, err := platform.ParseEventKey(key)
	if err != nil {
		return nil, err
	}
	te := &TraceEvent{EventKey: key}
	t.Event = te
	decisions, decided, err := s.d.Tables.Decisions().List(ctx, key)
	if err != nil {
		return nil, err
	}
	decidedUnit := int64(0) // the unit of the event as the rules saw it, when they did
	if len(decided.Event) > 0 {
		if e, err := platform.DecodeEvent(decided.Event); err == nil {
			decidedUnit = e.BusinessUnitID
		}
	}
	rec, err := s.history.Get(ctx, ev.EntityTypeID, ev.Identity(), ev.CreatedOn, ev.EventTypeID, ev.ActionTypeID)
	switch {
	case errors.Is(err, platform.ErrNotFound) && len(decisions) > 0 && (visible == nil || decidedUnit > 0 && visible(decidedUnit)):
		t.Automations = decisions // an event only rules wanted: no timeline row, no notification
		t.Notes = append(t.Notes, "no history row: the event's type has no history rule (automation rules decided on it)")
		return nil, nil
	case visible != nil && (errors.Is(err, platform.ErrNotFound) || err == nil && !visible(rec.BusinessUnitID)):
		return nil, ErrNoSuchKey
	case errors.Is(err, platform.ErrNotFound):
		t.Notes = append(t.Notes, "no history row: the worker has not processed this event — still queued, or poisoned (look in entity-events-poison), or its type has no history rule")
		return nil, nil
	case err != nil:
		return nil, err
	}
	t.Automations = decisions
	te.History, te.Hint = rec, rec.NotificationEventTypeID
	ev.NotificationEventTypeID, ev.ChangedFields, ev.Payload, ev.BusinessUnitID = rec.NotificationEventTypeID, rec.ChangedFields, rec.Snapshot, rec.BusinessUnitID
	reqs, derr := s.d.Types.Derive(ev)
	if derr != nil {
		t.mappingError = derr.Error()
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

// traceJob reads job jk and its messages (only the traced one, for a message key). With
// visible set, a job that is missing or of a business unit it refuses is ErrNoSuchKey.
func (s *Service) traceJob(ctx context.Context, t *Trace, jk string, visible func(int64) bool) (TraceJob, error) {
	tj := TraceJob{JobKey: jk}
	job, _, err := s.jobs.Get(ctx, jk)
	switch {
	case visible != nil && (errors.Is(err, platform.ErrNotFound) || err == nil && !visible(job.BusinessUnitID)):
		return tj, ErrNoSuchKey
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
