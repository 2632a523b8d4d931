package webhooks

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// cache keeps the webhook endpoints in memory, refreshed every ttl, so that deciding whether an
// event has subscribers costs no request per event.
type cache struct {
	store *tables.Endpoints
	ttl   time.Duration
	list  atomic.Pointer[[]*tables.Endpoint]

	mu      sync.Mutex
	fetched time.Time
}

func (c *cache) refresh(ctx context.Context) error {
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
func (c *cache) reload(ctx context.Context) error {
	c.mu.Lock()
	c.fetched = time.Time{}
	c.mu.Unlock()
	return c.refresh(ctx)
}

func (c *cache) matching(ev *platform.EntityEvent) []*tables.Endpoint {
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

// get is endpoint id as last read, or nil.
func (c *cache) get(id string) *tables.Endpoint {
	if l := c.list.Load(); l != nil {
		for _, e := range *l {
			if e.ID == id {
				return e
			}
		}
	}
	return nil
}
