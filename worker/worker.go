package worker

import (
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
	// PostProcessors are further concerns, run after history, each on its own.
	PostProcessors []PostProcessor
}

// Worker consumes entity-events and runs every concern on each event.
type Worker struct {
	cfg      Config
	log      logrus.FieldLogger
	queues   *queues.Client
	tables   *tables.Client
	history  *tables.History
	consumer *queues.Consumer

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
	w := &Worker{cfg: cfg, log: cfg.Logger, queues: q, tables: t, history: t.History()}
	processors := append([]PostProcessor{NewHistoryProcessor(cfg.History, w.history, q.Blobs())}, cfg.PostProcessors...)
	router, err := NewRouter(q.Blobs(), cfg.Logger, processors...)
	if err != nil {
		return nil, err
	}
	cc := cfg.Consumer
	cc.Queue, cc.Handler, cc.Logger = platform.QueueEntityEvents, router.Handle, cfg.Logger
	if w.consumer, err = q.NewConsumer(cc); err != nil {
		return nil, err
	}
	return w, nil
}

// Queues, Blobs and History give the CLI and tests the worker's own storage clients.
func (w *Worker) Queues() *queues.Client   { return w.queues }
func (w *Worker) Blobs() *blobs.Client     { return w.queues.Blobs() }
func (w *Worker) History() *tables.History { return w.history }

// Start creates the tables and queues the worker uses, if missing, and starts consuming. It
// does not block.
func (w *Worker) Start(ctx context.Context) error {
	if err := w.tables.CreateTables(ctx, platform.TableEntityHistory); err != nil {
		return err
	}
	if err := w.consumer.Start(ctx); err != nil {
		return err
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
	return w.consumer.Stop(ctx)
}

// Drained reports whether every work queue is empty (poison queues are not work: they hold
// what needs a person; delayed and backing-off messages count as not empty) and nothing is in flight in this worker.
func (w *Worker) Drained(ctx context.Context) (bool, error) {
	idle, before := w.consumer.Idle()
	if !idle {
		return false, nil
	}
	for _, q := range platform.WorkQueues {
		n, err := w.queues.ApproximateCount(ctx, q)
		if err != nil || n > 0 {
			return false, err
		}
	}
	// Nothing was received while we counted, so the counts describe an idle worker.
	idle, after := w.consumer.Idle()
	return idle && after == before, nil
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
	return nil
}
