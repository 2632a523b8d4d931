package webhooks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// Replay bounds. A window is what the worker processed between two instants: the Changes
// table (the change bus) has a row for every event processed, in the minute it was processed.
const (
	// MaxReplayWindow is the longest window one replay covers; a longer one is bad input (it
	// is replayed as several windows).
	MaxReplayWindow = 7 * 24 * time.Hour
	// DefaultReplayMax and MaxReplayMax bound the events one call handles (ReplayOptions.Max).
	DefaultReplayMax, MaxReplayMax = 500, 1000
	// replayScan bounds the change rows one call reads per event it may handle: most of a
	// window may be other units' or other types' events, and a call must end.
	replayScan = 20
	// replaySettle: a delivery missing for an event processed after the endpoint was added may
	// still be created by the worker (the event's retries): until this long after, a replay
	// leaves it to the worker rather than race it with a rebuilt copy.
	replaySettle = 15 * time.Minute
)

// ReplayOptions is one call of a replay.
type ReplayOptions struct {
	Since, Until time.Time // the window [Since, Until) of processing time; Until zero: now
	After        string    // the cursor a previous call returned (its Next); empty: from Since
	Max          int       // how many subscribed events this call handles; default DefaultReplayMax
}

// ReplayResult is what one call did. Next is the cursor to call again with (After); empty
// when the window is done.
type ReplayResult struct {
	Resent         int            `json:"resent"`  // deliveries sent again (they were settled)
	Created        int            `json:"created"` // deliveries the event never had for the endpoint
	Skipped        int            `json:"skipped"`
	SkippedReasons map[string]int `json:"skippedReasons,omitempty"`
	Next           string         `json:"next"`
}

// Reasons a subscribed event is skipped.
const (
	SkipInFlight   = "in flight"          // Pending or Sending: it is being sent now
	SkipConflict   = "conflict"           // different content under the key: never sent
	SkipNoHistory  = "no history row"     // no delivery, and nothing to rebuild the event from
	SkipNoPayload  = "payload unreadable" // its history snapshot's blob is missing or refused
	SkipNotSettled = "not settled"        // no delivery yet, but the worker may still create it
)

func (r *ReplayResult) skip(reason string) {
	r.Skipped++
	if r.SkippedReasons == nil {
		r.SkippedReasons = map[string]int{}
	}
	r.SkippedReasons[reason]++
}

// Replayer re-sends what an endpoint subscribes to among the events processed in a window,
// under the deliveries' original keys (so the same Idempotency-Key: receivers deduplicate).
type Replayer struct {
	s       *Service
	changes *tables.Changes
	history *tables.History
}

// NewReplayer returns the replays of s's endpoints: changes says which events were processed
// when, history holds their payloads.
func NewReplayer(s *Service, changes *tables.Changes, history *tables.History) *Replayer {
	return &Replayer{s: s, changes: changes, history: history}
}

// check validates o and fills in its defaults; the error names the field.
func (o *ReplayOptions) check(now time.Time) error {
	bad := func(field, problem string) error {
		return fmt.Errorf("%w: %s", platform.ErrInvalidInput, &platform.FieldError{Field: field, Problem: problem})
	}
	if o.Until.IsZero() || o.Until.After(now) {
		o.Until = now
	}
	o.Max = cmp.Or(o.Max, DefaultReplayMax)
	switch {
	case o.Since.IsZero():
		return bad("since", "want the start of the window (RFC 3339)")
	case !o.Since.Before(now):
		return bad("since", "in the future: nothing was processed then yet")
	case !o.Since.Before(o.Until):
		return bad("until", "want a time after since")
	case o.Until.Sub(o.Since) > MaxReplayWindow:
		return bad("until", fmt.Sprintf("the window is %s, at most %s: replay it as several windows", o.Until.Sub(o.Since).Round(time.Minute), MaxReplayWindow))
	case o.Max < 1 || o.Max > MaxReplayMax:
		return bad("max", fmt.Sprintf("want 1-%d", MaxReplayMax))
	}
	if o.After != "" {
		at, ok := platform.SourceKeyTime(o.After)
		if !ok || at.Before(o.Since.Truncate(time.Millisecond)) || !at.Before(o.Until) {
			return bad("after", "not a cursor of this window (want the next of a previous call with the same since and until)")
		}
	}
	return nil
}

// Replay handles up to opts.Max of endpoint id's subscribed events (its business unit, its
// event types) processed in the window, in the order they were processed: a settled delivery
// is sent again (delivery.Distributor.Rearm), one on its way is left to finish, and a missing
// one (the endpoint was added after the event) is created from the event's history row. An
// event processed twice (a redelivery) counts once per call. Bad options and an endpoint that
// does not exist or is disabled are platform.ErrInvalidInput.
func (r *Replayer) Replay(ctx context.Context, id string, opts ReplayOptions) (*ReplayResult, error) {
	now := time.Now().UTC()
	if err := opts.check(now); err != nil {
		return nil, err
	}
	e, err := r.s.store.Get(ctx, id)
	if errors.Is(err, platform.ErrNotFound) {
		return nil, fmt.Errorf("%w: no webhook endpoint %s", platform.ErrInvalidInput, id)
	}
	if err != nil {
		return nil, err
	}
	if !e.Enabled {
		return nil, fmt.Errorf("%w: webhook endpoint %s is disabled: its deliveries would fail", platform.ErrInvalidInput, id)
	}
	res := &ReplayResult{}
	from, to, after := platform.SourceKeyAt(opts.Since), platform.SourceKeyAt(opts.Until), opts.After
	seen := map[string]bool{}
	for scanned := 0; ; {
		rows, err := r.changes.Range(ctx, from, to, after, 1000)
		if err != nil {
			return nil, fmt.Errorf("read the changes of the window: %w", err)
		}
		for _, row := range rows {
			after, scanned = row.ID, scanned+1
			if ev, ok := subscribed(e, row.Change); ok && !seen[row.Change.EventKey] {
				seen[row.Change.EventKey] = true
				if err := r.replayOne(ctx, e, ev, row.ID, now, res); err != nil {
					return nil, err
				}
			}
			if res.Resent+res.Created+res.Skipped >= opts.Max || scanned >= replayScan*opts.Max {
				res.Next = after
				return res, nil
			}
		}
		if len(rows) < 1000 {
			return res, nil // the window is done
		}
	}
}

// subscribed is the event of change ch (its key's fields and its business unit) when endpoint
// e subscribes to it.
func subscribed(e *tables.Endpoint, ch *platform.Change) (*platform.EntityEvent, bool) {
	ev, err := platform.ParseEventKey(ch.EventKey)
	if err != nil {
		return nil, false
	}
	ev.BusinessUnitID = ch.BusinessUnitID
	if ev.EntityGUID == "" && ev.EntityID == ev.BusinessUnitID {
		ev.EntityID = 0 // the identity is the business unit's: the event is about the unit itself
	}
	return ev, e.Subscribes(ev)
}

// replayOne re-sends, creates or skips the delivery of ev (processed in change changeID) to e.
func (r *Replayer) replayOne(ctx context.Context, e *tables.Endpoint, ev *platform.EntityEvent, changeID string, now time.Time, res *ReplayResult) error {
	key := platform.DeliveryKey(e.ID, ev.Key())
	found, rearmed, err := r.s.deliver.Rearm(ctx, key, "replay", "replay of endpoint "+e.ID)
	switch {
	case errors.Is(err, platform.ErrNotFound):
	case err != nil:
		return fmt.Errorf("replay %s: %w", platform.ShownKey(key), err)
	case rearmed:
		res.Resent++
		return nil
	case found == platform.MessageConflict:
		res.skip(SkipConflict)
		return nil
	default:
		res.skip(SkipInFlight)
		return nil
	}
	if processed, _ := platform.SourceKeyTime(changeID); !processed.Before(e.CreatedAt) && now.Sub(processed) < replaySettle {
		res.skip(SkipNotSettled)
		return nil
	}
	rec, err := r.history.Get(ctx, ev.EntityTypeID, ev.Identity(), ev.CreatedOn, ev.EventTypeID, ev.ActionTypeID)
	if errors.Is(err, platform.ErrNotFound) {
		res.skip(SkipNoHistory)
		return nil
	}
	if err != nil {
		return fmt.Errorf("replay %s: %w", ev.Key(), err)
	}
	ev.Payload = rec.Snapshot
	if rec.SnapshotBlob != "" && len(rec.Snapshot) == 0 {
		b, err := r.s.blobs.EventPayload(ctx, rec.BusinessUnitID, rec.SnapshotBlob)
		if errors.Is(err, platform.ErrNotFound) || errors.Is(err, platform.ErrInvalidInput) { // missing, too large, not its own
			res.skip(SkipNoPayload)
			return nil
		}
		if err != nil {
			return fmt.Errorf("replay %s: read its payload: %w", ev.Key(), err)
		}
		ev.Payload = b
	}
	ev.NotificationEventTypeID, ev.ChangedFields = rec.NotificationEventTypeID, rec.ChangedFields
	ev.CorrelationID, ev.ActorID, ev.Source = rec.CorrelationID, rec.ActorID, rec.Source
	if err := r.s.ensureDeliveries(ctx, ev, []*tables.Endpoint{e}, "delivery created by replay"); err != nil {
		return fmt.Errorf("replay %s: %w", ev.Key(), err)
	}
	res.Created++
	return nil
}
