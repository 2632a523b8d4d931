// Package outbox is the event substrate for services that need "the event commits with my
// mutation or not at all": intents (reserved before the mutation, then confirmed or
// discarded), one materializer at a time (elected by a blob lease) that is the sole writer of
// PlatformEventLog and publishes each confirmed intent's event, a reconciler that settles
// stale Pending intents with a probe, and scan-repair for sources without an outbox. It owns
// the OutboxIntents, PlatformEventLog and Watermarks tables and the materializer's lease blob.
//
// Invariants: an intent is materialized under its SourceKey, so a crash between any two steps
// repeats them without a second log row; an event published twice has its effects once (every
// effect is keyed); a replica whose lease ran out publishes nothing more.
package outbox

import (
	"cmp"
	"context"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/internal/lifecycle"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
)

// Config tunes the event substrate: the materializer, the stale-intent reconciler and
// scan-repair. Zero fields take the defaults their comments give.
type Config struct {
	// Disabled: this worker runs no materializer, reconciler or scan-repair (another
	// deployment of the worker does). The Go API and the commands still write intents.
	Disabled bool
	// LeaseDuration is the materializer's leader lease (15s-60s). A dead leader is replaced
	// within it. Default 15s.
	LeaseDuration time.Duration
	// PollInterval is how often the leader looks for confirmed intents. Default 1s.
	PollInterval time.Duration
	// StaleAfter: a Pending intent older than this is asked about by the reconciler
	// (PLATFORM_OUTBOX_STALE_AFTER). Default 5m.
	StaleAfter time.Duration
	// ReconcileEvery is how often the reconciler sweeps. Default StaleAfter/2.
	ReconcileEvery time.Duration
	// Probes answer "did this intent's mutation commit?" for intents of a source (the event's
	// source field) that name no source row. Intents with a source row use the built-in table
	// row probe.
	Probes map[string]Probe
	// ScanProviders are the bounded scan-repair paths of sources without an outbox, run every
	// ScanEvery. The built-in "event-log" provider (re-publish what PlatformEventLog holds) is
	// not run automatically: `platform reconcile --provider event-log --since T` runs it.
	ScanProviders []ScanProvider
	// ScanEvery is how often scan-repair runs in the worker; 0 turns it off there (the command
	// `platform reconcile` still runs it). Default 15m.
	ScanEvery time.Duration
}

func (c *Config) setDefaults() {
	c.LeaseDuration = cmp.Or(c.LeaseDuration, 15*time.Second)
	c.PollInterval = cmp.Or(c.PollInterval, time.Second)
	c.StaleAfter = cmp.Or(c.StaleAfter, 5*time.Minute)
	c.ReconcileEvery = cmp.Or(c.ReconcileEvery, c.StaleAfter/2)
	c.ScanEvery = cmp.Or(c.ScanEvery, 15*time.Minute)
}

// Probe tells whether an intent's mutation committed.
type Probe func(ctx context.Context, in *platform.OutboxIntent) (committed bool, err error)

// Service runs the materializer (leader only), the reconciler and scan-repair; it embeds the
// service-facing Client.
type Service struct {
	*Client
	cfg    Config
	log    logrus.FieldLogger
	tables *tables.Client
	queues *queues.Client
	wm     *tables.Watermarks

	mu         sync.Mutex
	leader     bool
	onLeader   func(leader bool) // OnLeader; nil: nobody is told
	components []lifecycle.Component
}

// OnIntent calls f with each transition of an intent this process makes: confirmed or
// discarded by the service (the client's calls; confirming again is not a transition),
// materialized or parked by the materializer, settled by the reconciler (the Transition
// constants). Set before the loops start.
func (s *Service) OnIntent(f func(transition string)) { s.onIntent = f }

// OnLeader calls f with true when this replica acquires the materializer's lease, and false
// when it loses or releases it. Set before the loops start.
func (s *Service) OnLeader(f func(leader bool)) { s.onLeader = f }

// New returns the outbox of the namespace t, q and b reach.
func New(cfg Config, log logrus.FieldLogger, t *tables.Client, q *queues.Client, b *blobs.Client) *Service {
	cfg.setDefaults()
	s := &Service{Client: NewClient(t, b), cfg: cfg, log: log, tables: t, queues: q, wm: t.Watermarks()}
	if !cfg.Disabled {
		s.components = []lifecycle.Component{
			lifecycle.Go("outbox materializer", s.lead),
			lifecycle.Every("outbox reconciler", cfg.ReconcileEvery, s.reconcileOnce),
		}
		if len(cfg.ScanProviders) > 0 {
			s.components = append(s.components, lifecycle.Go("scan-repair", s.scanLoop))
		}
	}
	return s
}

// Components are the outbox's loops: the materializer's campaign, the reconciler and, when
// there are scan providers, scan-repair. None when the outbox is Disabled here.
func (s *Service) Components() []lifecycle.Component { return s.components }

// Disabled reports whether this worker runs no outbox loops.
func (s *Service) Disabled() bool { return s.cfg.Disabled }

// scanLoop runs every scan provider every ScanEvery, first after a jittered ScanEvery: a fleet
// restarting must not scan all at once.
func (s *Service) scanLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(lifecycle.Jitter(s.cfg.ScanEvery)):
		}
		for _, p := range s.cfg.ScanProviders {
			if _, err := s.scanRepair(ctx, p, time.Time{}); err != nil && ctx.Err() == nil {
				s.log.WithError(err).WithField("provider", p.Name()).Warn("scan-repair failed; next run retries")
			}
		}
	}
}
