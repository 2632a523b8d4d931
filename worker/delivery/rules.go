package delivery

import (
	"errors"
	"math/rand/v2"
	"slices"
	"time"
)

// What a channel may declare beyond Channel: the rules its messages are sent by. A channel
// that declares neither is at most once (a message cut off inside the send window is Unknown)
// and retried MaxAttempts times with the queue's backoff.

// AtLeastOnce is a channel whose receivers deduplicate on the message key (sent as its
// Idempotency-Key): a message it was sending when its sender died (still Sending after the
// lease) is sent again, same key and body, the lost attempt counting toward its attempts. Any
// other channel's message becomes Unknown then and is never resent: an SMTP relay or a
// person reading a notification cannot tell a repeat.
type AtLeastOnce interface {
	Channel
	// AtLeastOnce reports whether the rule applies (a wrapper may turn it off).
	AtLeastOnce() bool
}

// Scheduled is a channel whose failed attempts are retried on a schedule that outlasts a
// receiver's outage, rather than MaxAttempts quick retries. After failed attempt n the message
// waits RetrySchedule()[n-1], plus up to a fifth more (jitter, so that the deliveries of one
// outage do not all return at once), or longer when the receiver asked (RetryAfter) — never
// longer than the schedule's longest step. The wait is a hold on the distributor queue (a
// new message, visible when due; the row's RetryAt says when), not the consumer's retry
// budget. After len(RetrySchedule())+1 attempts the message is Failed.
type Scheduled interface {
	Channel
	RetrySchedule() []time.Duration
}

// RetryAfter marks err, a failure worth a retry, with the wait the receiver asked for (an HTTP
// Retry-After). A scheduled channel's next attempt waits at least that long (up to its longest
// step); other channels ignore it.
func RetryAfter(err error, wait time.Duration) error { return &retryAfterError{err, max(wait, 0)} }

type retryAfterError struct {
	err  error
	wait time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RequestedWait is the wait err asks for (RetryAfter), or 0.
func RequestedWait(err error) time.Duration {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		return ra.wait
	}
	return 0
}

// retryWait is how long a message of a channel with schedule waits after its failed attempt
// number attempts; ok is false when the schedule is spent (the message is Failed). jitter is
// in [0, 1).
func retryWait(schedule []time.Duration, attempts int, requested time.Duration, jitter float64) (wait time.Duration, ok bool) {
	if attempts < 1 || attempts > len(schedule) {
		return 0, false
	}
	step := max(schedule[attempts-1], 0)
	wait = step + time.Duration(jitter*float64(step)/5)
	return max(wait, min(requested, slices.Max(schedule))), true
}

// lookupRules reads what channel name declares.
func (d *Distributor) lookupRules(name string) (resends bool, schedule []time.Duration) {
	ch, ok := d.channels.Lookup(name)
	if !ok {
		return false, nil
	}
	if a, ok := ch.(AtLeastOnce); ok {
		resends = a.AtLeastOnce()
	}
	if s, ok := ch.(Scheduled); ok {
		schedule = s.RetrySchedule()
	}
	return resends, schedule
}

// maxAttempts is how many attempts a message with this schedule gets (nil: MaxAttempts).
func (d *Distributor) maxAttempts(schedule []time.Duration) int {
	if schedule == nil {
		return d.cfg.MaxAttempts
	}
	return len(schedule) + 1
}

// rule names the crash rule of a channel, as a trail shows it.
func rule(channel string, resends bool) string {
	if resends {
		return "at-least-once (channel " + channel + ": the receiver deduplicates on the Idempotency-Key)"
	}
	return "at-most-once (channel " + channel + ": a repeat cannot be told apart)"
}

func jitter() float64 { return rand.Float64() }
