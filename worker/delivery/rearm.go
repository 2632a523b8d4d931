package delivery

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// Rearm sends message key once more, as a replay asks: a settled message (Sent, Failed,
// Unknown) goes back to Pending under the same key, with a fresh count of attempts (the trail
// keeps how many the earlier sending took) and a trail step naming stage and why, and is
// handed to the distributor. A message on its way is left to finish: Pending is handed to the
// distributor again (its queue message may be lost; a duplicate is harmless), Sending is not
// touched. A Conflict is never sent. It returns the state found and whether it re-armed;
// platform.ErrNotFound when there is no such message.
func (d *Distributor) Rearm(ctx context.Context, key, stage, why string) (found platform.MessageState, rearmed bool, err error) {
	found, rearmed, _, err = d.rearm(ctx, key, rearming{stage: stage, decision: "replayed", why: why, pending: func(*platform.OutgoingMessage) bool { return true },
		from: []platform.MessageState{platform.MessageSent, platform.MessageFailed, platform.MessageUnknown}})
	return found, rearmed, err
}

// rearming is what rearm does: which states it takes, and the trail step it writes.
type rearming struct {
	stage, decision, why string
	from                 []platform.MessageState // the settled states re-armed; never Conflict
	// pending says whether a Pending message is handed to the distributor again (nil: never).
	pending func(m *platform.OutgoingMessage) bool
	visible func(businessUnitID int64) bool
}

// rearm moves message key from one of r.from back to Pending and hands it to the distributor.
// A message of a business unit r.visible refuses is errNoSuchMessage.
func (d *Distributor) rearm(ctx context.Context, key string, r rearming) (found platform.MessageState, rearmed bool, msg *platform.OutgoingMessage, err error) {
	msg, etag, changed, err := tables.Modify(ctx, d.messages, key, nil, "", func(m *platform.OutgoingMessage) error {
		if r.visible != nil && !r.visible(m.BusinessUnitID) {
			return errNoSuchMessage
		}
		found = m.State
		if !slices.Contains(r.from, m.State) || m.State == platform.MessageConflict {
			return tables.ErrUnchanged
		}
		m.Trail = append(m.Trail, platform.NewStep(r.stage, r.decision, fmt.Sprintf("%s; was %s after %d attempts", r.why, m.State, m.Attempts)))
		m.State, m.Attempts, m.LastError, m.ProviderID, m.RetryAt = platform.MessagePending, 0, "", "", time.Time{}
		return nil
	})
	if err != nil {
		return found, false, nil, err
	}
	if !changed && (msg.State != platform.MessagePending || r.pending == nil || !r.pending(msg)) {
		return found, false, msg, nil
	}
	if changed {
		d.observe(ctx, msg) // the delivery log shows it Pending again
	}
	if err := d.queues.EnqueueCarrying(ctx, platform.QueueNotificationDistributor, key,
		sendMessage{MessageKey: key, Message: msg, ETag: etag}, sendMessage{MessageKey: key}, 0); err != nil {
		return found, false, msg, fmt.Errorf("hand %s to the distributor: %w", key, err)
	}
	return found, changed, msg, nil
}
