package queues

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// Message is one queue message as a handler sees it.
type Message struct {
	ID           string
	Body         []byte // the original body, as published (never the retry envelope)
	DequeueCount int64  // 1 on the first delivery
	InsertedAt   time.Time

	mu    sync.Mutex
	state retryState
}

// Done reports whether step already succeeded on an earlier delivery of this message.
func (m *Message) Done(step string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.state.Done {
		if d == step {
			return true
		}
	}
	return false
}

// MarkDone records that step succeeded. If the message is retried, the retry sees Done(step).
func (m *Message) MarkDone(step string) {
	if m.Done(step) {
		return
	}
	m.mu.Lock()
	m.state.Done = append(m.state.Done, step)
	m.mu.Unlock()
}

// Handler processes one message. nil: delete it. An error marked platform.Permanent: poison at
// once. Any other error: retry after a backoff, poison after MaxDequeueCount deliveries. A
// handler must be idempotent: a message is delivered at least once.
type Handler func(ctx context.Context, m *Message) error

// ConsumerConfig configures a Consumer. Zero fields take the defaults their comments give.
type ConsumerConfig struct {
	Queue   string  // required: the queue name before the namespace prefix
	Handler Handler // required

	// BatchSize is the most messages fetched by one dequeue request. Default and maximum 32.
	BatchSize int
	// Concurrency is the most handlers running at once. Default 64: twice a batch, so one
	// batch is fetched while the other is handled.
	Concurrency int
	// VisibilityTimeout hides a fetched message from other consumers; it is renewed every half
	// of it while the handler runs. Default 30s; at least 1s.
	VisibilityTimeout time.Duration
	// MaxDequeueCount: a message that failed this many deliveries goes to poison. Default 5.
	MaxDequeueCount int
	// MaxUnfinishedDeliveries: a message delivered more often than this without its handler
	// ever returning (the worker was killed or stopped each time: a message that crashes it)
	// goes to poison. Default 2 × MaxDequeueCount: deliveries are also spent by replicas
	// killed or redeployed around a healthy message, and by dequeue replies lost on the way.
	MaxUnfinishedDeliveries int
	// RetryBackoff is the delay before the first retry; it doubles each time, with ±20 %
	// jitter, up to MaxRetryBackoff. Defaults 2s and 5m.
	RetryBackoff, MaxRetryBackoff time.Duration
	// PollInterval is the wait after an empty dequeue; it doubles while the queue stays empty,
	// up to MaxPollInterval. Defaults 100ms and 1s.
	PollInterval, MaxPollInterval time.Duration
	// SoftStopTimeout is how long Stop lets in-flight handlers finish when its context has no
	// deadline of its own. Default 30s.
	SoftStopTimeout time.Duration
	// Logger receives the consumer's log lines. Default: logrus's standard logger.
	Logger logrus.FieldLogger
}

func (c *ConsumerConfig) setDefaults() {
	c.BatchSize = cmp.Or(c.BatchSize, 32)
	c.Concurrency = cmp.Or(c.Concurrency, 64)
	c.VisibilityTimeout = cmp.Or(c.VisibilityTimeout, 30*time.Second)
	c.MaxDequeueCount = cmp.Or(c.MaxDequeueCount, 5)
	c.MaxUnfinishedDeliveries = cmp.Or(c.MaxUnfinishedDeliveries, 2*c.MaxDequeueCount)
	c.RetryBackoff = cmp.Or(c.RetryBackoff, 2*time.Second)
	c.MaxRetryBackoff = cmp.Or(c.MaxRetryBackoff, 5*time.Minute)
	c.PollInterval = cmp.Or(c.PollInterval, 100*time.Millisecond)
	c.MaxPollInterval = cmp.Or(c.MaxPollInterval, time.Second)
	c.SoftStopTimeout = cmp.Or(c.SoftStopTimeout, 30*time.Second)
	if c.Logger == nil {
		c.Logger = logrus.StandardLogger()
	}
}

func (c *ConsumerConfig) validate() error {
	switch {
	case c.Queue == "":
		return errors.New("consumer: Queue is required")
	case c.Handler == nil:
		return errors.New("consumer: Handler is required")
	case c.BatchSize < 1 || c.BatchSize > 32:
		return fmt.Errorf("consumer %s: BatchSize %d: want 1-32", c.Queue, c.BatchSize)
	case c.Concurrency < 1:
		return fmt.Errorf("consumer %s: Concurrency %d: want at least 1", c.Queue, c.Concurrency)
	case c.VisibilityTimeout < time.Second || c.VisibilityTimeout > 7*24*time.Hour:
		return fmt.Errorf("consumer %s: VisibilityTimeout %s: want 1s-7d", c.Queue, c.VisibilityTimeout)
	case c.MaxDequeueCount < 1:
		return fmt.Errorf("consumer %s: MaxDequeueCount %d: want at least 1", c.Queue, c.MaxDequeueCount)
	case c.MaxUnfinishedDeliveries < 1:
		return fmt.Errorf("consumer %s: MaxUnfinishedDeliveries %d: want at least 1", c.Queue, c.MaxUnfinishedDeliveries)
	}
	return nil
}

// Consumer fetches messages from one queue and runs a handler on each. Start it once; Stop it
// once or more (Stop before Start is a no-op).
type Consumer struct {
	cfg    ConsumerConfig
	client *Client
	q      *azqueue.QueueClient
	log    logrus.FieldLogger
	host   string

	wake    chan struct{} // a message was just sent to this queue by this process
	slots   chan struct{} // one token per running handler
	fetchAt int           // free slots that make a dequeue worth its request
	wg      sync.WaitGroup

	mu          sync.Mutex
	started     bool
	stopped     bool
	stopFetch   context.CancelFunc
	stopHandles context.CancelFunc
	fetchDone   chan struct{}

	fetching atomic.Int32 // dequeue requests in progress
	inFlight atomic.Int32 // messages received and not yet settled
	received atomic.Int64 // messages received since Start
}

// NewConsumer checks cfg and returns a consumer of cfg.Queue.
func (c *Client) NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return &Consumer{
		cfg:     cfg,
		client:  c,
		q:       c.queue(cfg.Queue),
		log:     cfg.Logger.WithField("queue", c.ns.Queue(cfg.Queue)),
		host:    host,
		wake:    c.subscribe(cfg.Queue),
		slots:   make(chan struct{}, cfg.Concurrency),
		fetchAt: min(cfg.BatchSize, max(1, cfg.Concurrency/2)),
	}, nil
}

// Start creates the queue and its poison twin if missing and starts fetching. It does not
// block.
func (c *Consumer) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return fmt.Errorf("consumer %s: already started", c.cfg.Queue)
	}
	if err := c.client.Create(ctx, c.cfg.Queue, platform.PoisonQueue(c.cfg.Queue)); err != nil {
		return err
	}
	base := context.WithoutCancel(ctx)
	fetchCtx, stopFetch := context.WithCancel(base)
	handleCtx, stopHandles := context.WithCancel(base)
	c.started, c.stopFetch, c.stopHandles = true, stopFetch, stopHandles
	c.fetchDone = make(chan struct{})
	go c.fetchLoop(fetchCtx, handleCtx)
	return nil
}

// Stop stops fetching, lets in-flight handlers finish until ctx ends (or SoftStopTimeout, if
// ctx has no deadline), then cancels them. A cancelled handler's message is left alone: it
// reappears after its visibility timeout, which is the retry. Safe to call twice.
func (c *Consumer) Stop(ctx context.Context) error {
	c.mu.Lock()
	if !c.started || c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	c.mu.Unlock()

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.SoftStopTimeout)
		defer cancel()
	}
	c.stopFetch()
	<-c.fetchDone
	idle := make(chan struct{})
	go func() { c.wg.Wait(); close(idle) }()
	select {
	case <-idle:
		c.stopHandles()
		return nil
	case <-ctx.Done():
		n := c.inFlight.Load()
		c.stopHandles()
		<-idle
		c.log.WithField("abandoned", n).Warn("soft stop timeout: cancelled in-flight handlers; their messages will reappear")
		return nil
	}
}

// Idle reports whether the consumer has no message in hand and no dequeue in progress, and how
// many messages it has received since Start. Drain uses both to tell "empty" from "between".
func (c *Consumer) Idle() (idle bool, received int64) {
	received = c.received.Load()
	return c.fetching.Load() == 0 && c.inFlight.Load() == 0, received
}

func (c *Consumer) fetchLoop(fetchCtx, handleCtx context.Context) {
	defer close(c.fetchDone)
	poll := c.cfg.PollInterval
	for {
		// Fetch when enough slots are free for a good batch, then take every free slot up to a
		// batch. Waiting for half the slots (with Concurrency at twice the batch, a whole batch)
		// keeps dequeues full under load, while the other half keeps working, so the pipeline
		// never runs dry; when idle, every slot is free and a lone message goes at once.
		n := 0
		for n < c.fetchAt {
			select {
			case c.slots <- struct{}{}:
				n++
			case <-fetchCtx.Done():
				for range n {
					<-c.slots
				}
				return
			}
		}
	fill:
		for n < c.cfg.BatchSize {
			select {
			case c.slots <- struct{}{}:
				n++
			default:
				break fill
			}
		}
		msgs, err := c.dequeue(fetchCtx, n)
		for range n - len(msgs) {
			<-c.slots
		}
		if err != nil {
			if fetchCtx.Err() != nil {
				return
			}
			c.log.WithError(err).Warn("dequeue failed; retrying")
			poll = min(poll*2, c.cfg.MaxPollInterval)
		}
		for _, m := range msgs {
			c.wg.Add(1)
			go c.process(handleCtx, m)
		}
		if len(msgs) > 0 {
			poll = c.cfg.PollInterval
			continue
		}
		select {
		case <-time.After(jitter(poll)):
			poll = min(poll*2, c.cfg.MaxPollInterval)
		case <-c.wake:
			poll = c.cfg.PollInterval
		case <-fetchCtx.Done():
			return
		}
	}
}

// dequeue fetches up to n messages. The request itself is not cancelled by Stop: messages the
// service hands out are in flight from that moment and are processed, not dropped on the floor.
func (c *Consumer) dequeue(ctx context.Context, n int) ([]*azqueue.DequeuedMessage, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	c.fetching.Add(1)
	defer c.fetching.Add(-1)
	reqCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	resp, err := c.q.DequeueMessages(reqCtx, &azqueue.DequeueMessagesOptions{
		NumberOfMessages:  to.Ptr(int32(n)),
		VisibilityTimeout: to.Ptr(seconds(c.cfg.VisibilityTimeout)),
	})
	if err != nil {
		return nil, storage.Translate(err)
	}
	var msgs []*azqueue.DequeuedMessage
	for _, m := range resp.Messages {
		if m != nil && m.MessageID != nil && m.PopReceipt != nil {
			msgs = append(msgs, m)
		}
	}
	c.inFlight.Add(int32(len(msgs)))
	c.received.Add(int64(len(msgs)))
	return msgs, nil
}

// inflight is one received message and the lease on it.
type inflight struct {
	c       *Consumer
	id      string
	wire    string // the text the queue holds now
	msg     *Message
	log     logrus.FieldLogger
	mu      sync.Mutex
	receipt string
}

func (c *Consumer) process(handleCtx context.Context, dm *azqueue.DequeuedMessage) {
	defer c.wg.Done()
	defer func() { <-c.slots }()
	defer c.inFlight.Add(-1)

	wire := ""
	if dm.MessageText != nil {
		wire = *dm.MessageText
	}
	body, st := decodeWire(wire)
	m := &Message{ID: *dm.MessageID, Body: []byte(body), state: st}
	if dm.DequeueCount != nil {
		m.DequeueCount = *dm.DequeueCount
	}
	if dm.InsertionTime != nil {
		m.InsertedAt = *dm.InsertionTime
	}
	f := &inflight{c: c, id: m.ID, wire: wire, msg: m, receipt: *dm.PopReceipt,
		log: c.log.WithFields(logrus.Fields{"messageId": m.ID, "dequeueCount": m.DequeueCount})}

	// Settling (delete, poison, backoff) must finish even when a hard stop cancels handlers.
	settleCtx, cancel := context.WithTimeout(context.WithoutCancel(handleCtx), 30*time.Second)
	defer cancel()

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

	stopRenew := f.renewWhileRunning(handleCtx)
	err := c.cfg.Handler(handleCtx, m)
	stopRenew()

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
		f.retry(settleCtx, err)
	}
}

// renewWhileRunning extends the message's visibility every half timeout until the returned
// func is called, so a slow handler is never run twice at once. The returned func waits for a
// renewal in progress, so the pop receipt is settled when it returns.
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
				if err := f.update(ctx, f.wire, f.c.cfg.VisibilityTimeout); err != nil {
					f.log.WithError(err).Warn("visibility renewal failed; another consumer may take the message")
				}
			}
		}
	}()
	return func() { close(done); <-exited }
}

func (f *inflight) update(ctx context.Context, text string, visibility time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp, err := f.c.q.UpdateMessage(ctx, f.id, f.receipt, text, &azqueue.UpdateMessageOptions{
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
	if _, err := f.c.q.DeleteMessage(ctx, f.id, f.receipt, nil); err != nil {
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
	f.log.WithError(cause).WithField("retryIn", delay.Round(time.Millisecond).String()).Warn("handler failed; will retry")
	if err := f.update(ctx, encodeWire(string(f.msg.Body), st), delay); err != nil {
		f.log.WithError(err).Warn("could not set the retry backoff; the message reappears after its visibility timeout")
	}
}

// poison moves the message to the poison queue with its reason, then deletes it. A crash
// between the two leaves it in both; the copy in the work queue is poisoned again, never lost.
func (f *inflight) poison(ctx context.Context, reason string) {
	c := f.c
	rec := PoisonRecord{
		Reason:     clip(reason, maxReasonLen),
		Queue:      c.cfg.Queue,
		Attempts:   f.msg.DequeueCount,
		MessageID:  f.id,
		InsertedAt: f.msg.InsertedAt.UTC(),
		FailedAt:   time.Now().UTC(),
		Host:       c.host,
		Body:       string(f.msg.Body),
	}
	text := marshalCompact(rec)
	if len(text) > MaxMessageBytes {
		name := "poison/" + c.cfg.Queue + "/" + f.id
		if err := c.client.blobs.Put(ctx, platform.ContainerEventPayloads, name, f.msg.Body); err != nil {
			f.log.WithError(err).Error("could not store the poison body; leaving the message to reappear")
			return
		}
		rec.Body, rec.BodyBlob = "", name
		text = marshalCompact(rec)
	}
	if err := c.client.Enqueue(ctx, platform.PoisonQueue(c.cfg.Queue), text, 0); err != nil {
		f.log.WithError(err).Error("could not poison the message; leaving it to reappear")
		return
	}
	f.log.WithField("reason", rec.Reason).Error("message moved to poison queue")
	f.delete(ctx)
}

// backoff is base·2^(attempt-1), capped, with ±20 % jitter so that retries of a batch that
// failed together do not come back together.
func backoff(base, max time.Duration, attempt int64) time.Duration {
	d := base
	for i := int64(1); i < attempt && d < max; i++ {
		d *= 2
	}
	return jitter(min(d, max))
}

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// seconds rounds d up to whole seconds, the queue service's unit, and at least 1.
func seconds(d time.Duration) int32 {
	return int32(max((d+time.Second-1)/time.Second, 1))
}
