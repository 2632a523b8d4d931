package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// endpointCache keeps the webhook endpoints in memory, refreshed every ttl, so that deciding
// whether an event has subscribers costs no request per event.
type endpointCache struct {
	store *tables.Endpoints
	ttl   time.Duration
	list  atomic.Pointer[[]*tables.Endpoint]

	mu      sync.Mutex
	fetched time.Time
}

func (c *endpointCache) refresh(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.fetched) < c.ttl && c.list.Load() != nil {
		return nil
	}
	all, err := c.store.List(ctx)
	if err != nil {
		return err
	}
	c.list.Store(&all)
	c.fetched = time.Now()
	return nil
}

// reload reads the list now (after a change made by this process).
func (c *endpointCache) reload(ctx context.Context) error {
	c.mu.Lock()
	c.fetched = time.Time{}
	c.mu.Unlock()
	return c.refresh(ctx)
}

func (c *endpointCache) matching(ev *platform.EntityEvent) []*tables.Endpoint {
	l := c.list.Load()
	if l == nil {
		return nil
	}
	var out []*tables.Endpoint
	for _, e := range *l {
		if e.Subscribes(ev) {
			out = append(out, e)
		}
	}
	return out
}

// WebhookProcessor is the post-processor that delivers events to the webhook endpoints
// subscribed to them: one delivery per (endpoint, event), keyed from both, sent by the
// distributor with the same claim-before-send as notifications.
type WebhookProcessor struct {
	n     *notifications
	cache *endpointCache
}

// Name implements PostProcessor.
func (*WebhookProcessor) Name() string { return "webhooks" }

// Accepts implements PostProcessor: events some enabled endpoint subscribes to.
func (p *WebhookProcessor) Accepts(ev *platform.EntityEvent) bool {
	return len(p.cache.matching(ev)) > 0
}

// DeliveryKey is the key of the delivery of event eventKey to endpoint endpointID.
func DeliveryKey(endpointID, eventKey string) string {
	return "webhook:" + endpointID + ":" + eventKey
}

// Process implements PostProcessor.
func (p *WebhookProcessor) Process(ctx context.Context, ev *platform.EntityEvent) error {
	canonical := *ev
	canonical.PayloadBlob = "" // the receiver gets the payload itself
	body, err := json.Marshal(&canonical)
	if err != nil {
		return err
	}
	var blob string
	if len(body) > tables.MaxInlineSnapshot {
		if blob, err = p.n.blobs.PutPayload(ctx, body); err != nil {
			return err
		}
	}
	for _, e := range p.cache.matching(ev) {
		m := &platform.OutgoingMessage{
			Key: DeliveryKey(e.ID, ev.Key()), BusinessUnitID: ev.BusinessUnitID,
			Recipient: platform.Recipient{Channel: platform.ChannelEndpoint, Address: e.ID},
			Subject:   fmt.Sprintf("event %d", ev.EventTypeID),
			Trail:     []platform.Step{p.n.step("webhooks", "delivery created", "endpoint "+e.ID)},
		}
		if blob != "" {
			m.BodyBlob = blob
		} else {
			m.Text = string(body)
		}
		if err := p.n.ensureMessage(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// endpointProvider delivers to an integrator's endpoint, signed with that endpoint's secret.
type endpointProvider struct {
	n       *notifications
	store   *tables.Endpoints
	targets *targets
}

func (p *endpointProvider) Send(ctx context.Context, m *platform.OutgoingMessage) (string, error) {
	e, err := p.store.Get(ctx, m.Recipient.Address)
	if errors.Is(err, platform.ErrNotFound) {
		return "", platform.Permanent(fmt.Errorf("endpoint %s no longer exists", m.Recipient.Address))
	}
	if err != nil {
		return "", err
	}
	if !e.Enabled {
		return "", platform.Permanent(fmt.Errorf("endpoint %s is disabled", e.ID))
	}
	if err := p.targets.checkURL(ctx, e.URL); err != nil {
		return "", platform.Permanent(err)
	}
	body := []byte(m.Text)
	if m.BodyBlob != "" {
		if body, err = p.n.blobs.GetPayload(ctx, m.BodyBlob); err != nil {
			return "", err
		}
	}
	eventKey := strings.TrimPrefix(m.Key, "webhook:"+e.ID+":")
	return postSigned(ctx, p.targets.client(30*time.Second), e.URL, e.Secret, body,
		map[string]string{"Idempotency-Key": m.Key, "X-Platform-Event-Key": eventKey})
}

// NewEndpoint is a subscription to add.
type NewEndpoint struct {
	URL            string `json:"url"`
	BusinessUnitID int64  `json:"businessUnitId"`
	EventTypes     []int  `json:"eventTypes"`
	Secret         string `json:"secret,omitempty"` // empty: one is generated
}

// AddWebhookEndpoint subscribes a URL. The URL must pass the SSRF rule. It returns the
// endpoint, with its secret (generated when none was given: shown once, never again).
func (w *Worker) AddWebhookEndpoint(ctx context.Context, ne NewEndpoint) (*tables.Endpoint, error) {
	if ne.BusinessUnitID <= 0 {
		return nil, fmt.Errorf("%w: businessUnitId: want > 0", ErrInvalidInput)
	}
	if len(ne.EventTypes) == 0 {
		return nil, fmt.Errorf("%w: eventTypes: want at least one", ErrInvalidInput)
	}
	for _, t := range ne.EventTypes {
		if t <= 0 {
			return nil, fmt.Errorf("%w: eventTypes: %d is not a valid event type", ErrInvalidInput, t)
		}
	}
	if err := w.targets.checkURL(ctx, ne.URL); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	if ne.Secret == "" {
		var b [32]byte
		_, _ = rand.Read(b[:])
		ne.Secret = hex.EncodeToString(b[:])
	}
	e := &tables.Endpoint{ID: platform.NewSourceKey(), BusinessUnitID: ne.BusinessUnitID, EventTypes: ne.EventTypes,
		URL: ne.URL, Secret: ne.Secret, Enabled: true, CreatedAt: time.Now().UTC()}
	if err := w.tables.Endpoints().Add(ctx, e); err != nil {
		return nil, err
	}
	// This replica delivers at once; the others within their EndpointCacheTTL.
	return e, w.hooks.reload(ctx)
}

// WebhookEndpoints lists the endpoints (secrets are never serialised).
func (w *Worker) WebhookEndpoints(ctx context.Context) ([]*tables.Endpoint, error) {
	return w.tables.Endpoints().List(ctx)
}

// DisableWebhookEndpoint stops deliveries to endpoint id.
func (w *Worker) DisableWebhookEndpoint(ctx context.Context, id string) error {
	err := w.tables.Endpoints().Disable(ctx, id)
	if errors.Is(err, platform.ErrNotFound) {
		return fmt.Errorf("%w: no webhook endpoint %s", ErrInvalidInput, id)
	}
	if err != nil {
		return err
	}
	return w.hooks.reload(ctx)
}
