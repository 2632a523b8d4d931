package queues

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/lifecycle"
	"github.com/platform/platform/internal/storage"
)

// inflight is one received message and the lease on it. Every request about it goes to the
// physical queue it came from, src, and a poison to src's poison twin.
type inflight struct {
	c       *Consumer
	src     *source
	id      string
	wire    string // the text the queue holds now
	msg     *Message
	log     logrus.FieldLogger
	mu      sync.Mutex
	receipt string
	deleted bool // a delete was sent: renewals stop

	// What Observe is told (settled.go); written by process's goroutine only.
	outcome  Outcome
	handled  bool
	took     time.Duration
	pickedUp time.Time
}

func (c *Consumer) process(handleCtx context.Context, src *source, dm *azqueue.DequeuedMessage) {
	defer c.wg.Done()
	defer func() { <-c.slots }()
	defer c.inFlight.Add(-1)

	wire := ""
	if dm.MessageText != nil {
		wire = *dm.MessageText
	}
	body, st, forged := decodeWire(wire, *dm.MessageID, c.key)
	m := &Message{ID: *dm.MessageID, Body: []byte(body), state: st}
	if dm.DequeueCount != nil {
		m.DequeueCount = *dm.DequeueCount
	}
	if dm.InsertionTime != nil {
		m.InsertedAt = *dm.InsertionTime
	}
	handleCtx, span := c.startProcess(handleCtx, src.name, m) // trace.go: the handler's work is this span's
	defer span.End()
	log := c.log.WithFields(logrus.Fields{"messageId": m.ID, "dequeueCount": m.DequeueCount})
	if src.name != c.cfg.Queue {
		log = log.WithField("physicalQueue", c.client.ns.Queue(src.name))
	}
	f := &inflight{c: c, src: src, id: m.ID, wire: wire, msg: m, receipt: *dm.PopReceipt, pickedUp: time.Now(),
		log: TraceLog(handleCtx, log)}
	defer f.observe()
	if forged {
		f.log.Warn("the message carries retry progress that does not verify (not written by the worker into this message); ignoring it and running every step")
	}

	// Settling (delete, poison, backoff) must finish even when a hard stop cancels handlers.
	settleCtx, cancel := context.WithTimeout(context.WithoutCancel(handleCtx), 30*time.Second)
	defer cancel()
	// The message stays hidden until it is settled, not only while the handler runs: a slow
	// delete or poison must not let it reappear and be handled (or poisoned) a second time.
	stopRenew := f.renewWhileRunning(handleCtx)
	defer stopRenew()

	if limit := c.cfg.MaxUnfinishedDeliveries; m.DequeueCount > int64(limit) {
		// Delivered too often without being settled: the worker died or was stopped each time.
		reason := fmt.Sprintf("delivered %d times, more than the maximum of %d", m.DequeueCount, limit)
		if st.LastError != "" {
			reason += "; last error: " + st.LastError
		} else {
			reason += "; no handler ever finished it (worker stopped or crashed while handling)"
		}
		f.poison(settleCtx, reason)
		return
	}

	if handleCtx.Err() != nil {
		c.late.Add(1) // received after a stop's deadline: its handler sees a cancelled context
	}
	c.handling.Add(1)
	began := time.Now()
	err := c.cfg.Handler(handleCtx, m)
	f.handled, f.took = true, time.Since(began)
	c.handling.Add(-1)
	failed(span, err)

	switch {
	case err == nil:
		f.delete(settleCtx)
	case handleCtx.Err() != nil:
		f.log.Info("handler cancelled by stop; the message will reappear")
	case platform.IsPermanent(err):
		f.poison(settleCtx, err.Error())
	case m.DequeueCount >= int64(c.cfg.MaxDequeueCount):
		f.poison(settleCtx, fmt.Sprintf("failed %d of %d allowed deliveries; last error: %v", m.DequeueCount, c.cfg.MaxDequeueCount, err))
	default:
		stopRenew() // the retry hides the message for its backoff: no renewal may shorten it
		f.retry(settleCtx, err)
	}
}

// renewWhileRunning extends the message's visibility every half timeout until the returned
// func is called (once or more), so a slow handler is never run twice at once. The returned
// func waits for a renewal in progress, so the pop receipt is settled when it returns.
func (f *inflight) renewWhileRunning(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	every := f.c.cfg.VisibilityTimeout / 2
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := f.update(ctx, f.wire, f.c.cfg.VisibilityTimeout); err != nil && ctx.Err() == nil {
					f.log.WithError(err).Warn("visibility renewal failed; another consumer may take the message")
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-exited }) }
}

func (f *inflight) update(ctx context.Context, text string, visibility time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deleted {
		return nil // settled: nothing left to hide
	}
	resp, err := f.src.q.UpdateMessage(ctx, f.id, f.receipt, text, &azqueue.UpdateMessageOptions{
		VisibilityTimeout: to.Ptr(seconds(visibility)),
	})
	if err != nil {
		return storage.Translate(err)
	}
	if resp.PopReceipt != nil {
		f.receipt = *resp.PopReceipt
	}
	f.wire = text
	return nil
}

func (f *inflight) delete(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = true
	f.outcome = cmp.Or(f.outcome, Processed) // poison deletes too, having said so first
	if _, err := f.src.q.DeleteMessage(ctx, f.id, f.receipt, nil); err != nil {
		// The work is done and idempotent. A 404 may mean the delete did happen and only its
		// reply was lost; either way, a message that reappears is handled again, harmlessly.
		f.log.WithError(storage.Translate(err)).Warn("delete after success failed; if the message reappears, handling it again is harmless")
	}
}

func (f *inflight) retry(ctx context.Context, cause error) {
	f.msg.mu.Lock()
	st := retryState{Done: f.msg.state.Done, LastError: cause.Error()}
	f.msg.mu.Unlock()
	delay := backoff(f.c.cfg.RetryBackoff, f.c.cfg.MaxRetryBackoff, f.msg.DequeueCount)
	f.outcome = Retried
	f.log.WithError(cause).WithField("retryIn", delay.Round(time.Millisecond).String()).Warn("handler failed; will retry")
	if err := f.update(ctx, encodeWire(string(f.msg.Body), f.id, st, f.c.key), delay); err != nil {
		f.log.WithError(err).Warn("could not set the retry backoff; the message reappears after its visibility timeout")
	}
}

// poison moves the message to the poison twin of the physical queue it came from, with its
// reason, then deletes it. A crash between the two leaves it in both; the copy in the work
// queue is poisoned again, never lost.
func (f *inflight) poison(ctx context.Context, reason string) {
	c := f.c
	f.outcome = Retried // until it is in the poison queue: left, it reappears and is handled again
	rec := PoisonRecord{
		Reason:     clip(reason, maxReasonLen),
		Queue:      f.src.name,
		Attempts:   f.msg.DequeueCount,
		MessageID:  f.id,
		InsertedAt: f.msg.InsertedAt.UTC(),
		FailedAt:   time.Now().UTC(),
		Host:       c.host,
		Body:       string(f.msg.Body),
	}
	text := marshalCompact(rec)
	if len(text) > MaxMessageBytes {
		name := poisonBodyPrefix(f.src.name) + f.id
		if err := c.client.blobs.Put(ctx, platform.ContainerEventPayloads, name, f.msg.Body); err != nil {
			f.log.WithError(err).Error("could not store the poison body; leaving the message to reappear")
			return
		}
		rec.Body, rec.BodyBlob = "", name
		text = marshalCompact(rec)
	}
	if err := c.client.Enqueue(ctx, platform.PoisonQueue(f.src.name), text, 0); err != nil {
		f.log.WithError(err).Error("could not poison the message; leaving it to reappear")
		return
	}
	f.log.WithField("reason", rec.Reason).Error("message moved to poison queue")
	f.outcome = Poisoned
	f.delete(ctx)
}

// backoff is base·2^(attempt-1), capped, with ±20 % jitter so that retries of a batch that
// failed together do not come back together.
func backoff(base, max time.Duration, attempt int64) time.Duration {
	d := base
	for i := int64(1); i < attempt && d < max; i++ {
		d *= 2
	}
	return lifecycle.Jitter(min(d, max))
}

// seconds rounds d up to whole seconds, the queue service's unit, and at least 1.
func seconds(d time.Duration) int32 {
	return int32(max((d+time.Second-1)/time.Second, 1))
}
