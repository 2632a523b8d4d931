package automations

import (
	"crypto/sha256"
	"sync"
	"time"
)

// guard keeps, in this replica, each rule's rate-limit buckets and its recent trips (rate
// limit or loop guard), to disable a rule that keeps tripping.
type guard struct {
	tripsToDisable int
	window         time.Duration

	mu      sync.Mutex
	buckets map[bucketKey]*bucket
	trips   map[string][]time.Time // rule id → recent trips, oldest first
}

type bucket struct {
	tokens float64
	at     time.Time
}

// bucketKey is a rule and a hash of its rate key: a key of any length costs 32 bytes.
type bucketKey struct {
	rule string
	key  [sha256.Size]byte
}

func newGuard(tripsToDisable int, window time.Duration) *guard {
	return &guard{tripsToDisable: tripsToDisable, window: window, buckets: map[bucketKey]*bucket{}, trips: map[string][]time.Time{}}
}

// refund gives back the token allow took for (rule, key): the event fired nothing.
func (g *guard) refund(ruleID, key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b := g.buckets[bucketKey{ruleID, sha256.Sum256([]byte(key))}]; b != nil {
		b.tokens++
	}
}

// allow takes one token from the bucket of (rule, key): Count tokens, refilled evenly over Per.
func (g *guard) allow(ruleID, key string, rl *RateLimit, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	id := bucketKey{ruleID, sha256.Sum256([]byte(key))}
	b := g.buckets[id]
	capacity := float64(rl.Count)
	if b == nil {
		if len(g.buckets) > 100_000 {
			g.buckets = map[bucketKey]*bucket{} // a runaway key space: start afresh, not without bound
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
