package settings

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// SignalTopic is the change-bus topic that tells every replica the settings database changed
// (platform settings changed, platform seed): each drops what its Cache holds.
const SignalTopic = "notification-settings"

// DefaultCacheTTL is how long a Cache keeps what it read when the worker is not told otherwise
// (PLATFORM_SETTINGS_CACHE_TTL).
const DefaultCacheTTL = 5 * time.Second

// Source is what a Cache reads through: the settings database.
type Source interface {
	Option(ctx context.Context, businessUnitID int64, notificationTypeID int) (Option, error)
	Subscribers(ctx context.Context, businessUnitID int64, notificationTypeID int) ([]Subscriber, error)
}

// Cache keeps the options and subscribers it read for TTL: a notification reads its option
// when its job is created and again, with its subscribers, when it is generated, and the
// settings of one (business unit, type) rarely change between two notifications. A change
// made in the database is seen within TTL, or at once after Invalidate (which the worker
// calls on SignalTopic). An option that is not seeded is kept as such; a failed read is not
// kept.
type Cache struct {
	src Source
	ttl time.Duration

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
	epoch   uint64 // Invalidate's count: a read that began before one is not kept
}

type cacheKey struct {
	unit int64
	typ  int
}

type cacheEntry struct {
	at          time.Time
	option      Option
	optionErr   error // nil or ErrNotSeeded
	hasOption   bool
	subscribers []Subscriber
	hasSubs     bool
}

// cacheLimit bounds the entries kept: past it, the expired ones go, and if none had, all.
const cacheLimit = 10_000

// NewCache reads src through a cache of ttl; ttl <= 0 keeps nothing (every read goes to src).
func NewCache(src Source, ttl time.Duration) *Cache {
	return &Cache{src: src, ttl: ttl, entries: map[cacheKey]cacheEntry{}}
}

// Option is src's Option, from the cache when it was read less than TTL ago.
func (c *Cache) Option(ctx context.Context, businessUnitID int64, notificationTypeID int) (Option, error) {
	k := cacheKey{businessUnitID, notificationTypeID}
	if e, ok := c.fresh(k); ok && e.hasOption {
		o := e.option
		o.Channels = slices.Clone(o.Channels)
		return o, e.optionErr
	}
	epoch := c.currentEpoch()
	o, err := c.src.Option(ctx, businessUnitID, notificationTypeID)
	if err == nil || errors.Is(err, ErrNotSeeded) {
		c.keep(k, epoch, func(e *cacheEntry) { e.option, e.optionErr, e.hasOption = o, err, true })
		o.Channels = slices.Clone(o.Channels)
	}
	return o, err
}

// Subscribers is src's Subscribers, from the cache when they were read less than TTL ago.
func (c *Cache) Subscribers(ctx context.Context, businessUnitID int64, notificationTypeID int) ([]Subscriber, error) {
	k := cacheKey{businessUnitID, notificationTypeID}
	if e, ok := c.fresh(k); ok && e.hasSubs {
		return slices.Clone(e.subscribers), nil
	}
	epoch := c.currentEpoch()
	subs, err := c.src.Subscribers(ctx, businessUnitID, notificationTypeID)
	if err == nil {
		c.keep(k, epoch, func(e *cacheEntry) { e.subscribers, e.hasSubs = slices.Clone(subs), true })
	}
	return subs, err
}

// Invalidate drops everything the cache holds, and any read still on its way is not kept.
func (c *Cache) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
	c.epoch++
}

func (c *Cache) currentEpoch() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

func (c *Cache) fresh(k cacheKey) (cacheEntry, bool) {
	if c.ttl <= 0 {
		return cacheEntry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	return e, ok && time.Since(e.at) < c.ttl
}

// keep records what a read that began at epoch found, unless an Invalidate came since. The
// option and the subscribers of a key are read apart: an entry keeps the first one's time,
// so neither outlives TTL.
func (c *Cache) keep(k cacheKey, epoch uint64, set func(*cacheEntry)) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch {
		return
	}
	e, ok := c.entries[k]
	if !ok || time.Since(e.at) >= c.ttl {
		e = cacheEntry{at: time.Now()}
	}
	set(&e)
	if _, had := c.entries[k]; !had && len(c.entries) >= cacheLimit {
		for key, old := range c.entries {
			if time.Since(old.at) >= c.ttl {
				delete(c.entries, key)
			}
		}
		if len(c.entries) >= cacheLimit {
			clear(c.entries)
		}
	}
	c.entries[k] = e
}
