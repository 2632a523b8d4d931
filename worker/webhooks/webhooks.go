// Package webhooks owns outgoing webhooks: events delivered to integrators' endpoints, and the
// "webhook" channel of notification recipients. It owns the WebhookEndpoints table
// (subscriptions: a URL, a business unit, event types and a signing secret), a cache of it
// (reread when a change is announced on the change bus: SignalTopic), each endpoint's delivery
// log (WebhookDeliveries), the SSRF rule every webhook target must pass, one HTTP client for
// all of them, and signing.
//
// Invariants:
//   - One delivery per (endpoint, event), keyed webhook:{endpointId}:{eventKey}
//     (platform.DeliveryKey): a redelivered event finds its deliveries there. Deliveries are
//     OutgoingMessages on channel "endpoint", sent by the delivery distributor with the same
//     claim-before-send as notifications.
//   - A target is checked when the endpoint is added and again on every connection, on the
//     address actually dialled: DNS cannot be turned against the rule later.
//   - A secret is shown once, when the endpoint is added or its secret rotated, and never
//     logged or listed; a given one must pass CheckSecret, and none given is generated.
//   - An endpoint has at most two secrets that sign: the current one and, for a while after a
//     rotation, the one it replaced (Endpoint.Secrets); every delivery carries a signature by
//     each (SignRequest).
//   - A URL is stored whole (to send to) and shown only redacted (RedactURL): in lists, errors
//     and logs, its userinfo, query and fragment are "redacted".
//   - A webhook-channel recipient is signed with its own secret, derived from
//     PLATFORM_WEBHOOK_SECRET and its URL (RecipientSecret), never with the shared one.
package webhooks

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/internal/lifecycle"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/delivery"
)

// Config tunes webhook deliveries. Zero fields take the defaults their comments give.
type Config struct {
	// CacheTTL is how often the list of endpoints is reread regardless: a backstop, since a
	// change is announced on the change bus (SignalTopic) and every replica rereads the list
	// within about a second of it. Default 10s.
	CacheTTL time.Duration
	// RetrySchedule is the wait before each retry of a delivery whose attempt failed
	// (delivery.Scheduled: up to a fifth more each, or the receiver's Retry-After up to the
	// longest step); after the last the delivery is Failed. Default DefaultRetrySchedule.
	RetrySchedule []time.Duration
	// DisableAfter disables an endpoint whose every delivery attempt failed for this long, none
	// succeeding in between. Default 120h (5 days).
	DisableAfter time.Duration
}

// Service is the webhooks concern: the post-processor that creates deliveries, the endpoint
// channel that sends them, and the endpoints' administration.
type Service struct {
	cfg        Config
	log        logrus.FieldLogger
	store      *tables.Endpoints
	targets    *Targets
	blobs      *blobs.Client
	deliver    *delivery.Distributor
	cache      *cache
	refresher  lifecycle.Component
	bus        *tables.Changes             // where changes are announced (AnnounceOn); nil: nowhere
	deliveries *tables.Deliveries          // the delivery log (KeepLogIn); nil: none
	attempted  func(status int, err error) // OnAttempt; nil: nobody is told
}

// New returns the webhooks concern over store; deliveries go through d, and targets decides
// which URLs may be called.
func New(cfg Config, log logrus.FieldLogger, store *tables.Endpoints, targets *Targets, b *blobs.Client, d *delivery.Distributor) *Service {
	cfg.DisableAfter = cmp.Or(cfg.DisableAfter, 120*time.Hour)
	s := &Service{cfg: cfg, log: log, store: store, targets: targets, blobs: b, deliver: d,
		cache: &cache{store: store, ttl: cmp.Or(cfg.CacheTTL, 10*time.Second)}}
	s.refresher = s.newRefresher()
	return s
}

// Refresher keeps the cache fresh: its Start reads the endpoints (a failure fails the start:
// deliveries would be silently skipped), then rereads them every CacheTTL until Stop.
func (s *Service) Refresher() lifecycle.Component { return s.refresher }

func (s *Service) newRefresher() lifecycle.Component {
	loop := lifecycle.Every("webhook endpoint refresh", s.cache.ttl, func(ctx context.Context) {
		if err := s.cache.refresh(ctx); err != nil && ctx.Err() == nil {
			s.log.WithError(err).Warn("webhook endpoints: refresh failed; using the last list")
		}
	})
	return lifecycle.Funcs("webhook endpoint refresh",
		func(ctx context.Context) error {
			if err := s.cache.refresh(ctx); err != nil {
				return fmt.Errorf("read webhook endpoints: %w", err)
			}
			return loop.Start(ctx)
		},
		loop.Stop)
}

// Name implements the router's PostProcessor.
func (*Service) Name() string { return "webhooks" }

// Accepts implements PostProcessor: events some enabled endpoint subscribes to.
func (s *Service) Accepts(ev *platform.EntityEvent) bool { return len(s.cache.matching(ev)) > 0 }

// Process implements PostProcessor: one delivery per subscribed endpoint, carrying the event
// as JSON (its payload inline: the receiver gets the payload itself).
func (s *Service) Process(ctx context.Context, ev *platform.EntityEvent) error {
	return s.ensureDeliveries(ctx, ev, s.cache.matching(ev), "delivery created")
}

// ensureDeliveries ensures ev's delivery to each of endpoints; step names how it came to be in
// the delivery's trail (the trail is not part of its content).
func (s *Service) ensureDeliveries(ctx context.Context, ev *platform.EntityEvent, endpoints []*tables.Endpoint, step string) error {
	return s.ensureKeyed(ctx, ev, endpoints, step, nil)
}

// DeliverAs ensures one delivery of ev to endpoint id under deliveryKey, whether or not the
// endpoint subscribes to ev's type: the action of automation rule ruleID, making an effect at
// chain depth depth. An unknown or disabled endpoint is platform.ErrInvalidInput.
func (s *Service) DeliverAs(ctx context.Context, id string, ev *platform.EntityEvent, deliveryKey, ruleID string, depth int) error {
	e, err := s.endpointFor(ctx, id, ev.BusinessUnitID)
	if err != nil {
		return err
	}
	if !e.Enabled {
		return fmt.Errorf("%w: webhook endpoint %s is disabled", platform.ErrInvalidInput, id)
	}
	return s.ensureKeyed(ctx, ev, []*tables.Endpoint{e}, "delivery created by automation rule "+ruleID, func(m *platform.OutgoingMessage) {
		m.Key, m.CausedByRule, m.ChainDepth = deliveryKey, ruleID, depth
	})
}

// CheckEndpoint refuses an endpoint id that is not businessUnitID's (platform.ErrInvalidInput).
func (s *Service) CheckEndpoint(ctx context.Context, id string, businessUnitID int64) error {
	_, err := s.endpointFor(ctx, id, businessUnitID)
	return err
}

func (s *Service) endpointFor(ctx context.Context, id string, businessUnitID int64) (*tables.Endpoint, error) {
	if e := s.cache.get(id); e != nil && e.BusinessUnitID == businessUnitID {
		return e, nil // as every replica sees it within a second of a change
	}
	e, err := s.store.Get(ctx, id)
	if errors.Is(err, platform.ErrNotFound) || (err == nil && e.BusinessUnitID != businessUnitID) {
		return nil, fmt.Errorf("%w: no webhook endpoint %s in business unit %d", platform.ErrInvalidInput, id, businessUnitID)
	}
	return e, err
}

// ensureKeyed ensures ev's delivery to each of endpoints, keyed by the endpoint and the event
// unless set changes that (and what else it sets) on each message before it is ensured.
func (s *Service) ensureKeyed(ctx context.Context, ev *platform.EntityEvent, endpoints []*tables.Endpoint, step string, set func(*platform.OutgoingMessage)) error {
	canonical := *ev
	canonical.PayloadBlob = ""
	body, err := json.Marshal(&canonical)
	if err != nil {
		return err
	}
	inline, blob, err := s.blobs.Offload(ctx, body, tables.MaxInlineSnapshot)
	if err != nil {
		return err
	}
	for _, e := range endpoints {
		m := &platform.OutgoingMessage{
			Key: platform.DeliveryKey(e.ID, ev.Key()), BusinessUnitID: ev.BusinessUnitID,
			Recipient: platform.Recipient{Channel: platform.ChannelEndpoint, Address: e.ID},
			Subject:   fmt.Sprintf("event %d", ev.EventTypeID),
			Text:      string(inline), BodyBlob: blob,
			Trail: []platform.Step{platform.NewStep("webhooks", step, "endpoint "+e.ID)},
			// An event a rule published keeps its chain: this delivery's outcomes are the
			// rule's too (a rule's own delivery sets its own below).
			CausedByRule: ev.CausedByRule, ChainDepth: ev.ChainDepth,
		}
		if set != nil {
			set(m)
		}
		if err := s.deliver.Ensure(ctx, m, "webhooks"); err != nil {
			return err
		}
	}
	return nil
}

// DeliveryKeys are the keys of the deliveries ev has (or will have) by the endpoints that
// subscribe to it now.
func (s *Service) DeliveryKeys(ev *platform.EntityEvent) []string {
	var keys []string
	for _, e := range s.cache.matching(ev) {
		keys = append(keys, platform.DeliveryKey(e.ID, ev.Key()))
	}
	return keys
}

// NewEndpoint is a subscription to add.
type NewEndpoint struct {
	URL            string `json:"url"`
	BusinessUnitID int64  `json:"businessUnitId"`
	EventTypes     []int  `json:"eventTypes"`
	Secret         string `json:"secret,omitempty"` // empty: one is generated (NewSecret)
}

// Add subscribes a URL. The URL must pass the SSRF rule, and a secret given must pass
// CheckSecret. It returns the endpoint, with its secret (generated when none was given: shown
// once, never again).
func (s *Service) Add(ctx context.Context, ne NewEndpoint) (*tables.Endpoint, error) {
	if ne.BusinessUnitID <= 0 {
		return nil, fmt.Errorf("%w: businessUnitId: want > 0", platform.ErrInvalidInput)
	}
	if len(ne.EventTypes) == 0 {
		return nil, fmt.Errorf("%w: eventTypes: want at least one", platform.ErrInvalidInput)
	}
	for _, t := range ne.EventTypes {
		if t <= 0 {
			return nil, fmt.Errorf("%w: eventTypes: %d is not a valid event type", platform.ErrInvalidInput, t)
		}
		if platform.IsLifecycleEvent(t) {
			// Each delivery has lifecycle events of its own: a subscription to them would feed
			// itself. A rule's webhook action delivers them, under the loop guard.
			return nil, fmt.Errorf("%w: eventTypes: %d is a lifecycle event (%s): deliver it with an automation rule's webhook action", platform.ErrInvalidInput, t, platform.LifecycleEventTypes[t])
		}
	}
	if ne.Secret == "" {
		ne.Secret = NewSecret()
	} else if err := CheckSecret(ne.Secret); err != nil {
		return nil, err
	}
	if err := s.targets.CheckURL(ctx, ne.URL); errors.Is(err, ErrForbiddenTarget) {
		return nil, fmt.Errorf("%w: %v", platform.ErrInvalidInput, err)
	} else if err != nil {
		return nil, fmt.Errorf("check the webhook URL (try again): %w", err) // the resolver failed for now
	}
	e := &tables.Endpoint{ID: platform.NewSourceKey(), BusinessUnitID: ne.BusinessUnitID, EventTypes: ne.EventTypes,
		URL: ne.URL, Secret: ne.Secret, Enabled: true, CreatedAt: time.Now().UTC()}
	if err := s.store.Add(ctx, e); err != nil {
		return nil, err
	}
	// This replica delivers at once; the others within about a second.
	return e, s.changed(ctx)
}

// MaxExpireOldAfter bounds how long a rotated-out secret keeps signing: rotation is for
// replacing a secret, not for keeping two.
const MaxExpireOldAfter = 30 * 24 * time.Hour

// Rotation is a rotated endpoint secret: Secret, generated, shown once; the one it replaced
// signs too until OldSecretExpiresAt.
type Rotation struct {
	Secret             string    `json:"secret"`
	OldSecretExpiresAt time.Time `json:"oldSecretExpiresAt"`
}

// RotateSecret gives endpoint id a new, generated secret (NewSecret). The current one keeps
// signing, besides it, for expireOldAfter (0: it stops at once; at most MaxExpireOldAfter); a
// secret rotated out before is dropped. platform.ErrInvalidInput names a bad duration;
// platform.ErrNotFound is an unknown id.
func (s *Service) RotateSecret(ctx context.Context, id string, expireOldAfter time.Duration) (*Rotation, error) {
	if expireOldAfter < 0 || expireOldAfter > MaxExpireOldAfter {
		return nil, fmt.Errorf("%w: expireOldAfter: %s, want 0 (revoke the old secret at once) up to %s", platform.ErrInvalidInput, expireOldAfter, MaxExpireOldAfter)
	}
	r := &Rotation{Secret: NewSecret()}
	var keepUntil time.Time
	if expireOldAfter > 0 {
		keepUntil = time.Now().Add(expireOldAfter)
	}
	until, err := s.store.RotateSecret(ctx, id, r.Secret, keepUntil)
	if err != nil {
		return nil, err
	}
	r.OldSecretExpiresAt = until
	// Deliveries read the endpoint as they send; the caches too hold it whole: every replica
	// rereads it.
	return r, s.changed(ctx)
}

// List lists the endpoints as they may be shown: without their secrets, and with their URLs
// redacted (RedactURL), since a query string often carries a credential.
func (s *Service) List(ctx context.Context) ([]*tables.Endpoint, error) {
	all, err := s.store.List(ctx)
	now := time.Now()
	for _, e := range all {
		e.URL, e.Secret, e.PreviousSecret = RedactURL(e.URL), "", ""
		if !e.PreviousSecretExpiresAt.After(now) {
			e.PreviousSecretExpiresAt = time.Time{} // nothing to say: one secret signs
		}
	}
	return all, err
}

// Disable stops deliveries to endpoint id.
func (s *Service) Disable(ctx context.Context, id string) error {
	err := s.store.Disable(ctx, id)
	if errors.Is(err, platform.ErrNotFound) {
		return fmt.Errorf("%w: no webhook endpoint %s", platform.ErrInvalidInput, id)
	}
	if err != nil {
		return err
	}
	return s.changed(ctx)
}

// Enable turns endpoint id back on — one disabled by hand, or by the worker after its
// deliveries failed for DisableAfter — with a clean slate (no reason, no failing mark). Events
// handled from then on are delivered; earlier ones only by a replay.
func (s *Service) Enable(ctx context.Context, id string) error {
	err := s.store.Enable(ctx, id)
	if errors.Is(err, platform.ErrNotFound) {
		return fmt.Errorf("%w: no webhook endpoint %s", platform.ErrInvalidInput, id)
	}
	if err != nil {
		return err
	}
	return s.changed(ctx)
}
