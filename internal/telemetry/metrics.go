// Package telemetry is what an operator sees of a running worker: Prometheus metrics (this
// file) on GET /metrics. The host (package worker) observes the concerns through the hooks they
// already offer (a consumer's settle, a job's or message's settle, a send) and records here;
// no concern imports this package, and none imports Prometheus.
//
// Label values are bounded sets: queue names without the namespace, concern and channel names,
// notification type ids (registered in code), states and reason codes. Never a key, an address,
// a URL or a business unit.
package telemetry

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are one worker's instruments, in a registry of their own (not Prometheus's global
// one: two workers in one process, as tests run them, keep two sets).
type Metrics struct {
	Registry *prometheus.Registry

	// Queues: every message a consumer settles.
	QueueMessages   *prometheus.CounterVec   // queue, outcome: processed, retried, poisoned, abandoned
	QueueHandler    *prometheus.HistogramVec // queue: the handler's duration
	QueueWait       *prometheus.HistogramVec // queue: from the first enqueue to pick-up
	QueueDepth      *prometheus.GaugeVec     // queue: approximate messages (sampled by one replica)
	QueueOldestAge  *prometheus.GaugeVec     // queue: age of the oldest visible message (sampled)
	QueueSampleTime prometheus.Gauge         // unix time of the last sample, by whichever replica took it

	// The router: each concern's run on an event.
	ConcernRuns *prometheus.CounterVec // concern, outcome: done, failed, skipped (done before a retry)

	// Notifications.
	JobsCreated      *prometheus.CounterVec   // type, path: hint, mapping, direct, automation
	JobsSettled      *prometheus.CounterVec   // type, state: Generated, Skipped, Failed, Conflict; reason code
	MessagesSettled  *prometheus.CounterVec   // channel, state: Sent, Failed, Unknown, Conflict
	ProviderDuration *prometheus.HistogramVec // channel, result: ok, error
	EffectLatency    *prometheus.HistogramVec // effect: history (from the event's enqueue), email, webhook, endpoint… (a channel: from its message's creation)

	// Webhooks to integrators' endpoints: each delivery attempt's answer.
	WebhookAttempts *prometheus.CounterVec // status_class: 2xx, 3xx, 4xx, 5xx, error

	// The outbox.
	OutboxIntents *prometheus.CounterVec // transition: confirmed, discarded, materialized, parked, settled
	OutboxLeader  prometheus.Gauge       // 1 while this replica holds the materializer's lease

	// Storage: every request the clients send, by kind (storage.Counter's kinds) and status.
	StorageRequests *prometheus.CounterVec // service, kind, status (HTTP status class, or error)
}

// latencyBuckets span a 5 ms handler to a message that waited an hour in a backlog.
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

// New makes the instruments and registers them, with Go's runtime and process collectors.
func New() *Metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "platform", Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "platform", Name: name, Help: help, Buckets: latencyBuckets}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "platform", Name: name, Help: help}, labels)
	}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),

		QueueMessages:  counter("queue_messages_total", "Messages a consumer settled, by queue and outcome: processed (deleted), retried (hidden for its backoff), poisoned (moved to the poison queue), abandoned (cancelled by a stop; it reappears).", "queue", "outcome"),
		QueueHandler:   histogram("queue_handler_seconds", "How long a message's handler ran, by queue.", "queue"),
		QueueWait:      histogram("queue_wait_seconds", "From a message's enqueue to its pick-up, by queue (a retried message counts from its first enqueue).", "queue"),
		QueueDepth:     gauge("queue_depth", "Approximate messages in the queue, visible or not (the service's count), poison queues included; by physical queue (a shard, entity-events-3, with PLATFORM_QUEUE_SHARDS above 1). Sampled every 30 s by the replica holding the sampler's lease.", "queue"),
		QueueOldestAge: gauge("queue_oldest_message_age_seconds", "Age of the oldest visible message in the queue (0 when none is visible). Sampled with platform_queue_depth.", "queue"),
		QueueSampleTime: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "platform", Name: "queue_sample_timestamp_seconds",
			Help: "When this replica last sampled the queues (unix seconds); 0 on replicas that never held the sampler's lease."}),

		ConcernRuns: counter("concern_runs_total", "Each concern's run on an event, by concern and outcome: done, failed (the event is retried, or poisoned when the failure is permanent), skipped (done on an earlier delivery).", "concern", "outcome"),

		JobsCreated:      counter("notification_jobs_created_total", "Notification jobs created, by notification type and path: hint (the event named the type), mapping (a registered mapping), direct (API or CLI), automation (a rule's action). Counted once per job, by the replica that inserted it: a redelivered event or a repeated Idempotency-Key finds its job and does not count again.", "type", "path"),
		JobsSettled:      counter("notification_jobs_settled_total", "Notification jobs that reached a final state, by type, state (Generated, Skipped, Failed, Conflict) and reason code (option-not-seeded, disabled, cancelled, cancelled-by-support, no-recipients, recipients-refused, no-enabled-channel, too-many-recipients, no-generator-handler, no-template, template-error, conflicting-content, other; empty for Generated). A job cancelled by its cancellation key is Skipped with reason cancelled; by hand, cancelled-by-support.", "type", "state", "reason"),
		MessagesSettled:  counter("outgoing_messages_settled_total", "Outgoing messages that reached a final state, by channel and state: Sent, Failed, Unknown (the provider may have it: never resent; support checks), Conflict (different content under its key: never sent). A replayed message counts each time it settles.", "channel", "state"),
		ProviderDuration: histogram("provider_send_seconds", "One send attempt to a channel's provider (SMTP relay, webhook receiver), by channel and result (ok, error). For endpoint deliveries it includes reading the endpoint, the SSRF check and recording its health, besides the POST.", "channel", "result"),
		EffectLatency:    histogram("effect_latency_seconds", "Time to an effect: history from the event's enqueue; a message Sent on a channel (email, webhook, endpoint, …) from the message's creation: a notification's when the generator rendered it (after any delay or sendAt its job waited; add platform_queue_wait_seconds of entity-events and notification-generator for the hops before); an endpoint delivery's when its event was handled; a replayed message's still from then.", "effect"),

		WebhookAttempts: counter("webhook_delivery_attempts_total", "Delivery attempts to integrators' endpoints, by the answer's status class: 2xx, 3xx, 4xx, 5xx, or error (no answer: refused, timed out, blocked by the SSRF rule).", "status_class"),

		OutboxIntents: counter("outbox_intents_total", "Outbox intents by transition: confirmed, discarded (by the service: the API, the CLI, a transactional write; again is not another), materialized (published by the materializer), parked (never publishable: left for support), settled (by the reconciler: confirmed or discarded after going stale). Counted by the process that made the transition.", "transition"),
		OutboxLeader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "platform", Name: "outbox_materializer_leader",
			Help: "1 while this replica holds the outbox materializer's lease, else 0. Reported only by replicas that run the outbox loops (the api role): absent means none is seen; the sum should be 1."}),

		StorageRequests: counter("storage_requests_total", "Requests sent to the storage account, by service, kind (queue.enqueue, queue.dequeue, queue.dequeue.empty, table.write, table.batch, …) and status (2xx, 3xx, 4xx, 5xx, error: no answer).", "service", "kind", "status"),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.QueueMessages, m.QueueHandler, m.QueueWait, m.QueueDepth, m.QueueOldestAge, m.QueueSampleTime,
		m.ConcernRuns, m.JobsCreated, m.JobsSettled, m.MessagesSettled, m.ProviderDuration, m.EffectLatency,
		m.WebhookAttempts, m.OutboxIntents, m.OutboxLeader, m.StorageRequests,
	)
	return m
}

// Handler serves the registry in Prometheus's text (or OpenMetrics) format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry, EnableOpenMetrics: true})
}

// StatusClass is an HTTP status as a bounded label: "2xx" … "5xx", or "error" for no answer.
func StatusClass(status int, err error) string {
	switch {
	case status >= 200 && status < 600:
		return [...]string{"2xx", "3xx", "4xx", "5xx"}[status/100-2]
	case err != nil || status == 0:
		return "error"
	}
	return "other"
}
