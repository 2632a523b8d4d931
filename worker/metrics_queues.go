package worker

import (
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/telemetry"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/worker/history"
	"github.com/prometheus/client_golang/prometheus"
)

// The host's metrics of the queues, the router and storage: the consumers, the router and the
// storage pipeline each offer a hook, and these functions record what the hooks tell into
// telemetry.Metrics. Every label is a bounded set: queue names without the namespace, concern
// names, outcomes, request kinds and status classes.

// observeQueue returns the queues.ConsumerConfig.Observe of queue's consumer, having zeroed
// the queue's series for every outcome.
func (w *Worker) observeQueue(queue string) func(queues.Settled) {
	m := w.cfg.Metrics
	for _, o := range queues.Outcomes {
		m.QueueMessages.WithLabelValues(queue, string(o))
	}
	m.QueueHandler.WithLabelValues(queue)
	m.QueueWait.WithLabelValues(queue)
	return w.queueSettled
}

// queueSettled records a message a consumer settled.
func (w *Worker) queueSettled(s queues.Settled) {
	m := w.cfg.Metrics
	m.QueueMessages.WithLabelValues(s.Queue, string(s.Outcome)).Inc()
	if s.Handled {
		m.QueueHandler.WithLabelValues(s.Queue).Observe(s.Took.Seconds())
	}
	if !s.InsertedAt.IsZero() {
		// Insertion times come to the second: never a negative wait.
		m.QueueWait.WithLabelValues(s.Queue).Observe(max(s.PickedUp.Sub(s.InsertedAt), 0).Seconds())
	}
}

// observeRouter records each concern's run on an event, and the history concern's latency
// from the event's enqueue. It zeroes every concern's outcomes, so that a dashboard sees 0, not
// nothing, before the first event.
func (w *Worker) observeRouter(r *Router) {
	m := w.cfg.Metrics
	historyConcern := ""
	for _, p := range r.processors {
		if _, ok := p.(*history.Processor); ok {
			historyConcern = p.Name()
		}
		for _, outcome := range []string{runDone, runFailed, runSkipped} {
			m.ConcernRuns.WithLabelValues(p.Name(), outcome)
		}
	}
	if w.cfg.Roles.consumes(platform.QueueEntityEvents) {
		m.EffectLatency.WithLabelValues("history")
	}
	r.ran = func(msg *queues.Message, concern, outcome string) {
		m.ConcernRuns.WithLabelValues(concern, outcome).Inc()
		if concern == historyConcern && outcome == runDone && !msg.InsertedAt.IsZero() {
			m.EffectLatency.WithLabelValues("history").Observe(max(time.Since(msg.InsertedAt), 0).Seconds())
		}
	}
}

// storageKinds are the request kinds each service's requests come in (storage.Counter's).
var storageKinds = map[storage.Service][]string{
	storage.Queue: {storage.KindEnqueue, storage.KindDequeue, storage.KindDequeueEmpty, storage.KindPeek, storage.KindUpdate, storage.KindDelete, storage.KindQueueAdmin},
	storage.Table: {storage.KindTableRead, storage.KindTableWrite, storage.KindTableBatch, storage.KindTableAdmin},
	storage.Blob:  {storage.KindBlob},
}

// observeStorage returns the storage.Account.Observe that records every request the clients
// send, and then tells next (the caller's own observer, if any). It zeroes each kind's usual
// statuses.
func observeStorage(m *telemetry.Metrics, next func(storage.Service, string, int, error)) func(storage.Service, string, int, error) {
	// Every request is counted: its usual series are looked up once, here, not per request
	// (prometheus hashes the label values on each lookup). The map is only read from now on.
	type series struct {
		service     storage.Service
		kind, class string
	}
	counters := map[series]prometheus.Counter{}
	for service, kinds := range storageKinds {
		for _, kind := range kinds {
			for _, class := range []string{"2xx", "4xx", "5xx", "error"} {
				counters[series{service, kind, class}] = m.StorageRequests.WithLabelValues(string(service), kind, class)
			}
		}
	}
	return func(service storage.Service, kind string, status int, err error) {
		class := telemetry.StatusClass(status, err)
		if c, ok := counters[series{service, kind, class}]; ok {
			c.Inc()
		} else {
			m.StorageRequests.WithLabelValues(string(service), kind, class).Inc()
		}
		if next != nil {
			next(service, kind, status, err)
		}
	}
}
