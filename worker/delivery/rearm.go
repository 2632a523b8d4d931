package delivery

import (
	"context"
	"fmt"
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
	msg, etag, changed, err := tables.Modify(ctx, d.messages, key, nil, "", func(m *platform.OutgoingMessage) error {
		found = m.State
		switch m.State {
		case platform.MessageSent, platform.MessageFailed, platform.MessageUnknown:
		default:
			return tables.ErrUnchanged
		}
		m.Trail = append(m.Trail, platform.NewStep(stage, "replayed", fmt.Sprintf("%s; was %s after %d attempts", why, m.State, m.Attempts)))
		m.State, m.Attempts, m.LastError, m.ProviderID, m.RetryAt = platform.MessagePending, 0, "", "", time.Time{}
		return nil
	})
	if err != nil {
		return found, false, err
	}
	if !changed && msg.State != platform.MessagePending {
		return found, false, nil
	}
	if changed {
		d.observe(ctx, msg) // the delivery log shows it Pending again
	}
	if err := d.queues.EnqueueCarrying(ctx, platform.QueueNotificationDistributor,
		sendMessage{MessageKey: key, Message: msg, ETag: etag}, sendMessage{MessageKey: key}, 0); err != nil {
		return found, false, fmt.Errorf("hand %s to the distributor: %w", key, err)
	}
	return found, changed, nil
}
