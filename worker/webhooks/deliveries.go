package webhooks

import (
	"context"
	"errors"
	"fmt"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// KeepLogIn makes the endpoint channel keep each endpoint's delivery log in log (Deliveries
// reads it). Without it there is no log.
func (s *Service) KeepLogIn(log *tables.Deliveries) { s.deliveries = log }

// Observe implements delivery.Observer: the delivery's line in its endpoint's log follows each
// step the distributor stores.
func (c *Endpoint) Observe(ctx context.Context, m *platform.OutgoingMessage) error {
	if c.s.deliveries == nil {
		return nil
	}
	return c.s.deliveries.Put(ctx, m)
}

// DeliveriesQuery selects the lines of an endpoint's delivery log.
type DeliveriesQuery struct {
	Limit  int  // 1-100; 0: 20
	Failed bool // only the deliveries that failed for good (state Failed)
}

// MaxDeliveries is the most lines Deliveries returns at once.
const MaxDeliveries = 100

// Deliveries lists the latest deliveries to endpoint id, newest first: state, attempts, the
// receiver's status or the last error, the last attempt's latency, when it was created and
// last updated, the event key and the delivery key. Never the URL or the body. An endpoint
// that does not exist is platform.ErrInvalidInput; so is a limit outside 1-100. Deliveries
// created by a version without the log are not in it (trace shows them).
func (s *Service) Deliveries(ctx context.Context, id string, q DeliveriesQuery) ([]tables.Delivery, error) {
	if q.Limit == 0 {
		q.Limit = 20
	}
	if q.Limit < 1 || q.Limit > MaxDeliveries {
		return nil, fmt.Errorf("%w: limit: want 1-%d, got %d", platform.ErrInvalidInput, MaxDeliveries, q.Limit)
	}
	if _, err := s.store.Get(ctx, id); errors.Is(err, platform.ErrNotFound) {
		return nil, fmt.Errorf("%w: no webhook endpoint %s", platform.ErrInvalidInput, id)
	} else if err != nil {
		return nil, err
	}
	if s.deliveries == nil {
		return []tables.Delivery{}, nil
	}
	return s.deliveries.List(ctx, id, tables.DeliveriesOptions{Limit: q.Limit, Failed: q.Failed})
}
