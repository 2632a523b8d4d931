package worker

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/internal/lifecycle"
	"github.com/platform/platform/internal/telemetry"
	"github.com/platform/platform/queues"
)

// samplerLease is the queue sampler's leader lease, on blob leases/queue-sampler: the service's
// longest finite lease, so that a sample every 30 s (±20 %) renews it well before it ends.
const samplerLease = 60 * time.Second

// queueSampler samples the depth of every physical work queue and poison queue (each shard and
// its twin, and the queues of another shard count that still exist), and the age of each one's
// oldest visible message, into the metrics, labelled with the physical queue's name. One
// replica samples at a time, whichever holds the lease; any role may (every role reaches the
// queues), and a dead sampler is replaced within the lease. Cost every QueueSampleEvery (30 s):
// on the sampler, one listing of the namespace's queues, one count per queue (10 per shard),
// one peek per queue that is not empty, and the lease's renewal, so 12 requests when idle with
// one shard and at most 22 (10N + 2 and 20N + 2 with N shards); on every other replica, one
// attempt to take the lease.
type queueSampler struct {
	every   time.Duration
	queues  *queues.Client
	blobs   *blobs.Client
	metrics *telemetry.Metrics
	log     logrus.FieldLogger

	// Only the sampler's goroutine uses these.
	lease   *blobs.Lease
	held    bool
	renewed time.Time
	sampled map[string]bool // the queues of the last sample: a queue gone since loses its series
}

// queueSampler is the sampler's component: a no-op when Config.QueueSampleEvery is negative.
func (w *Worker) queueSampler() lifecycle.Component {
	if w.cfg.QueueSampleEvery < 0 {
		return lifecycle.Funcs("queue sampler", nil, nil)
	}
	s := &queueSampler{every: cmp.Or(w.cfg.QueueSampleEvery, 30*time.Second), queues: w.queues, blobs: w.blobs,
		metrics: w.cfg.Metrics, log: w.log.WithField("component", "queue sampler")}
	return lifecycle.Go("queue sampler", s.run)
}

// run samples every interval while it holds the lease, the first time after one interval: a
// fleet deployed at once does not race for the lease at start, and a worker that lives less
// long (a command, a test) asks nothing.
func (s *queueSampler) run(ctx context.Context) {
	defer s.resign()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(lifecycle.Jitter(s.every)):
		}
		if s.hold(ctx) {
			s.sample(ctx)
		}
	}
}

// hold takes the lease if nobody holds it, or renews it once a third of it has passed, and
// reports whether this replica samples, with time left on its lease.
func (s *queueSampler) hold(ctx context.Context) bool {
	if s.lease == nil {
		l, err := s.blobs.NewLease(ctx, "queue-sampler", samplerLease)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WithError(err).Warn("queue sampler: lease unavailable")
			}
			return false
		}
		s.lease = l
	}
	switch {
	case !s.held:
		ok, err := s.lease.Acquire(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.WithError(err).Warn("queue sampler: acquire lease")
		}
		if ok {
			s.held, s.renewed = true, time.Now()
			s.log.Info("queue sampler: this replica samples the queues")
		}
	case time.Since(s.renewed) >= samplerLease/3:
		if err := s.lease.Renew(ctx); err != nil {
			if ctx.Err() == nil {
				s.log.WithError(err).Warn("queue sampler lost its lease")
			}
			s.lost()
		} else {
			s.renewed = time.Now()
		}
	}
	return s.held && time.Since(s.renewed) < samplerLease*2/3
}

// lost forgets the lease and the gauges: only the sampler reports depth and age, so that a
// sum or max over replicas is the queue's.
func (s *queueSampler) lost() {
	s.held, s.sampled = false, nil
	s.metrics.QueueDepth.Reset()
	s.metrics.QueueOldestAge.Reset()
}

// resign gives the lease up at stop, so that another replica samples at its next interval
// instead of after the lease runs out.
func (s *queueSampler) resign() {
	if !s.held {
		return
	}
	// Bounded short: with storage unreachable, a stop must not wait out the SDK's retries here.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.lease.Release(ctx); err != nil {
		s.log.WithError(err).Warn("queue sampler: release lease (another replica takes it when it runs out)")
	}
	s.lost()
}

// sample reads each queue's count and, where it is not empty, its first visible message's age.
// The sample time moves only when every queue was read, so a stale one says the samples fail.
func (s *queueSampler) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, samplerLease/3)
	defer cancel()
	complete := true
	set, err := s.queues.WorkQueues(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.WithError(err).Warn("queue sampler: could not list the queues; sampling the current shards only")
		}
		complete, set = false, queues.WorkQueueSet{}
		for _, work := range platform.WorkQueues {
			current := s.queues.Current(work)
			set[work] = queues.PhysicalQueues{Queues: current, Poisoned: current}
		}
	}
	seen := map[string]bool{}
	for _, work := range platform.WorkQueues {
		names := slices.Clone(set[work].Queues)
		for _, q := range set[work].Poisoned {
			names = append(names, platform.PoisonQueue(q))
		}
		for _, q := range names {
			seen[q] = true
			n, err := s.queues.ApproximateCount(ctx, q)
			var age time.Duration
			if err == nil && n > 0 {
				age, err = s.queues.OldestAge(ctx, q)
			}
			if err != nil {
				if ctx.Err() == nil {
					s.log.WithError(err).WithField("queue", q).Warn("queue sampler: could not sample the queue")
				}
				complete = false
				continue
			}
			s.metrics.QueueDepth.WithLabelValues(q).Set(float64(n))
			s.metrics.QueueOldestAge.WithLabelValues(q).Set(age.Seconds())
		}
	}
	for q := range s.sampled {
		if !seen[q] {
			s.metrics.QueueDepth.DeleteLabelValues(q)
			s.metrics.QueueOldestAge.DeleteLabelValues(q)
		}
	}
	s.sampled = seen
	if complete {
		s.metrics.QueueSampleTime.SetToCurrentTime()
	}
}
