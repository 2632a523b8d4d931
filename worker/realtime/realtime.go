// Package realtime is the change stream: every processed event projected to a Change (which
// fields changed, never their values), made durable in the Changes table and fanned out to
// every replica's stream clients (GET /v1/changes). It owns the Changes table.
//
// Invariants: a handler returns only once its change is durable (group commit: handlers that
// finish together share one transaction); a replica sees other replicas' changes by polling
// the table; a redelivered event is one change in a replica's buffer (deduplicated by event
// key); a client that resumes from a point older than the buffer is told so (a gap).
package realtime

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/lifecycle"
	"github.com/platform/platform/tables"
)

// Config tunes the realtime change stream. Zero fields take the defaults their
// comments give.
type Config struct {
	// BufferSize is how many recent changes each replica keeps for Last-Event-ID resume.
	// Default 10,000.
	BufferSize int
	// PollInterval is how often a replica reads the changes other replicas wrote. Default 1s.
	PollInterval time.Duration
	// Lateness is how late after its id was taken a change may commit and still reach the
	// other replicas' streams: each poll sweeps, once, the rows that have become this old.
	// Default 5s.
	Lateness time.Duration
	// Disabled turns the change stream off: events leave no Changes row and GET /v1/changes
	// answers 404. The bus still carries signals (tables.Changes.PutSignal), and the poll that
	// reads them. For a deployment that serves no stream client (and for make bench, which
	// measures the worker with the history concern alone). Default false.
	Disabled bool
	// Linger is how long the change writer waits for more changes to put in one transaction
	// (group commit: handlers that finish together share one). Each event's handler waits at
	// most this long for its change to be durable. Default 10ms.
	Linger time.Duration
}

func (c *Config) setDefaults() {
	c.BufferSize = cmp.Or(c.BufferSize, 10_000)
	c.PollInterval = cmp.Or(c.PollInterval, time.Second)
	c.Lateness = cmp.Or(c.Lateness, 5*time.Second)
	c.Linger = cmp.Or(c.Linger, 10*time.Millisecond)
}

// lateAttempts is how many times Process writes a change whose transaction was too slow
// (errLate) before it fails the event.
const lateAttempts = 3

// Service is the realtime concern: the post-processor that writes changes, the writer that
// group-commits them, the hub that serves them, and the poller that reads other replicas'.
type Service struct {
	off    bool // Config.Disabled
	hub    *Hub
	writer *writer
	tasks  struct{ writer, poller *lifecycle.Task }
}

// New returns the change stream over store.
func New(cfg Config, store *tables.Changes, log logrus.FieldLogger) *Service {
	cfg.setDefaults()
	s := &Service{off: cfg.Disabled, hub: newHub(cfg, store, log),
		writer: &writer{store: store, linger: cfg.Linger, in: make(chan *changeReq), stopped: make(chan struct{}),
			maxWrite: max(cfg.Lateness-cfg.PollInterval, time.Second)}}
	s.writer.writerID = s.hub.writer
	s.tasks.writer = lifecycle.Go("change writer", s.writer.run)
	s.tasks.poller = lifecycle.Every("change bus poll", cfg.PollInterval, s.hub.poll)
	return s
}

// Hub is this replica's stream.
func (s *Service) Hub() *Hub { return s.hub }

// Writer is the change writer's lifecycle: it must stop after the handlers that write.
func (s *Service) Writer() lifecycle.Component { return s.tasks.writer }

// Poller reads the changes other replicas wrote, every PollInterval.
func (s *Service) Poller() lifecycle.Component { return s.tasks.poller }

// Name implements the router's PostProcessor.
func (*Service) Name() string { return "realtime" }

// Accepts implements PostProcessor: every event another concern knows, unless the stream is
// off (Config.Disabled).
func (s *Service) Accepts(*platform.EntityEvent) bool { return !s.off }

// Observer marks a concern that sees every event but does not make an event type known.
func (*Service) Observer() bool { return true }

// Process implements PostProcessor: the event's Change (field names, never values; a list too
// long for the change bus clipped, see tables.FitChange) is made durable on the change bus,
// then handed to this replica's streams.
func (s *Service) Process(ctx context.Context, ev *platform.EntityEvent) error {
	ch := ev.Change()
	tables.FitChange(ch) // what this replica streams is what the others read back
	// A transaction too slow for the sweep is written again under a new id, a few times, before
	// the event is retried for it (its other concerns are done by then).
	id, err := s.writer.write(ctx, ch)
	for attempt := 1; errors.Is(err, errLate) && attempt < lateAttempts && ctx.Err() == nil; attempt++ {
		id, err = s.writer.write(ctx, ch)
	}
	if err != nil {
		return err
	}
	s.hub.add(id, *ch)
	return nil
}
