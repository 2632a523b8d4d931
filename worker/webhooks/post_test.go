package webhooks

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfterReadsSecondsAndDates(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"120", 2 * time.Minute, true},
		{" 0 ", 0, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true}, // past: no wait
		{"99999999999999999999", 7 * 24 * time.Hour, true},     // absurd: a week at most
		{"", 0, false},
		{"-5", 0, false},
		{"soon", 0, false},
	} {
		if got, ok := retryAfter(c.value, now); got != c.want || ok != c.ok {
			t.Errorf("Retry-After %q: %s %t, want %s %t", c.value, got, ok, c.want, c.ok)
		}
	}
}
