// Package queues owns Platform's Azure Queues: the envelope codec (retry progress, poison
// records), the publisher with its claim-check for large payloads, and the consumer with
// batching, bounded concurrency, visibility renewal, backoff and poison handling. It must not
// know what a message means: handlers decide that, and tell the consumer with their errors.
package queues

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/queueerror"
	"go.opentelemetry.io/otel/trace"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/internal/storage"
)

// MaxMessageBytes is the queue service's limit on one message: 64 KiB of UTF-8 text (counted
// after XML decoding, as the service and Azurite both count it).
const MaxMessageBytes = 64 * 1024

// Client reaches the namespace's queues, and the blob container that holds claim-checked
// payloads and oversized poison bodies.
type Client struct {
	svc     *azqueue.ServiceClient
	ns      platform.Namespace
	blobs   *blobs.Client
	created sync.Map // full queue name → struct{}: known to exist
	shards  int      // shards per work queue (shards.go); 0 is 1

	wakeMu sync.Mutex
	wake   map[string][]waker // physical queue name → idle consumers of this process to nudge

	keyMu sync.Mutex
	key   []byte // signs retry progress (envelope.go); loaded by the first consumer to start

	tracer trace.Tracer // nil: tracing off (trace.go)
}

// progressKey is the key that signs retry progress, read (or made) once per client.
func (c *Client) progressKey(ctx context.Context) ([]byte, error) {
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	if c.key == nil {
		key, err := c.blobs.Key(ctx, "retry-progress")
		if err != nil {
			return nil, fmt.Errorf("retry progress key: %w", err)
		}
		c.key = key
	}
	return c.key, nil
}

// New connects to the account's queue and blob services.
func New(acct storage.Account, ns platform.Namespace) (*Client, error) {
	if err := ns.Validate(); err != nil {
		return nil, err
	}
	opts := &azqueue.ClientOptions{ClientOptions: acct.ClientOptions(storage.Queue)}
	var (
		svc *azqueue.ServiceClient
		err error
	)
	if acct.Keyless() {
		svc, err = azqueue.NewServiceClient(acct.Endpoint(storage.Queue), acct.Credential, opts)
	} else {
		svc, err = azqueue.NewServiceClientFromConnectionString(acct.ResolvedConnectionString(), opts)
	}
	if err != nil {
		return nil, fmt.Errorf("queue client: %w", err)
	}
	b, err := blobs.New(acct, ns)
	if err != nil {
		return nil, err
	}
	return &Client{svc: svc, ns: ns, blobs: b}, nil
}

// Blobs is the blob client that holds claim-checked payloads.
func (c *Client) Blobs() *blobs.Client { return c.blobs }

func (c *Client) queue(name string) *azqueue.QueueClient {
	return c.svc.NewQueueClient(c.ns.Queue(name))
}

// Create creates the named queues (names before the namespace prefix) where missing.
func (c *Client) Create(ctx context.Context, names ...string) error {
	for _, name := range names {
		if err := c.create(ctx, c.ns.Queue(name)); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) create(ctx context.Context, full string) error {
	if _, ok := c.created.Load(full); ok {
		return nil
	}
	if _, err := c.svc.CreateQueue(ctx, full, nil); err != nil && !queueerror.HasCode(err, queueerror.QueueAlreadyExists) {
		return fmt.Errorf("create queue %s: %w", full, storage.Translate(err))
	}
	c.created.Store(full, struct{}{})
	return nil
}

// Enqueue sends text to physical queue name (a work queue's shard is Route's), hidden for delay
// (0: visible at once). Messages never expire: a worker that is down for a week must not lose
// events. The queue is created on first use: the first send to a missing queue pays for
// creating it, later ones ask nothing.
func (c *Client) Enqueue(ctx context.Context, name, text string, delay time.Duration) error {
	_, err := c.enqueue(ctx, name, text, delay)
	return err
}

// enqueue is Enqueue, returning the id the service gave the message.
func (c *Client) enqueue(ctx context.Context, name, text string, delay time.Duration) (id string, err error) {
	if n := len(text); n > MaxMessageBytes {
		return "", fmt.Errorf("enqueue to %s: message of %d bytes is over the %d limit", c.ns.Queue(name), n, MaxMessageBytes)
	}
	q := c.queue(name)
	opts := &azqueue.EnqueueMessageOptions{TimeToLive: to.Ptr[int32](-1)}
	if delay > 0 {
		opts.VisibilityTimeout = to.Ptr(int32(delay.Round(time.Second) / time.Second))
	}
	resp, err := q.EnqueueMessage(ctx, text, opts)
	if queueerror.HasCode(err, queueerror.QueueNotFound) {
		if err = c.create(ctx, c.ns.Queue(name)); err == nil {
			resp, err = q.EnqueueMessage(ctx, text, opts)
		}
	}
	if err != nil {
		return "", fmt.Errorf("enqueue to %s: %w", c.ns.Queue(name), storage.Translate(err))
	}
	if delay <= 0 {
		c.nudge(name)
	}
	if len(resp.Messages) > 0 && resp.Messages[0] != nil && resp.Messages[0].MessageID != nil {
		id = *resp.Messages[0].MessageID
	}
	return id, nil
}

// waker is how a consumer of this process hears of a message sent to one of its physical
// queues: the queue's flag is set, and the consumer's channel told.
type waker struct {
	flag *atomic.Bool
	ch   chan struct{}
}

// nudge wakes this process's idle consumers of physical queue name: a message this process just
// sent is picked up at once instead of after the idle poll interval. Other replicas poll as
// usual.
func (c *Client) nudge(name string) {
	c.wakeMu.Lock()
	defer c.wakeMu.Unlock()
	for _, w := range c.wake[name] {
		w.flag.Store(true)
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
}

// subscribe has nudges of physical queue name set flag and tell ch (buffered).
func (c *Client) subscribe(name string, flag *atomic.Bool, ch chan struct{}) {
	c.wakeMu.Lock()
	defer c.wakeMu.Unlock()
	if c.wake == nil {
		c.wake = map[string][]waker{}
	}
	c.wake[name] = append(c.wake[name], waker{flag, ch})
}

// ApproximateCount is the service's count of messages in queue name, invisible ones (in flight,
// delayed, backing off) included. A missing queue counts 0.
func (c *Client) ApproximateCount(ctx context.Context, name string) (int, error) {
	props, err := c.queue(name).GetProperties(ctx, nil)
	if err != nil {
		if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
			return 0, nil
		}
		return 0, fmt.Errorf("count %s: %w", c.ns.Queue(name), err)
	}
	if props.ApproximateMessagesCount == nil {
		return 0, nil
	}
	return int(*props.ApproximateMessagesCount), nil
}

// OldestAge is how long the first visible message of queue name has been in it (since its first
// enqueue: a retried message keeps its insertion time), by one peek; 0 when none is visible or
// the queue is missing. The service gives insertion times to the second: the age may read up
// to a second more than the truth, never less.
func (c *Client) OldestAge(ctx context.Context, name string) (time.Duration, error) {
	resp, err := c.queue(name).PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr[int32](1)})
	if err != nil {
		if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
			return 0, nil
		}
		return 0, fmt.Errorf("peek %s: %w", c.ns.Queue(name), err)
	}
	if len(resp.Messages) == 0 || resp.Messages[0] == nil || resp.Messages[0].InsertionTime == nil {
		return 0, nil
	}
	return max(time.Since(*resp.Messages[0].InsertionTime), 0), nil
}

// Ping makes one cheap request, to tell whether the queue service answers.
func (c *Client) Ping(ctx context.Context) error {
	pager := c.svc.NewListQueuesPager(&azqueue.ListQueuesOptions{MaxResults: to.Ptr[int32](1)})
	_, err := pager.NextPage(ctx)
	return storage.Translate(err)
}

// DeleteNamespace deletes every queue of the namespace, and its containers. Tests use it to
// clean up; it refuses the empty namespace, which would mean every queue of the account.
func (c *Client) DeleteNamespace(ctx context.Context) error {
	if c.ns == "" {
		return errors.New("delete namespace: refusing the empty namespace")
	}
	prefix := c.ns.Queue("")
	pager := c.svc.NewListQueuesPager(&azqueue.ListQueuesOptions{Prefix: &prefix})
	var errs []error
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return storage.Translate(err)
		}
		for _, q := range page.Queues {
			if q.Name == nil || !strings.HasPrefix(*q.Name, prefix) {
				continue
			}
			if _, err := c.svc.DeleteQueue(ctx, *q.Name, nil); err != nil {
				errs = append(errs, storage.Translate(err))
			}
		}
	}
	errs = append(errs, c.blobs.DeleteNamespace(ctx))
	return errors.Join(errs...)
}
