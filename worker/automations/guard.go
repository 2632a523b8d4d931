package automations

import (
	"sync"
	"time"
)

// guard keeps, in this replica, each rule's rate-limit buckets and its recent trips (rate
// limit or loop guard), to disable a rule that keeps tripping.
type guard struct {
	tripsToDisable int
	window         time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket     // rule id + "\x00" + rate key
	trips   map[string][]time.Time // rule id → recent trips, oldest first
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newGuard(tripsToDisable int, window time.Duration) *guard {
	return &guard{tripsToDisable: tripsToDisable, window: window, buckets: map[string]*bucket{}, trips: map[string][]time.Time{}}
}

// allow takes one token from the bucket of (rule, key): Count tokens, refilled evenly over Per.
func (g *guard) allow(ruleID, key string, rl *RateLimit, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	id := ruleID + "\x00" + key
	b := g.buckets[id]
	capacity := float64(rl.Count)
	if b == nil {
		if len(g.buckets) > 100_000 {
			g.buckets = map[string]*bucket{} // a runaway key space: start afresh, not without bound
		}
		b = &bucket{tokens: capacity, at: now}
		g.buckets[id] = b
	}
	b.tokens = min(capacity, b.tokens+now.Sub(b.at).Seconds()*capacity/time.Duration(rl.Per).Seconds())
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// trip records that ruleID was stopped by its rate limit or the loop guard; it reports true
// when that makes tripsToDisable within the window (once: the count starts again).
func (g *guard) trip(ruleID string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	ts := g.trips[ruleID]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > g.window {
		i++
	}
	ts = append(ts[i:], now)
	if len(ts) >= g.tripsToDisable {
		delete(g.trips, ruleID)
		return true
	}
	g.trips[ruleID] = ts
	return false
}
