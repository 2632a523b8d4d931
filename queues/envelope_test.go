package queues

import (
	"strings"
	"testing"
)

// Progress verifies only for the message, body, progress and key it was signed for: copied
// into another message, edited, or read with another key, it counts for nothing.
func TestRetryProgressVerifiesOnlyWhereItWasWritten(t *testing.T) {
	key, other := []byte(strings.Repeat("k", 32)), []byte(strings.Repeat("o", 32))
	st := retryState{Done: []string{"webhooks", "history"}, LastError: "boom"}
	wire := encodeWire("body", "id-1", st, key)
	if body, got, forged := decodeWire(wire, "id-1", key); forged || body != "body" || strings.Join(got.Done, ",") != "history,webhooks" || got.LastError != "boom" {
		t.Fatalf("its own message: body %q, state %+v, forged %v; want the progress back", body, got, forged)
	}
	for name, c := range map[string]struct {
		wire, id string
		key      []byte
	}{
		"another message":  {wire, "id-2", key},
		"another key":      {wire, "id-1", other},
		"another body":     {strings.Replace(wire, `"body":"body"`, `"body":"evil"`, 1), "id-1", key},
		"more steps done":  {strings.Replace(wire, `"history","webhooks"`, `"history","notify","webhooks"`, 1), "id-1", key},
		"another error":    {strings.Replace(wire, `"boom"`, `"quiet"`, 1), "id-1", key},
		"the mac stripped": {strings.Replace(wire, `"mac":`, `"macx":`, 1), "id-1", key},
	} {
		body, got, forged := decodeWire(c.wire, c.id, c.key)
		if !forged || len(got.Done) != 0 || got.LastError != "" {
			t.Errorf("%s: state %+v, forged %v; want the progress dropped", name, got, forged)
		}
		if name != "another body" && body != "body" {
			t.Errorf("%s: body %q, want the envelope's body", name, body)
		}
	}
}
