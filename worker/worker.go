// Package worker is the host: it wires the concerns to storage and to each other, routes each
// entity event to every concern, and runs every long-running piece with one lifecycle. The
// concerns live in their own packages (history, notify, delivery, channels, webhooks,
// realtime, outbox, runs) and the HTTP API in api; none of them imports another concern, and only
// this package knows them all.
//
// Lifecycle (lifecycle.Group): Start sets up the tables and queues, then starts, in order, the
// settings database, the HTTP server, the buses and caches the handlers use (change writer,
// change poller, webhook endpoint cache), Config.Components, then the consumers and the outbox
// loops: the work starts last, when nothing else can fail. Stop ends the change streams at once, then stops in reverse: fetching
// stops and in-flight handlers finish, then the buses they used, then the HTTP server (with a
// deadline of its own), then the settings database. A worker runs once.
//
// It never imports a storage SDK: queues/, tables/ and blobs/ give it typed operations and
// platform's sentinel errors.
package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/internal/lifecycle"
	"github.com/platform/platform/internal/telemetry"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/settings"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/api"
	"github.com/platform/platform/worker/automations"
	"github.com/platform/platform/worker/channels"
	"github.com/platform/platform/worker/console"
	"github.com/platform/platform/worker/delivery"
	"github.com/platform/platform/worker/history"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/outbox"
	"github.com/platform/platform/worker/realtime"
	"github.com/platform/platform/worker/runs"
	"github.com/platform/platform/worker/webhooks"
)

// Worker consumes the work queues and runs every concern on each event.
type Worker struct {
	cfg    Config
	log    logrus.FieldLogger
	queues *queues.Client
	tables *tables.Client
	blobs  *blobs.Client

	settings    *settingsDB
	distributor *delivery.Distributor
	notify      *notify.Service
	webhooks    *webhooks.Service
	realtime    *realtime.Service
	channels    []lifecycle.Component // the delivery channels that keep connections
	automations *automations.Service
	outbox      *outbox.Service
	runs        *runs.Service
	consumers   []*queues.Consumer
	keys        *auth.Keys
	auth        *auth.Authenticator
	http        *httpServer
	metricsHTTP *httpServer

	group   lifecycle.Group
	mu      sync.Mutex
	state   runState
	running atomic.Bool // started and not stopping: /readyz
}

type runState int

const (
	idle runState = iota
	started
	stopped
)

// New connects to storage (no request yet), checks the configuration (the notification types
// among it: a bad registration is refused here, naming the type) and assembles the pipeline.
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
	if cfg.NotificationTypes == nil {
		cfg.NotificationTypes = mappings.ExampleNotifications()
	}
	types, err := mappings.NewNotificationRegistry(cfg.NotificationTypes...)
	if err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = telemetry.New()
	}
	cfg.Account.Observe = observeStorage(cfg.Metrics, cfg.Account.Observe)
	cfg.SettingsCacheTTL = cmp.Or(cfg.SettingsCacheTTL, settings.DefaultCacheTTL)
	w := &Worker{cfg: cfg, log: cfg.Logger, settings: newSettingsDB(cfg.SettingsDSN, cfg.SettingsCacheTTL)}
	if w.queues, err = queues.New(cfg.Account, cfg.Namespace); err != nil {
		return nil, err
	}
	w.queues.SetTracerProvider(cfg.TracerProvider)
	if err := w.queues.SetShards(cmp.Or(cfg.QueueShards, 1)); err != nil {
		return nil, fmt.Errorf("worker config: QueueShards: %w", err)
	}
	if w.tables, err = tables.New(cfg.Account, cfg.Namespace); err != nil {
		return nil, err
	}
	if cfg.MaxRelated < 0 || cfg.MaxPayloadBytes < 0 {
		return nil, fmt.Errorf("worker config: MaxRelated %d, MaxPayloadBytes %d: want >= 0 (0: the default)", cfg.MaxRelated, cfg.MaxPayloadBytes)
	}
	w.keys = auth.NewKeys(w.tables.APIKeys(), cfg.Auth.KeyCacheTTL)
	if w.auth, err = auth.New(cfg.Auth, w.keys); err != nil {
		return nil, err
	}
	if cfg.HTTPAddr != "" && cfg.Roles.Has(RoleAPI) {
		if err := cfg.Auth.CheckListener(cfg.HTTPAddr); err != nil {
			return nil, err
		}
	}
	w.blobs = w.queues.Blobs()
	w.blobs.SetMaxPayloadBytes(cfg.MaxPayloadBytes)
	targets, err := webhooks.NewTargets(cfg.WebhookAllowlist)
	if err != nil {
		return nil, err
	}

	chans := &delivery.Channels{}
	w.distributor = delivery.New(cfg.Delivery, cfg.Logger, w.queues, w.tables.Messages(), chans)
	w.webhooks = webhooks.New(cfg.Webhooks, cfg.Logger, w.tables.Endpoints(), targets, w.blobs, w.distributor)
	if err := registerChannels(chans, cfg, targets, w.webhooks); err != nil {
		return nil, err
	}
	// A replica that runs the generator generates a job released at once in its event's handler.
	cfg.Notify.GenerateInHandler = cfg.Roles.Has(RoleNotifications)
	w.notify = notify.New(cfg.Notify, notify.Deps{
		Log: cfg.Logger, Types: types, Queues: w.queues, Blobs: w.blobs, Tables: w.tables,
		Settings: w.settings, Distributor: w.distributor, Channels: chans, DeliveryKeys: w.webhooks.DeliveryKeys,
		OnSettled: w.jobFinal, OnCreated: w.jobCreated,
	})
	w.realtime = realtime.New(cfg.Realtime, w.tables.Changes(), cfg.Logger.WithField("component", "realtime"))
	w.webhooks.AnnounceOn(w.tables.Changes()) // endpoint changes reach every replica within a poll
	w.webhooks.KeepLogIn(w.tables.Deliveries())
	w.realtime.Hub().OnSignal(webhooks.SignalTopic, w.webhooks.EndpointsChanged)
	w.automations = automations.New(cfg.Automations, w.automationDeps(types))
	w.realtime.Hub().OnSignal(automations.SignalTopic, w.automations.RulesChanged)
	w.realtime.Hub().OnSignal(settings.SignalTopic, w.settings.changed)
	if !cfg.Roles.Has(RoleAPI) {
		cfg.Outbox.Disabled = true
	}
	if cfg.Outbox.Disabled {
		// Only a replica that runs the outbox loops reports their leadership: the gauge's
		// absence then means no such replica is seen, and a sum of 0 that none leads.
		cfg.Metrics.Registry.Unregister(cfg.Metrics.OutboxLeader)
	}
	w.outbox = outbox.New(cfg.Outbox, cfg.Logger.WithField("component", "outbox"), w.tables, w.queues, w.blobs)
	if w.runs, err = newRuns(cfg, targets, w); err != nil {
		return nil, err
	}

	router, err := NewRouter(w.blobs, cfg.Logger, append([]PostProcessor{
		history.New(history.Config{MaxRelated: cfg.MaxRelated}, cfg.History, w.tables.History(), w.blobs), w.notify, w.webhooks, w.realtime, w.automations,
	}, cfg.PostProcessors...)...)
	if err != nil {
		return nil, err
	}
	w.observeRouter(router)
	for _, st := range []struct {
		queue   string
		handler queues.Handler
	}{
		{platform.QueueEntityEvents, router.Handle},
		{platform.QueueNotificationScheduler, w.notify.Schedule},
		{platform.QueueNotificationGenerator, w.notify.Generate},
		{platform.QueueNotificationDistributor, w.distributor.Handle},
		{platform.QueueAgentRuns, w.runs.Handle},
	} {
		if !cfg.Roles.consumes(st.queue) {
			continue
		}
		cc := cfg.Consumer
		cc.Queue, cc.Handler, cc.Logger, cc.Observe = st.queue, st.handler, cfg.Logger, w.observeQueue(st.queue)
		if st.queue == platform.QueueNotificationDistributor {
			cc.MaxDequeueCount = max(cc.MaxDequeueCount, w.distributor.MaxDequeueCount())
		}
		c, err := w.queues.NewConsumer(cc)
		if err != nil {
			return nil, err
		}
		w.consumers = append(w.consumers, c)
	}
	w.observeNotifications(types, chans)
	for _, name := range chans.Names() {
		// A channel that keeps connections (SMTP sessions) ends them when the worker stops,
		// after the consumers that send through it.
		if ch, _ := chans.Lookup(name); ch != nil {
			if c, ok := ch.(lifecycle.Component); ok {
				w.channels = append(w.channels, c)
			}
		}
	}
	w.assemble()
	return w, nil
}

// newRuns builds the agent runs concern: HTTP agents call through the SSRF-safe client (its
// own 30 s timeout lifted: each agent's Options.Timeout bounds an attempt) and are signed as
// webhooks are.
func newRuns(cfg Config, targets *webhooks.Targets, w *Worker) (*runs.Service, error) {
	rc := cfg.Runs
	if rc.OnFinished == nil {
		rc.OnFinished = w.runFinished
	}
	if rc.HTTPClient == nil {
		client := *targets.Client()
		client.Timeout = 0
		rc.HTTPClient = &client
	}
	if rc.Sign == nil {
		rc.Sign = func(req *http.Request, id, secret string, body []byte) {
			webhooks.SignRequest(req, id, []string{secret}, body)
		}
	}
	if rc.CheckSecret == nil {
		rc.CheckSecret = webhooks.CheckSecret
	}
	return runs.New(rc, runs.Deps{Log: cfg.Logger, Runs: w.tables.Runs(), Queues: w.queues, Blobs: w.blobs, Agents: cfg.Agents})
}

// registerChannels registers the built-in channels and cfg's own.
func registerChannels(chans *delivery.Channels, cfg Config, targets *webhooks.Targets, hooks *webhooks.Service) error {
	var email delivery.Channel = &channels.LogMail{Log: cfg.Logger}
	if cfg.SMTP != nil {
		email = channels.NewSMTP(*cfg.SMTP)
	}
	errs := []error{
		chans.Register(platform.ChannelEmail, email),
		chans.Register(platform.ChannelWebhook, &webhooks.RecipientChannel{Secret: cfg.WebhookSecret, Targets: targets}),
		chans.Register(platform.ChannelEndpoint, hooks.EndpointChannel()),
	}
	for name, ch := range cfg.Channels {
		errs = append(errs, chans.Register(name, ch))
	}
	return errors.Join(errs...)
}

// assemble lays out the lifecycle: what is used starts first and stops last.
func (w *Worker) assemble() {
	if w.cfg.TracerProvider != nil {
		w.group.Add("tracing", telemetry.Flusher{Provider: w.cfg.TracerProvider, Log: w.log}) // stops last: every span has ended
	}
	w.group.Add("settings database", w.settings)
	if w.cfg.HTTPAddr != "" {
		w.http = &httpServer{addr: w.cfg.HTTPAddr, handler: w.Handler(), log: w.log,
			shutdown: cmp.Or(w.cfg.HTTPShutdownTimeout, 5*time.Second), timeout: cmp.Or(w.cfg.HTTPTimeout, 30*time.Second)}
		w.group.Add("http server", w.http)
	}
	if w.cfg.MetricsAddr != "" {
		w.metricsHTTP = &httpServer{addr: w.cfg.MetricsAddr, handler: w.cfg.Metrics.Handler(), log: w.log,
			shutdown: time.Second, timeout: 30 * time.Second}
		w.group.Add("metrics server", w.metricsHTTP)
	}
	if len(w.channels) > 0 {
		w.group.Add("channels", w.channels...)
	}
	w.group.Add("buses", w.realtime.Writer(), w.realtime.Poller(), w.webhooks.Refresher(), w.automations.Refresher())
	if len(w.cfg.Components) > 0 {
		w.group.Add("components", w.cfg.Components...)
	}
	work := []lifecycle.Component{}
	for _, c := range w.consumers {
		work = append(work, c)
	}
	w.group.Add("consumers", append(work, w.outbox.Components()...)...)
	w.group.Add("queue sampler", w.queueSampler())
}

// Setup creates the tables and queues the worker uses (each work queue's current shards and
// their poison twins), where missing. Start calls it before
// starting anything; tools that write without running the worker call it first.
func (w *Worker) Setup(ctx context.Context) error {
	if err := w.tables.CreateTables(ctx, platform.TableEntityHistory, tables.TableNotificationJobs, tables.TableOutgoingMessages, tables.TableCancellations,
		tables.TableOutboxIntents, tables.TablePlatformEventLog, tables.TableWatermarks, tables.TableWebhookEndpoints, tables.TableChanges, tables.TableAPIKeys,
		tables.TableWebhookDeliveries, tables.TableAutomationDecisions, tables.TableAutomationClaims, tables.TableAgentRuns); err != nil {
		return err
	}
	// One listing first: what exists is not created again (with 64 shards, 640 queues).
	if _, err := w.queues.WorkQueues(ctx); err != nil {
		return err
	}
	for _, work := range platform.WorkQueues {
		for _, q := range w.queues.Current(work) {
			if err := w.queues.Create(ctx, q, platform.PoisonQueue(q)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Start sets up storage and starts every piece; it does not block. A start that fails stops
// what it had started and consumes nothing. A worker runs once: Start twice, or after Stop,
// is an error that starts nothing.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch w.state {
	case started:
		return errors.New("worker: already started")
	case stopped:
		return errors.New("worker: stopped; a worker runs once (make a new one)")
	}
	w.state = started
	if err := w.Setup(ctx); err != nil {
		w.state = stopped
		return fmt.Errorf("set up storage: %w", err)
	}
	if err := w.group.Start(ctx); err != nil {
		w.state = stopped
		return err
	}
	w.running.Store(true)
	w.log.WithFields(logrus.Fields{"namespace": string(w.cfg.Namespace), "roles": w.cfg.Roles.String()}).Info("worker started")
	return nil
}

// Stop ends the change streams, stops fetching, lets in-flight work finish until ctx ends,
// then stops the rest in reverse order of starting. When ctx ended first, it returns an error
// wrapping lifecycle.ErrAbandoned that names what it cancelled (those messages reappear after
// their visibility timeout). Safe to call twice, or before Start.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	was := w.state
	w.state = stopped
	w.mu.Unlock()
	w.running.Store(false)
	if was != started {
		return w.group.Stop(ctx) // after a failed Start: nothing left to stop
	}
	w.realtime.Hub().Close()
	began := time.Now()
	err := w.group.Stop(ctx)
	log := w.log.WithField("took", time.Since(began).Round(time.Millisecond).String())
	switch {
	case errors.Is(err, lifecycle.ErrAbandoned):
		log.WithError(err).Error("hard stop: the stop deadline passed with work in flight")
	case err != nil:
		log.WithError(err).Error("stopped with errors")
	default:
		log.Info("worker stopped: in-flight work finished")
	}
	return err
}

// Ready reports whether the worker runs and storage answers.
func (w *Worker) Ready(ctx context.Context) error {
	if !w.running.Load() {
		return errors.New("worker not running")
	}
	if err := w.queues.Ping(ctx); err != nil {
		return fmt.Errorf("queue service: %w", err)
	}
	if err := w.tables.Ping(ctx); err != nil {
		return fmt.Errorf("table service: %w", err)
	}
	if err := w.settings.Ping(ctx); err != nil {
		return fmt.Errorf("settings database: %w", err)
	}
	return nil
}

// Handler serves the HTTP API (see package api) and the support console under /console/
// (package console); without RoleAPI, only /healthz and /readyz. Served on a listener of the caller's own,
// no check keeps it off a public address: with Config.Auth off, that is the caller's to ensure
// (New checks Config.HTTPAddr only).
func (w *Worker) Handler() http.Handler {
	h := api.Handler(api.Deps{
		Log:     w.log,
		Ready:   w.Ready,
		History: w.tables.History(), Blobs: w.blobs,
		Notify: w.notify, Distributor: w.distributor, Jobs: w.tables.Jobs(), Messages: w.tables.Messages(), Queues: w.queues,
		Webhooks: w.webhooks, Replay: w.WebhookReplay(), Changes: w.realtime.Hub(),
		Automations: w.automations, Runs: w.runs, Auth: w.auth, Limits: w.cfg.APILimits,
		PageKey:    func(ctx context.Context) ([]byte, error) { return w.blobs.Key(ctx, "page-tokens") },
		ProbesOnly: !w.cfg.Roles.Has(RoleAPI),
		Metrics:    w.cfg.Metrics.Handler(),
	})
	if !w.cfg.Roles.Has(RoleAPI) {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, console.Handler(console.Deps{Log: w.log, API: h, Auth: w.auth,
		Key: func(ctx context.Context) ([]byte, error) { return w.blobs.Key(ctx, "console-sessions") }}))
	mux.Handle("/", h)
	return mux
}

// MetricsAddr is the address the metrics listener listens on, once started ("" without one).
func (w *Worker) MetricsAddr() string {
	if w.metricsHTTP == nil {
		return ""
	}
	return w.metricsHTTP.Addr()
}

// Metrics are the worker's Prometheus instruments.
func (w *Worker) Metrics() *telemetry.Metrics { return w.cfg.Metrics }

// HTTPAddr is the address the worker's HTTP server listens on, once started ("" without one).
func (w *Worker) HTTPAddr() string {
	if w.http == nil {
		return ""
	}
	return w.http.Addr()
}

// Queues, Blobs and History give the CLI and tests the worker's own storage clients.
func (w *Worker) Queues() *queues.Client   { return w.queues }
func (w *Worker) Blobs() *blobs.Client     { return w.blobs }
func (w *Worker) History() *tables.History { return w.tables.History() }

// Distributor sends outgoing messages: the CLI marks one sent, or sends it again.
func (w *Worker) Distributor() *delivery.Distributor { return w.distributor }

// Keys are the API keys: the CLI creates, lists and revokes them.
func (w *Worker) Keys() *auth.Keys { return w.keys }

// Notify, Webhooks and Outbox are the concerns callers use directly: direct jobs, traces and
// cancellations; endpoints; intents and repair.
func (w *Worker) Notify() *notify.Service     { return w.notify }
func (w *Worker) Webhooks() *webhooks.Service { return w.webhooks }
func (w *Worker) Outbox() *outbox.Service     { return w.outbox }

// Automations are the automation rules: the CLI adds, tests, explains and replays them. Its
// rule store is the settings database: open it first (OpenSettings) when the worker is not
// running.
func (w *Worker) Automations() *automations.Service { return w.automations }

// OpenSettings opens the settings database for a worker that is not started (the CLI's
// commands); close closes it. A started worker has it open already.
func (w *Worker) OpenSettings(ctx context.Context) (close func(), err error) {
	if err := w.settings.Start(ctx); err != nil {
		return nil, err
	}
	return func() { _ = w.settings.Stop(context.Background()) }, nil
}

// Runs is the agent runs concern: start (the automations concern), list, cancel, replay.
func (w *Worker) Runs() *runs.Service { return w.runs }

// WebhookReplay re-sends what an endpoint subscribes to in a window of processed events.
func (w *Worker) WebhookReplay() *webhooks.Replayer {
	return webhooks.NewReplayer(w.webhooks, w.tables.Changes(), w.tables.History())
}
