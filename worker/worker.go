package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/settings"
	"github.com/platform/platform/tables"
)

// Config configures a Worker. Zero fields take the defaults their comments give.
type Config struct {
	// Account is the storage account. Default: Azurite's development account.
	Account storage.Account
	// Namespace prefixes every queue, table and container. Default: none.
	Namespace platform.Namespace
	// Logger receives the worker's log lines. Default: logrus's standard logger.
	Logger logrus.FieldLogger
	// Consumer tunes the entity-events consumer (batch, concurrency, visibility, retries);
	// Queue, Handler and Logger are set by the worker. Defaults: queues.ConsumerConfig's.
	Consumer queues.ConsumerConfig
	// History maps event types to timeline rows. Default: the example domain of DESIGN §8.
	History *mappings.HistoryRegistry
	// PostProcessors are further concerns, run after history and notifications, each on its own.
	PostProcessors []PostProcessor

	// SettingsDSN is the notification settings database: a SQLite file path, or postgres://….
	// Default: settings.DefaultDSN.
	SettingsDSN string
	// Notifications tunes the notification pipeline (providers, lease, attempts).
	Notifications NotificationConfig
	// NotificationTypes and Generators say which notifications exist and how to build them.
	// Defaults: the example domain of DESIGN §8.
	NotificationTypes *mappings.NotificationRegistry
	Generators        *mappings.Generators
	// Outbox tunes the event substrate (materializer, reconciler, scan-repair).
	Outbox OutboxConfig
	// Realtime tunes the change stream (GET /v1/changes).
	Realtime RealtimeConfig
}

// Worker consumes entity-events and runs every concern on each event.
type Worker struct {
	cfg     Config
	log     logrus.FieldLogger
	queues  *queues.Client
	tables  *tables.Client
	history *tables.History
	notify  *notifications
	outbox  *outbox
	targets *targets
	hooks   *endpointCache
	stopBg  context.CancelFunc // ends the background refreshers
	hub     *hub
	changes *changeWriter
	// consumer is the entity-events consumer; stages are the notification stages'.
	consumer  *queues.Consumer
	consumers []*queues.Consumer

	mu      sync.Mutex
	running bool
}

// New connects to storage (no request yet) and assembles the pipeline.
func New(cfg Config) (*Worker, error) {
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	if cfg.History == nil {
		cfg.History = &mappings.HistoryRegistry{}
		if err := mappings.RegisterExampleHistory(cfg.History); err != nil {
			return nil, err
		}
	}
	q, err := queues.New(cfg.Account, cfg.Namespace)
	if err != nil {
		return nil, err
	}
	t, err := tables.New(cfg.Account, cfg.Namespace)
	if err != nil {
		return nil, err
	}
	if cfg.NotificationTypes == nil || cfg.Generators == nil {
		cfg.NotificationTypes, cfg.Generators = &mappings.NotificationRegistry{}, &mappings.Generators{}
		if err := mappings.RegisterExampleNotifications(cfg.NotificationTypes, cfg.Generators); err != nil {
			return nil, err
		}
	}
	if both := cfg.NotificationTypes.Overlap(); len(both) > 0 {
		return nil, fmt.Errorf("notification types %v are registered as both direct and event-derived: the two paths must be disjoint", both)
	}
	cfg.Notifications.setDefaults()
	cfg.Realtime.setDefaults()
	w := &Worker{cfg: cfg, log: cfg.Logger, queues: q, tables: t, history: t.History()}
	n := &notifications{
		cfg: cfg.Notifications, log: cfg.Logger,
		registry: cfg.NotificationTypes, generators: cfg.Generators,
		queues: q, blobs: q.Blobs(), jobs: t.Jobs(), messages: t.Messages(), cancellations: t.Cancellations(), history: w.history,
		templates: &templateStore{blobs: q.Blobs(), ttl: cfg.Notifications.TemplateCacheTTL},
		email:     &logProvider{log: cfg.Logger},
	}
	if w.targets, err = parseAllowlist(cfg.Notifications.WebhookAllowlist); err != nil {
		return nil, err
	}
	n.webhook = &webhookProvider{secret: cfg.Notifications.WebhookSecret, client: w.targets.client(30 * time.Second)}
	n.endpoint = &endpointProvider{n: n, store: t.Endpoints(), targets: w.targets}
	cfg.Realtime.setDefaults()
	w.hub = newHub(cfg.Realtime, t.Changes(), cfg.Logger.WithField("component", "realtime"))
	w.changes = &changeWriter{store: t.Changes(), linger: cfg.Realtime.Linger, in: make(chan changeReq)}
	w.hooks = &endpointCache{store: t.Endpoints(), ttl: cmp.Or(cfg.Notifications.EndpointCacheTTL, 10*time.Second)}
	if cfg.Notifications.SMTP != nil {
		n.email = &smtpProvider{cfg: *cfg.Notifications.SMTP}
	}
	w.notify = n
	cfg.Outbox.setDefaults()
	w.cfg.Outbox = cfg.Outbox
	w.outbox = &outbox{cfg: cfg.Outbox, log: cfg.Logger.WithField("component", "outbox"), store: t.Outbox(), eventLog: t.EventLog(),
		tables: t, queues: q, blobs: q.Blobs(), wm: t.Watermarks()}
	processors := append([]PostProcessor{
		NewHistoryProcessor(cfg.History, w.history, q.Blobs()),
		&NotificationProcessor{n: n},
		&WebhookProcessor{n: n, cache: w.hooks},
		&ChangeBus{hub: w.hub, writer: w.changes},
	}, cfg.PostProcessors...)
	router, err := NewRouter(q.Blobs(), cfg.Logger, processors...)
	if err != nil {
		return nil, err
	}
	stages := []struct {
		queue   string
		handler queues.Handler
	}{
		{platform.QueueEntityEvents, router.Handle},
		{platform.QueueNotificationScheduler, n.schedule},
		{platform.QueueNotificationGenerator, n.generate},
		{platform.QueueNotificationDistributor, n.distribute},
	}
	for _, st := range stages {
		cc := cfg.Consumer
		cc.Queue, cc.Handler, cc.Logger = st.queue, st.handler, cfg.Logger
		if st.queue == platform.QueueNotificationDistributor {
			// The message row counts send attempts and settles Failed itself; waiting out a
			// crashed sender's lease takes deliveries too. The queue must not give up first.
			cc.MaxDequeueCount = max(cc.MaxDequeueCount, 2*cfg.Notifications.MaxAttempts+5)
		}
		c, err := q.NewConsumer(cc)
		if err != nil {
			return nil, err
		}
		w.consumers = append(w.consumers, c)
	}
	w.consumer = w.consumers[0]
	return w, nil
}

// Setup creates the tables and queues the worker uses, where missing. Start calls it; tools
// that write jobs without running the worker call it first.
func (w *Worker) Setup(ctx context.Context) error {
	if err := w.tables.CreateTables(ctx, platform.TableEntityHistory, tables.TableNotificationJobs, tables.TableOutgoingMessages, tables.TableCancellations,
		tables.TableOutboxIntents, tables.TablePlatformEventLog, tables.TableWatermarks, tables.TableWebhookEndpoints, tables.TableChanges); err != nil {
		return err
	}
	return w.queues.Create(ctx, platform.QueueNotificationScheduler)
}

// Queues, Blobs and History give the CLI and tests the worker's own storage clients.
func (w *Worker) Queues() *queues.Client   { return w.queues }
func (w *Worker) Blobs() *blobs.Client     { return w.queues.Blobs() }
func (w *Worker) History() *tables.History { return w.history }

// Start creates the tables and queues the worker uses, if missing, and starts consuming. It
// does not block.
func (w *Worker) Start(ctx context.Context) error {
	if err := w.Setup(ctx); err != nil {
		return err
	}
	db, err := settings.Open(ctx, w.cfg.SettingsDSN)
	if err != nil {
		return err
	}
	w.notify.settings = db
	if err := w.hooks.refresh(ctx); err != nil {
		return err
	}
	bg, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	w.stopBg = stopBg
	go w.changes.run(bg)
	go every(bg, w.cfg.Realtime.PollInterval, w.hub.poll)
	go every(bg, w.hooks.ttl, func(ctx context.Context) {
		if err := w.hooks.refresh(ctx); err != nil && ctx.Err() == nil {
			w.log.WithError(err).Warn("webhook endpoints: refresh failed; using the last list")
		}
	})
	for _, c := range w.consumers {
		if err := c.Start(ctx); err != nil {
			return err
		}
	}
	if !w.cfg.Outbox.Disabled {
		w.outbox.start(ctx)
	}
	w.mu.Lock()
	w.running = true
	w.mu.Unlock()
	w.log.WithField("namespace", string(w.cfg.Namespace)).Info("worker started")
	return nil
}

// Stop stops fetching and lets in-flight work finish until ctx ends; see queues.Consumer.Stop.
// Safe to call twice, or before Start.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	w.running = false
	w.mu.Unlock()
	// All stages stop together, sharing ctx's time: stopping them one after the other would
	// give the last one what is left of it.
	if w.stopBg != nil {
		w.stopBg()
	}
	w.outbox.stop(ctx)
	var wg sync.WaitGroup
	for _, c := range w.consumers {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Stop(ctx) }()
	}
	wg.Wait()
	if db := w.notify.settings; db != nil {
		return db.Close()
	}
	return nil
}

// Drained reports whether every work queue is empty (poison queues are not work: they hold
// what needs a person; delayed and backing-off messages count as not empty) and nothing is in flight in this worker.
func (w *Worker) Drained(ctx context.Context) (bool, error) {
	idle, before := w.idle()
	if !idle {
		return false, nil
	}
	for _, q := range platform.WorkQueues {
		n, err := w.queues.ApproximateCount(ctx, q)
		if err != nil || n > 0 {
			return false, err
		}
	}
	if !w.cfg.Outbox.Disabled {
		if busy, err := w.outbox.busy(ctx); err != nil || busy {
			return false, err
		}
	}
	// Nothing was received while we counted, so the counts describe an idle worker.
	idle, after := w.idle()
	return idle && after == before, nil
}

func (w *Worker) idle() (bool, int64) {
	all := true
	var received int64
	for _, c := range w.consumers {
		idle, n := c.Idle()
		all, received = all && idle, received+n
	}
	return all, received
}

// WaitDrained returns once Drained holds, or with ctx's error.
func (w *Worker) WaitDrained(ctx context.Context, poll time.Duration) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		ok, err := w.Drained(ctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			w.log.WithError(err).Warn("drain: could not read queue counts")
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Ready reports whether the worker runs and storage answers.
func (w *Worker) Ready(ctx context.Context) error {
	w.mu.Lock()
	running := w.running
	w.mu.Unlock()
	if !running {
		return errors.New("worker not running")
	}
	if err := w.queues.Ping(ctx); err != nil {
		return fmt.Errorf("queue service: %w", err)
	}
	if err := w.tables.Ping(ctx); err != nil {
		return fmt.Errorf("table service: %w", err)
	}
	if err := w.notify.settings.Ping(ctx); err != nil {
		return fmt.Errorf("settings database: %w", err)
	}
	return nil
}
