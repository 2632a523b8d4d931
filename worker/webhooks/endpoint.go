package webhooks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// EndpointChannel is the delivery channel of integrators' endpoints ("endpoint"): a message's
// address is the endpoint id, and it is POSTed to the endpoint's URL, signed with the
// endpoint's secret.
func (s *Service) EndpointChannel() *Endpoint { return &Endpoint{s: s} }

// Endpoint implements delivery.Channel for webhook deliveries. It is delivery.AtLeastOnce (a
// delivery cut off by a crash is sent again: integrators deduplicate on its Idempotency-Key)
// and delivery.Scheduled (RetrySchedule: retries outlast a receiver's outage of days).
type Endpoint struct{ s *Service }

// DefaultRetrySchedule is the wait before each retry of an endpoint delivery: 10s, 1m, 5m,
// 30m, 1h, 2h, 4h, 8h, then 12h five times — 13 retries, 14 attempts over about 75½ hours
// (about 3 days), each wait up to a fifth longer (jitter); then the delivery is Failed.
var DefaultRetrySchedule = []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 12 * time.Hour, 12 * time.Hour, 12 * time.Hour, 12 * time.Hour, 12 * time.Hour}

// AtLeastOnce implements delivery.AtLeastOnce: a delivery carries a stable Idempotency-Key
// (webhook:{endpointId}:{eventKey}), which integrators deduplicate on.
func (*Endpoint) AtLeastOnce() bool { return true }

// RetrySchedule implements delivery.Scheduled: Config.RetrySchedule.
func (c *Endpoint) RetrySchedule() []time.Duration {
	if len(c.s.cfg.RetrySchedule) == 0 {
		return DefaultRetrySchedule
	}
	return c.s.cfg.RetrySchedule
}

// CheckAddress refuses every address: deliveries come from subscriptions, never from a
// caller's recipient list.
func (*Endpoint) CheckAddress(context.Context, string) error {
	return errors.New(`channel "endpoint" is for webhook subscriptions; a job cannot name it`)
}

// Send implements delivery.Channel. The endpoint is read as it is now: disabled or removed
// since the delivery was created fails it for good; its URL must still pass the SSRF rule.
// Each attempt's outcome counts toward the endpoint's health (health.go), and is told to
// OnAttempt.
func (c *Endpoint) Send(ctx context.Context, m *platform.OutgoingMessage) (string, error) {
	e, status, id, err := c.send(ctx, m)
	if e != nil && !errors.Is(ctx.Err(), context.Canceled) { // a stop says nothing of the endpoint; a timeout does
		if c.s.attempted != nil {
			c.s.attempted(status, err)
		}
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		c.s.noteOutcome(hctx, e, err)
	}
	return id, err
}

// send is Send, and the endpoint when an attempt reached the point of calling it, with the
// status it answered (0: none).
func (c *Endpoint) send(ctx context.Context, m *platform.OutgoingMessage) (*tables.Endpoint, int, string, error) {
	s := c.s
	e, err := s.store.Get(ctx, m.Recipient.Address)
	if errors.Is(err, platform.ErrNotFound) {
		return nil, 0, "", platform.Permanent(fmt.Errorf("endpoint %s no longer exists", m.Recipient.Address))
	}
	if err != nil {
		return nil, 0, "", err
	}
	if !e.Enabled {
		return nil, 0, "", platform.Permanent(fmt.Errorf("endpoint %s is disabled", e.ID))
	}
	if err := s.targets.CheckURL(ctx, e.URL); errors.Is(err, ErrForbiddenTarget) {
		return e, 0, "", platform.Permanent(err)
	} else if err != nil {
		return e, 0, "", err // the resolver failed for now: a retry may reach it
	}
	body, err := s.blobs.Resolve(ctx, []byte(m.Text), m.BodyBlob)
	if err != nil {
		return nil, 0, "", err // our storage, not the endpoint, failed
	}
	_, eventKey, _ := platform.ParseDeliveryKey(m.Key)
	status, id, err := post(ctx, s.targets.Client(), e.URL, m.Key, e.Secrets(time.Now()), body,
		map[string]string{"Idempotency-Key": m.Key, "X-Platform-Event-Key": eventKey})
	return e, status, id, err
}

// OnAttempt calls f with each attempt to deliver to an integrator's endpoint, the same that
// count toward its health (not one that found the endpoint gone or disabled, failed on our
// own storage, or was cut short by a stop): the status the endpoint answered, or 0 and the
// error when there was no answer (its URL refused by the SSRF rule, unreachable, timed out).
// Set before deliveries run.
func (s *Service) OnAttempt(f func(status int, err error)) { s.attempted = f }
