package webhooks

import (
	"context"
	"errors"
	"fmt"

	"github.com/platform/platform"
)

// EndpointChannel is the delivery channel of integrators' endpoints ("endpoint"): a message's
// address is the endpoint id, and it is POSTed to the endpoint's URL, signed with the
// endpoint's secret.
func (s *Service) EndpointChannel() *Endpoint { return &Endpoint{s: s} }

// Endpoint implements delivery.Channel for webhook deliveries.
type Endpoint struct{ s *Service }

// CheckAddress refuses every address: deliveries come from subscriptions, never from a
// caller's recipient list.
func (*Endpoint) CheckAddress(context.Context, string) error {
	return errors.New(`channel "endpoint" is for webhook subscriptions; a job cannot name it`)
}

// Send implements delivery.Channel. The endpoint is read as it is now: disabled or removed
// since the delivery was created fails it for good; its URL must still pass the SSRF rule.
func (c *Endpoint) Send(ctx context.Context, m *platform.OutgoingMessage) (string, error) {
	s := c.s
	e, err := s.store.Get(ctx, m.Recipient.Address)
	if errors.Is(err, platform.ErrNotFound) {
		return "", platform.Permanent(fmt.Errorf("endpoint %s no longer exists", m.Recipient.Address))
	}
	if err != nil {
		return "", err
	}
	if !e.Enabled {
		return "", platform.Permanent(fmt.Errorf("endpoint %s is disabled", e.ID))
	}
	if err := s.targets.CheckURL(ctx, e.URL); errors.Is(err, ErrForbiddenTarget) {
		return "", platform.Permanent(err)
	} else if err != nil {
		return "", err // the resolver failed for now: a retry may reach it
	}
	body, err := s.blobs.Resolve(ctx, []byte(m.Text), m.BodyBlob)
	if err != nil {
		return "", err
	}
	_, eventKey, _ := platform.ParseDeliveryKey(m.Key)
	return Post(ctx, s.targets.Client(), e.URL, e.Secret, body,
		map[string]string{"Idempotency-Key": m.Key, "X-Platform-Event-Key": eventKey})
}
