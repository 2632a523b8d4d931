package queues

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/lifecycle"
)

// A consumer reads every physical queue of its work queue (shards.go): its sources. Dequeues
// go round-robin over the sources that are due, and each source has its own idle backoff: one
// that answered with messages is due again at once, an empty one after PollInterval, doubling
// up to MaxPollInterval. So a busy shard is dequeued as often as the free slots allow, and an
// idle one costs one dequeue per MaxPollInterval, whatever the others do. The slots (handlers
// running) are the consumer's, shared by every source.
//
// A retired source (a queue of the work queue outside the current shards: the unsharded name
// after a change to N > 1, a shard of an earlier N) is drained the same way, and parked once a
// dequeue finds it empty: it is not asked again until the next discovery (DiscoverEvery), or
// until this process sends to it. So a retired queue costs one dequeue per discovery once
// drained, and a message sent to it late (a publisher still on the old N, a redrive to the
// shard it came from) waits at most one discovery interval.

// source is one physical queue a consumer reads. The fetch loop alone reads and writes its
// fields, but nudged.
type source struct {
	name    string // before the namespace prefix
	q       *azqueue.QueueClient
	retired bool          // not among the current shards: drained, never sent to by this process's publishers
	poll    time.Duration // the wait after its next empty dequeue
	due     time.Time     // not dequeued before
	parked  bool          // retired and found empty: not dequeued until discovered again or nudged
	nudged  atomic.Bool   // this process just sent it a message
}

func (c *Consumer) newSource(name string, retired bool) *source {
	s := &source{name: name, q: c.client.queue(name), retired: retired, poll: c.cfg.PollInterval}
	c.client.subscribe(name, &s.nudged, c.wake)
	return s
}

// Queues are the physical queues the consumer reads now (before the namespace prefix): its
// current shards, then the retired queues it found.
func (c *Consumer) Queues() []string {
	c.srcMu.Lock()
	defer c.srcMu.Unlock()
	out := make([]string, len(c.sources))
	for i, s := range c.sources {
		out[i] = s.name
	}
	return out
}

// discover lists the work queue's physical queues and adds those it does not read yet, as
// retired sources; a retired source it reads and finds again is due at once (something may
// have come), one no longer there is dropped.
func (c *Consumer) discover(ctx context.Context) error {
	found, err := c.client.listWork(ctx, c.client.ns.Queue(c.cfg.Queue))
	c.discoverAt = time.Now().Add(lifecycle.Jitter(c.cfg.DiscoverEvery))
	if err != nil {
		return err
	}
	names := found[c.cfg.Queue].work
	c.srcMu.Lock()
	defer c.srcMu.Unlock()
	kept := make([]*source, 0, len(c.sources)+len(names))
	for _, s := range c.sources {
		switch {
		case !s.retired:
		case slices.Contains(names, s.name):
			s.parked, s.due = false, time.Time{}
		default:
			continue // deleted
		}
		kept = append(kept, s)
	}
	for _, name := range names {
		if !slices.ContainsFunc(kept, func(s *source) bool { return s.name == name }) {
			c.log.WithField("physicalQueue", c.client.ns.Queue(name)).Info("consumer: draining a queue of this work queue outside the current shards")
			kept = append(kept, c.newSource(name, true))
		}
	}
	c.sources = kept
	return nil
}

// pick is the source to dequeue from at now: the first due one after the last picked,
// round-robin. When none is due, it returns how long until one is, or until the next
// discovery.
func (c *Consumer) pick(now time.Time) (*source, time.Duration) {
	wait := c.discoverAt.Sub(now)
	n := len(c.sources)
	for i := range n {
		s := c.sources[(c.next+i)%n]
		if s.nudged.Swap(false) {
			s.parked, s.due, s.poll = false, time.Time{}, c.cfg.PollInterval
		}
		if s.parked {
			continue
		}
		if !s.due.After(now) {
			c.next = (c.next + i + 1) % n
			return s, 0
		}
		wait = min(wait, s.due.Sub(now))
	}
	return nil, max(wait, 0)
}

// dequeued sets s's next turn after a dequeue that got some messages or none (or failed).
func (c *Consumer) dequeued(s *source, got int, err error) {
	now := time.Now()
	if got > 0 {
		s.poll, s.due = c.cfg.PollInterval, now
		return
	}
	s.due = now.Add(lifecycle.Jitter(s.poll))
	s.poll = min(s.poll*2, c.cfg.MaxPollInterval)
	if s.retired && err == nil {
		s.parked = true
	}
	if s.retired && errors.Is(err, platform.ErrNotFound) {
		s.parked = true // deleted: the next discovery drops it
	}
}
