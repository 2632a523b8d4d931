package queues

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/lifecycle"
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
	// DiscoverEvery is how often the consumer lists the namespace's queues for physical queues
	// of its work queue outside the current shards (sources.go), to drain them; the first time
	// at Start. Default 1m.
	DiscoverEvery time.Duration
	// SoftStopTimeout is how long Stop lets in-flight handlers finish when its context has no
	// deadline of its own. Default 30s.
	SoftStopTimeout time.Duration
	// Logger receives the consumer's log lines. Default: logrus's standard logger.
	Logger logrus.FieldLogger
	// Observe, when set, is told of each message received, once it is settled (processed,
	// retried, poisoned, or abandoned by a stop), before the consumer counts it out of flight.
	// It runs on the message's goroutine: it must be quick. The worker records metrics with
	// it. Default: nil, off.
	Observe func(Settled)
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
	c.DiscoverEvery = cmp.Or(c.DiscoverEvery, time.Minute)
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

// Consumer fetches messages from one work queue, all of its physical queues (sources.go), and
// runs a handler on each. Start it once; Stop it once or more (Stop before Start is a no-op).
type Consumer struct {
	cfg    ConsumerConfig
	client *Client
	log    logrus.FieldLogger
	host   string

	srcMu      sync.Mutex // guards sources; only the fetch loop (and Start, before it) changes them
	sources    []*source
	next       int       // round-robin: the source after the last picked (fetch loop only)
	discoverAt time.Time // the next discovery (fetch loop only)

	wake    chan struct{} // a message was just sent to one of the sources by this process
	slots   chan struct{} // one token per running handler
	fetchAt int           // free slots that make a dequeue worth its request
	wg      sync.WaitGroup

	mu          sync.Mutex
	started     bool
	stopped     bool
	fetcher     *lifecycle.Task
	stopHandles context.CancelFunc
	stopDequeue context.CancelFunc

	fetching atomic.Int32 // dequeue requests in progress
	inFlight atomic.Int32 // messages received and not yet settled
	key      []byte       // signs retry progress (envelope.go)
	handling atomic.Int32 // handlers running (received, not yet returned: settling excluded)
	late     atomic.Int32 // messages received after a stop's deadline: left as they came
	received atomic.Int64 // messages received since Start
}

// NewConsumer checks cfg and returns a consumer of cfg.Queue.
func (c *Client) NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	cons := &Consumer{
		cfg:     cfg,
		client:  c,
		log:     cfg.Logger.WithField("queue", c.ns.Queue(cfg.Queue)),
		host:    host,
		wake:    make(chan struct{}, 1),
		slots:   make(chan struct{}, cfg.Concurrency),
		fetchAt: min(cfg.BatchSize, max(1, cfg.Concurrency/2)),
	}
	for _, name := range c.Current(cfg.Queue) {
		cons.sources = append(cons.sources, cons.newSource(name, false))
	}
	return cons, nil
}

// Start creates the current shards of the queue and their poison twins where missing, finds
// the queue's other physical queues (to drain them), and starts fetching. It does not block. A
// consumer runs once: Start after Start or after Stop is an error.
func (c *Consumer) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stopped:
		return fmt.Errorf("consumer %s: stopped; it runs once", c.cfg.Queue)
	case c.started:
		return fmt.Errorf("consumer %s: already started", c.cfg.Queue)
	}
	for _, name := range c.client.Current(c.cfg.Queue) {
		if err := c.client.Create(ctx, name, platform.PoisonQueue(name)); err != nil {
			return err
		}
	}
	if err := c.discover(ctx); err != nil {
		return fmt.Errorf("consumer %s: %w", c.cfg.Queue, err)
	}
	key, err := c.client.progressKey(ctx)
	if err != nil {
		return err
	}
	c.key = key
	// Fetching and handling have contexts of their own: Stop ends fetching at once, and
	// handling only when its deadline passes.
	handleCtx, stopHandles := context.WithCancel(context.WithoutCancel(ctx))
	dequeueCtx, stopDequeue := context.WithCancel(context.WithoutCancel(ctx))
	c.fetcher = lifecycle.Go("consumer "+c.cfg.Queue, func(fetchCtx context.Context) { c.fetchLoop(fetchCtx, dequeueCtx, handleCtx) })
	if err := c.fetcher.Start(ctx); err != nil {
		stopHandles()
		stopDequeue()
		return err
	}
	c.started, c.stopHandles, c.stopDequeue = true, stopHandles, stopDequeue
	return nil
}

// Stop stops fetching, lets in-flight handlers finish until ctx ends (or SoftStopTimeout, if
// ctx has no deadline), then cancels them and waits for them to return. A cancelled handler's
// message is left alone: it reappears after its visibility timeout, which is the retry. Stop
// then returns an error wrapping lifecycle.ErrAbandoned that says how many were cancelled.
// Safe to call twice, and before Start.
func (c *Consumer) Stop(ctx context.Context) error {
	c.mu.Lock()
	started, stopped := c.started, c.stopped
	c.stopped = true
	c.mu.Unlock()
	if !started || stopped {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.SoftStopTimeout)
		defer cancel()
	}
	// cut cancels what is still running (handlers, and a dequeue in flight), once, counting
	// the handlers it cuts short: that is what the stop abandoned, whatever they then do (a
	// send cut short may still record its message as Unknown).
	cut, dequeueCut, abandoned := false, false, int32(0)
	cutNow := func() {
		if !cut {
			cut, abandoned = true, c.handling.Load()
			c.stopHandles()
		}
	}
	// The fetch loop returns at once when cancelled, but a dequeue in progress finishes first:
	// what it receives is in flight, and handled like the rest (after the deadline, handled
	// with a cancelled context: left, and counted as abandoned). A dequeue that is still not
	// back CancelGrace after the deadline is cancelled: what it held is unknown. Where two
	// things are ready at once, what finished wins.
	c.fetcher.Cancel()
	select {
	case <-c.fetcher.Done():
	case <-ctx.Done():
		select {
		case <-c.fetcher.Done():
		default:
			cutNow()
			select {
			case <-c.fetcher.Done():
			case <-time.After(lifecycle.CancelGrace):
				dequeueCut = true
				c.stopDequeue()
				<-c.fetcher.Done()
			}
		}
	}
	c.stopDequeue()
	// Only now is the count of handlers final.
	stillRunning := int32(0)
	handlers := lifecycle.Done(&c.wg)
	select {
	case <-handlers:
	case <-ctx.Done():
		select {
		case <-handlers:
		default:
			cutNow()
			select {
			case <-handlers:
			case <-time.After(lifecycle.CancelGrace):
				stillRunning = c.handling.Load()
			}
		}
	}
	c.stopHandles()
	fetchErr := c.fetcher.Stop(ctx) // joined already: this only settles its state
	abandoned += c.late.Load()
	if !cut || (abandoned == 0 && !dequeueCut) {
		return fetchErr
	}
	c.log.WithFields(logrus.Fields{"abandoned": abandoned, "dequeueCancelled": dequeueCut}).
		Warn("stop deadline passed: cancelled in-flight work; messages not settled will reappear after their visibility timeout")
	what := fmt.Sprintf("%d in-flight handler(s) cancelled", abandoned)
	if dequeueCut {
		what += " and a dequeue in flight cancelled"
	}
	err := fmt.Errorf("consumer %s: %s at the stop deadline (a message its handler did not settle reappears after the visibility timeout): %w",
		c.cfg.Queue, what, lifecycle.ErrAbandoned)
	if stillRunning > 0 {
		err = fmt.Errorf("%w; %d still running %s after being cancelled", err, stillRunning, lifecycle.CancelGrace)
	}
	return errors.Join(err, fetchErr)
}

// Queue is the name of the work queue c consumes, before the namespace prefix (Queues are its
// physical queues).
func (c *Consumer) Queue() string { return c.cfg.Queue }

// Idle reports whether the consumer has no message in hand and no dequeue in progress, and how
// many messages it has received since Start. Drain uses both to tell "empty" from "between".
func (c *Consumer) Idle() (idle bool, received int64) {
	received = c.received.Load()
	return c.fetching.Load() == 0 && c.inFlight.Load() == 0, received
}

func (c *Consumer) fetchLoop(fetchCtx, dequeueCtx, handleCtx context.Context) {
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
		src := c.due(fetchCtx)
		if src == nil {
			for range n {
				<-c.slots
			}
			return
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
		msgs, err := c.dequeue(fetchCtx, dequeueCtx, src, n)
		for range n - len(msgs) {
			<-c.slots
		}
		if err != nil {
			if fetchCtx.Err() != nil {
				return
			}
			c.log.WithError(err).WithField("physicalQueue", c.client.ns.Queue(src.name)).Warn("dequeue failed; retrying")
		}
		for _, m := range msgs {
			c.wg.Add(1)
			go c.process(handleCtx, src, m)
		}
		c.dequeued(src, len(msgs), err)
	}
}

// due waits for a source to be due (sources.go) and returns it; nil when fetching stops. It
// discovers the work queue's physical queues again when their time comes.
func (c *Consumer) due(fetchCtx context.Context) *source {
	for {
		now := time.Now()
		if !now.Before(c.discoverAt) {
			if err := c.discover(fetchCtx); err != nil && fetchCtx.Err() == nil {
				c.log.WithError(err).Warn("consumer: could not list the queues to find retired shards; trying again later")
			}
			now = time.Now()
		}
		src, wait := c.pick(now)
		if src != nil {
			return src
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.wake:
			t.Stop()
		case <-fetchCtx.Done():
			t.Stop()
			return nil
		}
	}
}

// dequeue fetches up to n messages from src. The request is not cancelled when fetching stops:
// messages the service hands out are in flight from that moment and are handled, not dropped
// on the floor. Only a hard stop that it outlives cancels it (dequeueCtx).
func (c *Consumer) dequeue(fetchCtx, dequeueCtx context.Context, src *source, n int) ([]*azqueue.DequeuedMessage, error) {
	if fetchCtx.Err() != nil {
		return nil, fetchCtx.Err()
	}
	c.fetching.Add(1)
	defer c.fetching.Add(-1)
	reqCtx, cancel := context.WithTimeout(dequeueCtx, 30*time.Second)
	defer cancel()
	resp, err := src.q.DequeueMessages(reqCtx, &azqueue.DequeueMessagesOptions{
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
