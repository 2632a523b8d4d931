// Package delivery sends outgoing messages exactly once in effect. It owns the
// OutgoingMessages rows and the notification-distributor queue, and is shared by every concern
// that sends something (notifications, webhook deliveries).
//
// Invariants:
//   - A message is ensured, never upserted: created under its key, or found equal (nothing to
//     do but make sure it is on its way), or found different (Conflict: never sent).
//   - Claim before send: the distributor moves a message Pending → Sending, conditional on its
//     ETag, before calling its channel; of two racing distributors one sends, the other leaves.
//   - A message still Sending after its lease (the sender died inside the send window), or
//     whose provider's verdict was lost after it went out whole, is Unknown: never resent
//     automatically — unless its channel is AtLeastOnce (its receivers deduplicate on the
//     message key): then it is sent again, and the lost attempt counts (rules.go).
//   - A Scheduled channel's failed attempts wait on the queue as holds (RetryAt on the row),
//     for as long as its schedule says, independent of the queue's retry budget.
//
// Channels are registered by name (Channels); this package calls them and knows none.
package delivery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
)

// Config tunes the distributor. Zero fields take the defaults their comments give.
type Config struct {
	// SendLease is how long a distributor may hold a message in Sending. A message still
	// Sending after it (the sender crashed inside the send window) becomes Unknown and is never
	// resent automatically, unless its channel is AtLeastOnce. Default 2m.
	SendLease time.Duration
	// MaxAttempts is how many sends a message gets before it is Failed, unless its channel is
	// Scheduled (its schedule decides). Default 5.
	MaxAttempts int
}

func (c *Config) setDefaults() {
	c.SendLease = cmp.Or(c.SendLease, 2*time.Minute)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, 5)
}

// Distributor ensures outgoing messages and sends them through their channels.
type Distributor struct {
	cfg      Config
	log      logrus.FieldLogger
	queues   *queues.Client
	messages *tables.Messages
	channels *Channels
	settled  func(ctx context.Context, m *platform.OutgoingMessage) // OnSettled
	sent     func(channel string, took time.Duration, err error)    // OnSend
}

// OnSettled calls f (best effort: its failure is its own to log) with each message this
// process just recorded in a final state: Sent, Failed, Unknown, or Conflict (different
// content under its key: never sent). A message replayed (Rearm) settles again. Set before
// the distributor runs.
func (d *Distributor) OnSettled(f func(ctx context.Context, m *platform.OutgoingMessage)) {
	d.settled = f
}

// OnSend calls f with each call of a channel's Send: the channel's name, how long the call
// took, and its error (nil: sent). Set before the distributor runs.
func (d *Distributor) OnSend(f func(channel string, took time.Duration, err error)) {
	d.sent = f
}

// New returns a distributor of the messages in store, sending through channels.
func New(cfg Config, log logrus.FieldLogger, q *queues.Client, store *tables.Messages, channels *Channels) *Distributor {
	cfg.setDefaults()
	return &Distributor{cfg: cfg, log: log, queues: q, messages: store, channels: channels}
}

// MaxDequeueCount is the least the distributor's queue must allow: the message row counts send
// attempts and settles Failed itself, and waiting out a crashed sender's lease takes deliveries
// too. The queue must not give up first.
func (d *Distributor) MaxDequeueCount() int { return 2*d.cfg.MaxAttempts + 5 }

// Get reads message key (for traces).
func (d *Distributor) Get(ctx context.Context, key string) (*platform.OutgoingMessage, error) {
	m, _, err := d.messages.Get(ctx, key)
	return m, err
}

// sendMessage is the notification-distributor queue's message: the key, and on a first
// delivery the row as its writer wrote it (queues.Carried).
type sendMessage struct {
	MessageKey string                    `json:"messageKey"`
	ETag       tables.ETag               `json:"etag,omitempty"`
	Message    *platform.OutgoingMessage `json:"message,omitempty"`
}

// Ensure creates msg unless its key exists and makes sure it is on its way: a message found
// Pending (its distributor message may have been lost in a crash) is sent to the distributor
// again; duplicates are harmless. Different content under the key is a conflict: the message
// is never sent, and support is told. stage names the caller in the message's trail.
func (d *Distributor) Ensure(ctx context.Context, msg *platform.OutgoingMessage, stage string) error {
	stored, etag, created, err := d.messages.Ensure(ctx, msg)
	if err != nil {
		return err
	}
	if !created && stored.ContentHash() != msg.ContentHash() {
		queues.TraceLog(ctx, d.log).WithFields(logrus.Fields{"messageKey": platform.ShownKey(stored.Key), "state": stored.State}).
			Error("outgoing message conflict: different content under an existing key; it will not be sent automatically")
		conflicted, _, changed, err := tables.Modify(ctx, d.messages, stored.Key, stored, etag, func(m *platform.OutgoingMessage) error {
			if m.State != platform.MessagePending {
				return tables.ErrUnchanged // on its way or settled: too late to stop
			}
			m.State, m.LastError = platform.MessageConflict, platform.ReasonConflict
			m.Trail = append(m.Trail, platform.NewStep(stage, "conflict", "different content under the same key"))
			return nil
		})
		if err == nil && changed {
			d.settle(ctx, conflicted)
		}
		return err
	}
	if created {
		d.observe(ctx, stored) // before it is on its way: no later step's view is overwritten
	}
	if stored.State != platform.MessagePending {
		return nil // already on its way, or settled
	}
	return d.queues.EnqueueCarrying(ctx, platform.QueueNotificationDistributor, msg.Key,
		sendMessage{MessageKey: msg.Key, Message: stored, ETag: etag}, sendMessage{MessageKey: msg.Key}, 0)
}

// Restore writes msg unless its key exists, and sends it on if it waits: for a message a job
// names that was found missing (notify's completeGenerated). Unlike Ensure, a message found is
// not compared with msg: it may have been written meanwhile from another rendering of the same
// job (a replica whose settings cache was older), and it is the one to keep.
func (d *Distributor) Restore(ctx context.Context, msg *platform.OutgoingMessage, stage string) error {
	stored, etag, created, err := d.messages.Ensure(ctx, msg)
	if err != nil {
		return err
	}
	if created {
		d.observe(ctx, stored)
	}
	if stored.State != platform.MessagePending {
		return nil
	}
	if created {
		return d.queues.EnqueueCarrying(ctx, platform.QueueNotificationDistributor, msg.Key,
			sendMessage{MessageKey: msg.Key, Message: stored, ETag: etag}, sendMessage{MessageKey: msg.Key}, 0)
	}
	return d.SendOn(ctx, msg.Key)
}

// SendOn hands message key to the distributor again, for a caller that finds it Pending and
// cannot know whether its hand-off was lost (a crash between writing it and sending it on): a
// duplicate is harmless, the distributor claims before it sends.
func (d *Distributor) SendOn(ctx context.Context, key string) error {
	return d.queues.EnqueueCarrying(ctx, platform.QueueNotificationDistributor, key, sendMessage{MessageKey: key}, sendMessage{MessageKey: key}, 0)
}

// Handle is the queues.Handler of notification-distributor: it sends one message, exactly
// once in effect.
func (d *Distributor) Handle(ctx context.Context, qm *queues.Message) error {
	s, err := queues.DecodeJSON[sendMessage](qm)
	if err != nil || s.MessageKey == "" {
		return platform.Permanent(errors.New(`not a distributor message: want {"messageKey":…}`))
	}
	msg, etag, ok := queues.Carried(qm, s.Message, s.ETag)
	if !ok {
		if msg, etag, err = d.messages.Get(ctx, s.MessageKey); errors.Is(err, platform.ErrNotFound) {
			return platform.Permanent(fmt.Errorf("message %s does not exist", s.MessageKey))
		}
		if err != nil {
			return err
		}
	}
	resends, schedule := d.lookupRules(msg.Recipient.Channel)
	switch msg.State {
	case platform.MessagePending:
		if wait := time.Until(msg.RetryAt); wait > 0 {
			return d.hold(ctx, msg.Key, wait) // a copy that came before the retry is due
		}
	case platform.MessageSending:
		if time.Now().Before(msg.LeaseUntil) {
			return fmt.Errorf("message %s is being sent by another worker until %s", msg.Key, msg.LeaseUntil.Format(time.RFC3339))
		}
		if !resends {
			return d.expire(ctx, msg, etag)
		}
	default:
		return nil // Sent, Failed, Unknown, Conflict: settled
	}
	if msg, etag, err = d.claim(ctx, msg, etag, resends, d.maxAttempts(schedule)); err != nil || msg == nil {
		return err
	}
	return d.send(ctx, msg, etag)
}

// hold puts message key back on the distributor queue, visible in wait (rounded up to whole
// seconds, the queue's unit; at most maxHold at a time: a longer wait is held again).
func (d *Distributor) hold(ctx context.Context, key string, wait time.Duration) error {
	delay := min(wait.Truncate(time.Second), maxHold)
	if delay < wait {
		delay += time.Second
	}
	return d.queues.EnqueueCarrying(ctx, platform.QueueNotificationDistributor, key, sendMessage{MessageKey: key}, sendMessage{MessageKey: key}, delay)
}

// maxHold is the longest a message is hidden on the queue at once (a queue allows 7 days).
const maxHold = 24 * time.Hour

// expire settles a message of an at-most-once channel found Sending past its lease: the
// sender died inside the send window, and whether the provider got it cannot be known, so it
// is Unknown.
func (d *Distributor) expire(ctx context.Context, msg *platform.OutgoingMessage, etag tables.ETag) error {
	msg, _, changed, err := tables.Modify(ctx, d.messages, msg.Key, msg, etag, func(m *platform.OutgoingMessage) error {
		if m.State != platform.MessageSending || time.Now().Before(m.LeaseUntil) {
			return tables.ErrUnchanged // another replica settled or reclaimed it
		}
		m.State = platform.MessageUnknown
		m.LastError = "the sender stopped inside the send window; the provider may or may not have it"
		m.Trail = append(m.Trail, platform.NewStep("distributor", "unknown", "lease expired while Sending; "+rule(m.Recipient.Channel, false)+": not resent"))
		return nil
	})
	if err != nil || !changed {
		return err
	}
	d.observe(ctx, msg)
	d.settle(ctx, msg)
	queues.TraceLog(ctx, d.log).WithFields(logrus.Fields{"messageKey": platform.ShownKey(msg.Key), "attempts": msg.Attempts}).
		Error("outgoing message is Unknown: crashed inside the send window; not resent — check with the provider")
	return nil
}

// claim moves msg to Sending under a fresh claim token and returns it with its new ETag, or nil
// when another distributor claimed it first. The token tells a claim's own echo (the write
// happened, its reply was lost, and the SDK's retry met the new ETag: 412) from someone
// else's claim; a carried row that moved on is claimed again as stored. With resends (an
// AtLeastOnce channel) a message still Sending past its lease is claimed too: its attempt was
// lost and counts; when it was the last of maxAttempts the message is Failed instead.
func (d *Distributor) claim(ctx context.Context, msg *platform.OutgoingMessage, etag tables.ETag, resends bool, maxAttempts int) (*platform.OutgoingMessage, tables.ETag, error) {
	token, now := platform.NewSourceKey(), time.Now()
	lease := now.Add(d.cfg.SendLease).UTC()
	msg, etag, changed, err := tables.Modify(ctx, d.messages, msg.Key, msg, etag, func(m *platform.OutgoingMessage) error {
		lost := resends && m.State == platform.MessageSending && !now.Before(m.LeaseUntil)
		if m.State != platform.MessagePending && !lost || now.Before(m.RetryAt) {
			return tables.ErrUnchanged // ours (the echo), or another distributor's, or settled, or held
		}
		if lost {
			m.Trail = append(m.Trail, platform.NewStep("distributor", "attempt lost",
				fmt.Sprintf("attempt %d: lease expired while Sending (the sender stopped inside the send window); %s", m.Attempts, rule(m.Recipient.Channel, true))))
			if m.Attempts >= maxAttempts {
				m.State, m.LeaseUntil = platform.MessageFailed, time.Time{}
				m.LastError = fmt.Sprintf("gave up after %d attempts, the last cut off inside the send window (the receiver may have it)", m.Attempts)
				m.Trail = append(m.Trail, platform.NewStep("distributor", "failed", m.LastError))
				return nil
			}
		}
		m.State, m.Attempts, m.LeaseUntil, m.Claim, m.RetryAt = platform.MessageSending, m.Attempts+1, lease, token, time.Time{}
		reason := fmt.Sprintf("attempt %d", m.Attempts)
		if lost {
			reason += ", sent again with the same key and body"
		}
		m.Trail = append(m.Trail, platform.NewStep("distributor", "claimed", reason))
		return nil
	})
	if errors.Is(err, platform.ErrConflict) {
		return nil, "", nil // lost the race again and again: whoever won sends it
	}
	if err == nil && changed && msg.State == platform.MessageFailed {
		d.observe(ctx, msg)
		d.settle(ctx, msg)
		queues.TraceLog(ctx, d.log).WithFields(logrus.Fields{"messageKey": platform.ShownKey(msg.Key), "attempts": msg.Attempts}).Error("message failed: " + msg.LastError)
	}
	if err != nil || msg.State != platform.MessageSending || msg.Claim != token {
		return nil, "", err
	}
	return msg, etag, nil
}

// send calls the message's channel and records the outcome.
func (d *Distributor) send(ctx context.Context, msg *platform.OutgoingMessage, etag tables.ETag) error {
	var providerID string
	resends, schedule := d.lookupRules(msg.Recipient.Channel)
	ch, ok := d.channels.Lookup(msg.Recipient.Channel)
	err := platform.Permanent(fmt.Errorf("no channel %q (registered: %v)", msg.Recipient.Channel, d.channels.Names()))
	if ok {
		sendCtx, cancel := context.WithTimeout(ctx, d.cfg.SendLease/2)
		sendCtx, span := startSend(sendCtx, msg.Recipient.Channel, msg.Attempts)
		began := time.Now()
		providerID, err = ch.Send(sendCtx, msg)
		endSend(span, err)
		took := time.Since(began)
		msg.LastLatencyMs = max(took.Milliseconds(), 1)
		cancel()
		if d.sent != nil {
			d.sent(msg.Recipient.Channel, took, err)
		}
	}
	msg.LeaseUntil = time.Time{}
	var ambiguous *ambiguousError
	switch {
	case errors.As(err, &ambiguous) && !resends:
		msg.State, msg.LastError = platform.MessageUnknown, err.Error()
		msg.Trail = append(msg.Trail, platform.NewStep("distributor", "unknown", err.Error()))
	case err == nil:
		msg.State, msg.ProviderID, msg.LastError = platform.MessageSent, providerID, ""
		msg.Trail = append(msg.Trail, platform.NewStep("distributor", "sent", providerID))
	case platform.IsPermanent(err):
		msg.State, msg.LastError = platform.MessageFailed, err.Error()
		msg.Trail = append(msg.Trail, platform.NewStep("distributor", "failed", err.Error()))
	case msg.Attempts >= d.maxAttempts(schedule):
		msg.State, msg.LastError = platform.MessageFailed, fmt.Sprintf("gave up after %d attempts: %v", msg.Attempts, err)
		msg.Trail = append(msg.Trail, platform.NewStep("distributor", "failed", msg.LastError))
	case schedule != nil:
		wait, _ := retryWait(schedule, msg.Attempts, RequestedWait(err), jitter())
		msg.State, msg.LastError, msg.RetryAt = platform.MessagePending, err.Error(), time.Now().Add(wait).UTC()
		msg.Trail = append(msg.Trail, platform.NewStep("distributor", "will retry",
			fmt.Sprintf("at %s (in %s, attempt %d of %d): %v", msg.RetryAt.Format(time.RFC3339), wait.Round(time.Second), msg.Attempts+1, len(schedule)+1, err)))
	default:
		msg.State, msg.LastError = platform.MessagePending, err.Error()
		msg.Trail = append(msg.Trail, platform.NewStep("distributor", "will retry", err.Error()))
	}
	// The outcome is recorded even when a stop cancels the handler now: the send happened (or
	// failed) and the row must say so, or the message would wait out its lease as Unknown.
	recordCtx, cancelRecord := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelRecord()
	if _, uerr := d.messages.Update(recordCtx, msg, etag); uerr != nil {
		// The row still says Sending: the redelivery waits out the lease and reports Unknown
		// rather than risk a second send.
		return fmt.Errorf("record outcome of %s (%s): %w", msg.Key, msg.State, uerr)
	}
	d.observe(recordCtx, msg)
	if msg.State.Final() {
		d.settle(recordCtx, msg)
	}
	log := queues.TraceLog(ctx, d.log).WithField("messageKey", platform.ShownKey(msg.Key))
	switch msg.State {
	case platform.MessageSent:
		log.WithField("providerId", providerID).Info("message sent")
	case platform.MessageFailed:
		log.WithField("error", msg.LastError).Error("message failed")
	case platform.MessageUnknown:
		log.WithField("error", msg.LastError).Error("outgoing message is Unknown: the provider may have it; not resent — check with the provider")
	case platform.MessagePending:
		if msg.RetryAt.IsZero() {
			return fmt.Errorf("send %s: %w", msg.Key, err) // retried with the consumer's backoff
		}
		// Held on the queue until due; this message is done. Should the hold not be enqueued,
		// the error redelivers this one, which finds the row held and holds it then.
		log.WithFields(logrus.Fields{"error": msg.LastError, "retryAt": msg.RetryAt.Format(time.RFC3339)}).Info("message will be retried")
		return d.hold(recordCtx, msg.Key, time.Until(msg.RetryAt))
	}
	return nil
}

func (d *Distributor) settle(ctx context.Context, msg *platform.OutgoingMessage) {
	if d.settled != nil {
		d.settled(ctx, msg)
	}
}

// observe hands msg, as just stored, to its channel when that keeps a view of its messages
// (Observer).
func (d *Distributor) observe(ctx context.Context, msg *platform.OutgoingMessage) {
	ch, _ := d.channels.Lookup(msg.Recipient.Channel)
	if o, ok := ch.(Observer); ok {
		if err := o.Observe(ctx, msg); err != nil && ctx.Err() == nil {
			queues.TraceLog(ctx, d.log).WithError(err).WithField("messageKey", platform.ShownKey(msg.Key)).Warn("channel's view of a message not updated; the message itself is")
		}
	}
}
