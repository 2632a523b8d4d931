package notify

import (
	"errors"
	"strings"
	"testing"

	"github.com/platform/platform"
)

// FuzzTraceKind: whatever key a person pastes, the trace classifies it or refuses it as invalid
// input (a 400, exit 2), never panics; what it accepts fits in a table key, and what it calls an
// event parses as one. The seeds run in every go test.
func FuzzTraceKind(f *testing.F) {
	for _, s := range []string{"", "1:2:3:4", "1:2:3::4", "|", "a|b", "webhook:", "webhook:a:b", "notification-job:", "\x1b[31m\a\r",
		"11:1:7c9e6679-7425-40de-944b-e07fc1f90ae7:2026-11-22T09:00:00.1234567Z:1", "7C9E6679-7425-40DE-944B-E07FC1F90AE7",
		"notification-job:101:41:4:42:2026-11-22T10:00:00.0000000Z:2|email|a@example.com", strings.Repeat("/", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		kind, err := traceKind(key)
		if err != nil {
			if !errors.Is(err, platform.ErrInvalidInput) {
				t.Fatalf("traceKind(%q): %v is not invalid input", key, err)
			}
			return
		}
		if platform.KeyLength(key) > platform.MaxKeyLength {
			t.Fatalf("traceKind(%.40q) = %s for a key longer than any row's", key, kind)
		}
		if _, err := platform.ParseEventKey(key); kind == "event" && err != nil {
			t.Fatalf("traceKind(%q) = event, but it does not parse: %v", key, err)
		}
	})
}
