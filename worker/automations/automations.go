// Package automations is the concern that acts on events by rules: automation triggers. A rule
// (per business unit, versioned, in the settings database) names event types, a CEL filter, a
// dedupe key and one action — create a notification job, deliver to a webhook endpoint, start
// an agent run, publish a new entity event.
//
// Invariants:
//   - One effect per (rule, dedupe key), forever: an insert-only claim row
//     (AutomationClaims) is taken before the action, and the action's effect has a key derived
//     from the claim, so a redelivered event finds both and changes nothing. A replay is an
//     explicit new generation of one key's claim, recorded.
//   - Every rule whose event type matched an event leaves one decision row for it
//     (AutomationDecisions, a partition per event, written in one transaction whatever the
//     number of rules): fired, filter_false, filter_error, deduped, rate_limited, loop_guard,
//     disabled, shadow or action_failed — never a silent non-firing.
//   - A rule never acts on an event its own action published, nor past the chain-depth cap.
//   - A rule is compiled when saved: a bad filter is refused with CEL's message and position,
//     and nothing is stored.
//
// It must not import another concern: the host gives it the actions as functions (Deps).
package automations

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/internal/lifecycle"
	"github.com/platform/platform/settings"
	"github.com/platform/platform/tables"
)

// Config tunes automations. Zero fields take the defaults their comments give.
type Config struct {
	// CacheTTL is how often rules are reread regardless of announcements (SignalTopic).
	// Default 10s.
	CacheTTL time.Duration
	// MaxChainDepth is the loop guard's cap: a rule does not act on an event that is this many
	// rule actions away from a service's event. Default 3.
	MaxChainDepth int
	// DisableAfterTrips disables a rule whose rate limit or loop guard stopped it this many
	// times within TripWindow. Default 100 within 1m.
	DisableAfterTrips int
	TripWindow        time.Duration
}

func (c *Config) setDefaults() {
	c.CacheTTL = cmp.Or(c.CacheTTL, 10*time.Second)
	c.MaxChainDepth = cmp.Or(c.MaxChainDepth, 3)
	c.DisableAfterTrips = cmp.Or(c.DisableAfterTrips, 100)
	c.TripWindow = cmp.Or(c.TripWindow, time.Minute)
}

// Store keeps rule versions (the settings database).
type Store interface {
	Rules(ctx context.Context) ([]settings.RuleRow, error)
	RuleVersions(ctx context.Context, id string) ([]settings.RuleRow, error)
	PutRuleVersion(ctx context.Context, r settings.RuleRow) error
}

// Origin says which rule and event started an effect, and the effect's chain depth (the
// event's, plus one): the effect's own lifecycle events carry them on to the loop guard.
type Origin struct {
	RuleID        string
	RuleVersion   int
	EventKey      string
	CorrelationID string
	ChainDepth    int
}

// Deps are what the concern uses. The actions are the host's: each must be idempotent in its
// key (the same key twice is one effect), and return platform.ErrInvalidInput (or a
// platform.Permanent error) for what no retry can fix.
type Deps struct {
	Log       logrus.FieldLogger
	Store     Store
	Decisions *tables.Decisions
	Claims    *tables.Claims
	Blobs     *blobs.Client
	Bus       *tables.Changes // where rule changes are announced; nil: nowhere

	// Notify creates the notification job of idempotencyKey; it returns the job's key.
	Notify func(ctx context.Context, a *NotifyAction, businessUnitID int64, data json.RawMessage, idempotencyKey string, o Origin) (string, error)
	// NotifyKey is the key of the job Notify creates for idempotencyKey.
	NotifyKey func(a *NotifyAction, businessUnitID int64, idempotencyKey string) string
	// CheckNotify refuses a notification type a rule may not create.
	CheckNotify func(a *NotifyAction, businessUnitID int64) error
	// Deliver delivers ev to endpointID under deliveryKey.
	Deliver func(ctx context.Context, endpointID string, ev *platform.EntityEvent, deliveryKey string, o Origin) error
	// CheckEndpoint refuses an endpoint that is not businessUnitID's.
	CheckEndpoint func(ctx context.Context, endpointID string, businessUnitID int64) error
	// StartRun starts the run of (agent, key), once; it returns the run's id.
	StartRun func(ctx context.Context, agent, key string, businessUnitID int64, input json.RawMessage, o Origin) (string, error)
	// RunID is the id of the run StartRun makes for (agent, key).
	RunID func(agent, key string) string
	// AgentKnown tells a registered agent.
	AgentKnown func(agent string) bool
	// Publish publishes ev to entity-events.
	Publish func(ctx context.Context, ev *platform.EntityEvent) error
}

// Service is the automations concern: the post-processor, and the rules' administration.
type Service struct {
	cfg       Config
	d         Deps
	log       logrus.FieldLogger
	cache     *cache
	guard     *guard
	refresher lifecycle.Component
	now       func() time.Time
}

// New returns the automations concern.
func New(cfg Config, d Deps) *Service {
	cfg.setDefaults()
	if d.Log == nil {
		d.Log = logrus.StandardLogger()
	}
	s := &Service{cfg: cfg, d: d, log: d.Log.WithField("component", "automations"), now: time.Now}
	s.cache = &cache{store: d.Store, log: s.log}
	s.guard = newGuard(cfg.DisableAfterTrips, cfg.TripWindow)
	loop := lifecycle.Every("automation rule refresh", cfg.CacheTTL, func(ctx context.Context) {
		if err := s.cache.reload(ctx); err != nil && ctx.Err() == nil {
			s.log.WithError(err).Warn("automation rules: refresh failed; using the last list")
		}
	})
	s.refresher = lifecycle.Funcs("automation rule refresh",
		func(ctx context.Context) error {
			if err := s.cache.reload(ctx); err != nil {
				return fmt.Errorf("read automation rules: %w", err)
			}
			return loop.Start(ctx)
		}, loop.Stop)
	return s
}

// Refresher keeps the rules fresh: its Start reads them (a failure fails the start: rules
// would be silently skipped), then rereads them every CacheTTL until Stop.
func (s *Service) Refresher() lifecycle.Component { return s.refresher }

// SignalTopic is the change-bus topic that announces a change of rules: every replica rereads
// its rules within about a second.
const SignalTopic = "automation-rules"

// RulesChanged rereads the rules now: a change was announced (SignalTopic).
func (s *Service) RulesChanged(ctx context.Context) {
	if err := s.cache.reload(ctx); err != nil && ctx.Err() == nil {
		s.log.WithError(err).Warn("automation rules: reread after a change failed; using the last list until the next refresh")
	}
}

// Wants tells whether some rule names eventType: lifecycle events (platform.LifecycleEvent)
// are published only then.
func (s *Service) Wants(eventType int) bool { return s.cache.wants(eventType) }

// Name implements the router's PostProcessor.
func (*Service) Name() string { return "automations" }

// Accepts implements PostProcessor: events some rule (enabled or not: a disabled rule's
// decision is recorded too) names the type of, in their business unit.
func (s *Service) Accepts(ev *platform.EntityEvent) bool { return s.cache.has(ev) }

// Process implements PostProcessor: each matching rule decides, acts when it fires, and every
// decision is written in one transaction.
func (s *Service) Process(ctx context.Context, ev *platform.EntityEvent) error {
	rules := s.cache.matching(ev)
	if len(rules) == 0 {
		return nil
	}
	ds, err := s.decideAll(ctx, ev, rules)
	if len(ds) > 0 {
		if werr := s.record(ctx, ev, ds); werr != nil {
			return fmt.Errorf("record decisions: %w", werr)
		}
	}
	return err
}

// record writes ds with the event they were made on (its canonical JSON; in a blob when too
// large for a row).
func (s *Service) record(ctx context.Context, ev *platform.EntityEvent, ds []tables.Decision) error {
	canonical := *ev
	canonical.PayloadBlob = ""
	body, err := json.Marshal(&canonical)
	if err != nil {
		return err
	}
	inline, blob, err := s.d.Blobs.Offload(ctx, body, tables.MaxInlineSnapshot)
	if err != nil {
		return err
	}
	return s.d.Decisions.Put(ctx, ev.Key(), tables.DecidedEvent{Event: inline, Blob: blob}, ds)
}

// changed follows a change of rules made here: announced to every replica, read at once by
// this one. The change is stored: a failed announcement is logged, not the caller's error.
func (s *Service) changed(ctx context.Context) error {
	if s.d.Bus != nil {
		if err := s.d.Bus.PutSignal(ctx, SignalTopic); err != nil {
			s.log.WithError(err).Warn("automation rules: announcing a change failed; other replicas see it within their cache TTL")
		}
	}
	return s.cache.reload(ctx)
}
