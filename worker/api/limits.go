package api

import (
	"cmp"
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits bound what one principal, and everyone together, may hold of the API. Zero fields
// take the defaults their comments give.
type Limits struct {
	// JobsPerSecond is how many notification jobs one principal may create per second, with
	// bursts of twice as many; past it, 429 with Retry-After (PLATFORM_JOBS_PER_SECOND).
	// Default 10.
	JobsPerSecond float64
	// Streams is how many change streams may be open at once, in all. Default 1000.
	Streams int
	// StreamsPerPrincipal is how many one principal may hold. Default 10.
	StreamsPerPrincipal int
	// StreamHeartbeat is how often a change stream sends a keep-alive and checks its
	// credentials again (a revoked key or an expired token ends it). Default 15 s.
	StreamHeartbeat time.Duration
	// SupportReadTimeout bounds the support reads whose cost grows with a table, not with the
	// answer — GET /v1/attention and /v1/messages (scans), GET /v1/timeline (a trace per row) —
	// within the server's 30 s write timeout, which does not end a request's work; past it, 504
	// naming what took too long. Default 20 s.
	SupportReadTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	l.JobsPerSecond = cmp.Or(l.JobsPerSecond, 10)
	l.Streams = cmp.Or(l.Streams, 1000)
	l.StreamsPerPrincipal = cmp.Or(l.StreamsPerPrincipal, 10)
	l.StreamHeartbeat = cmp.Or(l.StreamHeartbeat, 15*time.Second)
	l.SupportReadTimeout = cmp.Or(l.SupportReadTimeout, 20*time.Second)
	return l
}

// supportRead bounds request r's work by Limits.SupportReadTimeout: the request to serve it
// with, and the cancel to defer.
func (d *server) supportRead(r *http.Request) (*http.Request, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), d.Limits.SupportReadTimeout)
	return r.WithContext(ctx), cancel
}

// timedOut answers 504 naming what, when err is the end of a support read's time
// (supportRead) and not of its caller (r, the request as it came, has not ended); it reports
// whether it answered.
func (d *server) timedOut(rw http.ResponseWriter, r *http.Request, what string, err error) bool {
	if !errors.Is(err, context.DeadlineExceeded) || r.Context().Err() != nil {
		return false
	}
	d.serverError(rw, what, err, http.StatusGatewayTimeout, "took longer than "+d.Limits.SupportReadTimeout.String())
	return true
}

// rateLimits is a token bucket per principal. Buckets idle long enough to be full again are
// dropped when the map grows, so a principal that went away costs nothing.
type rateLimits struct {
	every float64
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

const maxBuckets = 10_000

func newRateLimits(perSecond float64) *rateLimits {
	return &rateLimits{every: perSecond, burst: max(1, int(math.Ceil(2*perSecond))), buckets: map[string]*bucket{}}
}

// take spends one token of principal id's bucket; when there is none it returns how long
// until there is.
func (l *rateLimits) take(id string) (ok bool, retryAfter time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[id]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.dropFull(now)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Limit(l.every), l.burst)}
		l.buckets[id] = b
	}
	b.used = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// dropFull forgets the buckets that have refilled since their last use: forgetting them
// changes nothing.
func (l *rateLimits) dropFull(now time.Time) {
	full := time.Duration(float64(l.burst) / l.every * float64(time.Second))
	for id, b := range l.buckets {
		if now.Sub(b.used) > full {
			delete(l.buckets, id)
		}
	}
}

// tooMany answers 429 with a Retry-After in whole seconds (at least 1).
func tooMany(rw http.ResponseWriter, retryAfter time.Duration, msg string) {
	rw.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(retryAfter.Seconds())))))
	writeJSON(rw, http.StatusTooManyRequests, map[string]string{"error": msg, "requestId": rw.Header().Get(requestIDHeader)})
}

// streamSlots counts open change streams, in all and per principal.
type streamSlots struct {
	total, perPrincipal int

	mu   sync.Mutex
	open int
	by   map[string]int
}

func newStreamSlots(total, perPrincipal int) *streamSlots {
	return &streamSlots{total: total, perPrincipal: perPrincipal, by: map[string]int{}}
}

// acquire takes a slot for principal id; the reason says which bound is reached when none is
// left. release gives it back.
func (s *streamSlots) acquire(id string) (release func(), reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.open >= s.total:
		return nil, "too many change streams are open on this replica (" + strconv.Itoa(s.total) + "): try again later, or another replica"
	case s.by[id] >= s.perPrincipal:
		return nil, "this principal holds " + strconv.Itoa(s.perPrincipal) + " change streams already: close one first"
	}
	s.open++
	s.by[id]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.open--
			if s.by[id]--; s.by[id] == 0 {
				delete(s.by, id)
			}
		})
	}, ""
}
