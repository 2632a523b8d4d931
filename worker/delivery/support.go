package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// What support does by hand to a message the distributor settled without knowing (Unknown) or
// gave up on (Failed): say it was delivered after all, or send it once more. Each is decided
// on the row as stored, at its version (tables.Modify), so it cannot overwrite a change it did
// not see; and each leaves a trail step naming who and why.

// Actor is who acts by hand on a message, and why.
type Actor struct {
	By     string // the principal's id
	Reason string
	// Visible, when set, says whether the actor may see a business unit's messages: another
	// unit's message is answered as one that does not exist.
	Visible func(businessUnitID int64) bool
}

// StateError refuses an action on a message, or a job, in a state it does not take.
type StateError struct {
	Key   string
	State string // the state found
	Want  string // what the action needs, in words
}

func (e *StateError) Error() string { return fmt.Sprintf("it is %s: %s", e.State, e.Want) }

// errNoSuchMessage is the answer for a missing message and for another unit's alike.
var errNoSuchMessage error = fmt.Errorf("no such key: %w", platform.ErrNotFound)

// MarkSent records that message key, Unknown (its sender stopped inside the send window, or
// the provider's verdict was lost), was delivered after all: support checked with the
// provider. Unknown → Sent, with the trail step "support marked sent: REASON (by WHO)", and
// the settled hooks called as for a send (metrics, lifecycle event; MarkedSent tells them
// apart). Nothing is sent. Any other state is a *StateError; a missing message, or another
// unit's, platform.ErrNotFound.
func (d *Distributor) MarkSent(ctx context.Context, key string, a Actor) (*platform.OutgoingMessage, error) {
	var found platform.MessageState
	msg, _, changed, err := tables.Modify(ctx, d.messages, key, nil, "", func(m *platform.OutgoingMessage) error {
		if a.Visible != nil && !a.Visible(m.BusinessUnitID) {
			return errNoSuchMessage
		}
		if found = m.State; m.State != platform.MessageUnknown {
			return tables.ErrUnchanged
		}
		m.State, m.LastError, m.LeaseUntil, m.RetryAt = platform.MessageSent, "", time.Time{}, time.Time{}
		m.Trail = append(m.Trail, platform.NewStep(markedStage, markedDecision, fmt.Sprintf("%s (by %s)", a.Reason, a.By)))
		return nil
	})
	switch {
	case err != nil:
		return nil, notFound(err)
	case !changed:
		return nil, &StateError{Key: key, State: string(found), Want: "only an Unknown message can be marked sent"}
	}
	d.observe(ctx, msg)
	d.settle(ctx, msg)
	d.log.WithFields(logrus.Fields{"messageKey": platform.ShownKey(key), "by": a.By, "reason": a.Reason}).Warn("outgoing message marked sent by support (was Unknown)")
	return msg, nil
}

// The trail step MarkSent writes.
const (
	markedStage    = "support"
	markedDecision = "marked sent"
)

// MarkedSent reports whether msg is Sent because support said so (MarkSent), not because a
// send succeeded just now: its last trail step is MarkSent's. A settled hook measures no
// latency for it, since the moment is support's, possibly days after the send.
func MarkedSent(msg *platform.OutgoingMessage) bool {
	if msg.State != platform.MessageSent || len(msg.Trail) == 0 {
		return false
	}
	last := msg.Trail[len(msg.Trail)-1]
	return last.Stage == markedStage && last.Decision == markedDecision
}

// rearmedNotClaimed reports whether Pending message m was put back by a resend or a replay and
// not claimed since: the state a resend leaves when its hand-off to the distributor failed.
// Any other Pending message is on its way already: handing it over again would only spend
// its attempts faster.
func rearmedNotClaimed(m *platform.OutgoingMessage) bool {
	if m.Attempts != 0 || len(m.Trail) == 0 {
		return false
	}
	last := m.Trail[len(m.Trail)-1]
	return last.Decision == "resent" || last.Decision == "replayed"
}

// Resend sends message key once more, deliberately: Unknown (the recipient may get it twice:
// support decided so) or Failed goes back to Pending, with a trail step "support resent:
// REASON (by WHO)", and is handed to the distributor, which sends it once as it sends any
// message. A Pending message that a resend or replay put back and nothing has claimed since is
// handed to the distributor again, unchanged: that is how a resend that wrote Pending and then
// failed to reach the queue (a storage error, a crash) is finished by asking again; any other
// Pending message is on its way (a *StateError), and a duplicate queue message is harmless (the distributor claims
// a message at its version: one sends, the other leaves). Sent, a Conflict (never sent) and a
// message being sent (Sending) are a *StateError; a missing message, or another unit's,
// platform.ErrNotFound.
func (d *Distributor) Resend(ctx context.Context, key string, a Actor) (*platform.OutgoingMessage, error) {
	found, rearmed, msg, err := d.rearm(ctx, key, rearming{stage: "support", decision: "resent", why: fmt.Sprintf("%s (by %s)", a.Reason, a.By),
		from: []platform.MessageState{platform.MessageUnknown, platform.MessageFailed}, pending: rearmedNotClaimed, visible: a.Visible})
	switch {
	case err != nil:
		return nil, notFound(err)
	case !rearmed && found == platform.MessagePending && !rearmedNotClaimed(msg):
		return nil, &StateError{Key: key, State: string(found), Want: "it is on its way: the distributor has it"}
	case !rearmed && found != platform.MessagePending:
		return nil, &StateError{Key: key, State: string(found), Want: "only an Unknown or Failed message can be sent again"}
	}
	log := d.log.WithFields(logrus.Fields{"messageKey": platform.ShownKey(key), "by": a.By, "reason": a.Reason, "was": found})
	if rearmed {
		log.Warn("outgoing message sent again by support")
	} else {
		log.Warn("outgoing message handed to the distributor again by support (it was Pending)")
	}
	return msg, nil
}

// notFound words a missing message as another unit's is worded: "no such key".
func notFound(err error) error {
	if errors.Is(err, platform.ErrNotFound) {
		return errNoSuchMessage
	}
	return err
}
