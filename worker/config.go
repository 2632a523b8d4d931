package worker

import (
	"time"

	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel/trace"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/internal/lifecycle"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/telemetry"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/worker/api"
	"github.com/platform/platform/worker/automations"
	"github.com/platform/platform/worker/channels"
	"github.com/platform/platform/worker/delivery"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/outbox"
	"github.com/platform/platform/worker/realtime"
	"github.com/platform/platform/worker/runs"
	"github.com/platform/platform/worker/webhooks"
)

// Config configures a Worker. Zero fields take the defaults their comments give.
type Config struct {
	// Account is the storage account. Default: Azurite's development account.
	Account storage.Account
	// Namespace prefixes every queue, table and container. Default: none.
	Namespace platform.Namespace
	// Logger receives the worker's log lines. Default: logrus's standard logger.
	Logger logrus.FieldLogger

	// Metrics are the worker's Prometheus instruments, served on GET /metrics (role support)
	// and on MetricsAddr. Default: a registry of the worker's own.
	Metrics *telemetry.Metrics
	// MetricsAddr is a listener of its own for GET /metrics, without authentication, for a
	// scraper beside the worker (PLATFORM_METRICS_ADDR, e.g. 127.0.0.1:9090). Default: none.
	MetricsAddr string
	// QueueSampleEvery is how often the replica holding the queue sampler's lease samples the
	// depth and oldest message's age of every work and poison queue into Metrics (first after
	// one interval). Over 40s, the lease may pass between replicas from one sample to the next.
	// Default 30s; negative: never.
	QueueSampleEvery time.Duration
	// TracerProvider makes the worker trace (OpenTelemetry): every message it writes carries
	// its publish span's traceparent, and each hop's handling is a child of it (queues,
	// "Traces"); the host flushes it when it stops, last. The caller owns it (shuts it down).
	// Default: nil, tracing off, at no cost: no span, and messages as they were without.
	TracerProvider trace.TracerProvider

	// Roles are the parts of the worker this process runs (PLATFORM_ROLE): the queues it
	// consumes, and whether it serves the API and runs the outbox loops (RoleAPI). A process
	// without RoleAPI still serves /healthz and /readyz on HTTPAddr, and nothing else, so it
	// needs no Auth on any address. Default: every role.
	Roles RoleSet

	// HTTPAddr is where the HTTP API listens (host:port; port 0 picks a free one, and HTTPAddr
	// says which). Default: no server of the worker's own (serve Handler yourself).
	HTTPAddr string
	// HTTPShutdownTimeout is how long requests still open get once the worker has stopped its
	// work; then their connections are closed. Default 5s.
	HTTPShutdownTimeout time.Duration
	// HTTPTimeout bounds reading a request and writing its answer (change streams excepted:
	// each of their writes has its own deadline); headers must come within 10 s, an idle
	// connection is closed after 2 minutes. Default 30s.
	HTTPTimeout time.Duration
	// Auth is how API requests prove who they are (PLATFORM_AUTH_*). Default: off, which New
	// allows only with an HTTPAddr on loopback.
	Auth auth.Config
	// APILimits bound job creation per principal and change streams. Defaults: api.Limits'.
	APILimits api.Limits

	// Automations tunes the automation rules (cache, loop guard cap, auto-disable). Defaults:
	// automations.Config's.
	Automations automations.Config

	// QueueShards spreads each work queue over this many queues, its shards (platform.QueueShards,
	// PLATFORM_QUEUE_SHARDS): messages are sent to the shard of their key's hash, and each
	// consumer reads every shard, and drains the work queue's other queues it finds (those of
	// another shard count). 1-platform.MaxQueueShards; New refuses another (an input error).
	// Default 1: the unsharded names.
	QueueShards int

	// Consumer tunes the consumers of the work queues (batch, concurrency, visibility,
	// retries); Queue, Handler, Logger and Observe are set by the worker. Defaults: queues.ConsumerConfig's.
	Consumer queues.ConsumerConfig
	// History maps event types to timeline rows. Default: the example domain of
	// mappings.RegisterExampleHistory.
	History *mappings.HistoryRegistry
	// MaxRelated is how many timelines besides its own one event may write; an event over it is
	// poisoned with its reason before its first row (PLATFORM_MAX_RELATED). Default:
	// history.DefaultMaxRelated (100).
	MaxRelated int
	// MaxPayloadBytes is the largest event payload, inline or claim-checked, published or read:
	// a larger one is refused on publish and poisoned on the queue, a claim-checked blob is never
	// read past it, and one timeline page carries at most history.PagePayloads times it
	// (PLATFORM_MAX_PAYLOAD_BYTES). Default: platform.DefaultMaxPayloadBytes (1 MiB).
	MaxPayloadBytes int
	// NotificationTypes are the notification types, each registered once; New refuses a type
	// without a renderer, on both paths, or registered twice. Default:
	// mappings.ExampleNotifications.
	NotificationTypes []mappings.NotificationType
	// PostProcessors are further concerns, run on each event with the built-in ones.
	PostProcessors []PostProcessor

	// SettingsDSN is the notification settings database: a SQLite file, or postgres://….
	// Default: settings.DefaultDSN.
	SettingsDSN string
	// SettingsCacheTTL is how long a replica keeps a notification option and its subscribers
	// once read (settings.Cache): a change made in the database is seen within it, or at once
	// after `platform settings changed` (settings.SignalTopic, within a change-bus poll).
	// PLATFORM_SETTINGS_CACHE_TTL. Default settings.DefaultCacheTTL (5s); negative: no cache.
	SettingsCacheTTL time.Duration
	// Notify tunes the notification stages (holds, template cache).
	Notify notify.Config
	// Delivery tunes the distributor (send lease, attempts).
	Delivery delivery.Config
	// SMTP sends email (channel "email"); nil writes email to the log instead (local
	// development).
	SMTP *channels.SMTPConfig
	// WebhookSecret is the key each webhook-channel recipient's signing secret is derived from
	// (webhooks.RecipientSecret). Default: unsigned is refused, so a webhook recipient without
	// a secret fails permanently.
	WebhookSecret string
	// WebhookAllowlist lists the hosts and CIDRs that webhooks may target although they are
	// not globally routable unicast addresses (PLATFORM_WEBHOOK_ALLOWLIST). Default: none.
	WebhookAllowlist []string
	// Webhooks tunes deliveries to integrators' endpoints (the endpoint cache, the retry
	// schedule, auto-disable).
	Webhooks webhooks.Config
	// Channels are further delivery channels, by the name recipients and
	// NotificationOption.Channels use; a name of a built-in channel (email, webhook, endpoint)
	// is refused.
	Channels map[string]delivery.Channel
	// Outbox tunes the event substrate (materializer, reconciler, scan-repair).
	Outbox outbox.Config
	// Realtime tunes the change stream (GET /v1/changes).
	Realtime realtime.Config
	// Agents execute agent runs, by name (runs.CheckAgentName): an in-process runs.AgentFunc,
	// or a runs.HTTPAgent (signed as webhooks are, through the SSRF rule; its secret obeys the
	// webhook secret rule). runs.WithOptions sets one's attempts, timeout, concurrency and
	// singleton mode. Default: none (a run of an unknown agent is refused).
	Agents map[string]runs.Agent
	// Runs tunes the runner (lease, retry backoff) and says whom to tell when a run ends.
	Runs runs.Config
	// Components are further long-running pieces run with the worker's lifecycle: started
	// before the consumers and stopped after them, so that a post-processor may use one.
	Components []lifecycle.Component
}
