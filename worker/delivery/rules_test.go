package delivery

import (
	"testing"
	"time"
)

func TestRetryWaitFollowsTheScheduleAndBoundsRetryAfter(t *testing.T) {
	s := []time.Duration{10 * time.Second, time.Minute, time.Hour}
	for _, c := range []struct {
		attempts  int
		requested time.Duration
		jitter    float64
		want      time.Duration
		ok        bool
	}{
		{1, 0, 0, 10 * time.Second, true},
		{1, 0, 0.999, 10*time.Second + 1998*time.Millisecond, true}, // up to a fifth more
		{2, 0, 0.5, 66 * time.Second, true},
		{2, 5 * time.Second, 0, time.Minute, true},       // a shorter Retry-After changes nothing
		{1, 30 * time.Second, 0, 30 * time.Second, true}, // a longer one is waited for
		{1, 48 * time.Hour, 0, time.Hour, true},          // up to the longest step
		{3, 0, 0, time.Hour, true},
		{4, 0, 0, 0, false}, // spent: 3 retries, 4 attempts
		{0, 0, 0, 0, false},
	} {
		got, ok := retryWait(s, c.attempts, c.requested, c.jitter)
		if got != c.want || ok != c.ok {
			t.Errorf("after attempt %d (Retry-After %s, jitter %g): %s %t, want %s %t", c.attempts, c.requested, c.jitter, got, ok, c.want, c.ok)
		}
	}
}
