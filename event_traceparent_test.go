package platform_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/platform/platform"
)

// A traceparent on an event (docs/contracts.md: the platform writes one with tracing on, and
// other senders may) is transport, not content: whatever its value or type, the event decodes
// to the same key and the same canonical JSON as without it, and is never refused for it.
func TestATraceparentIsNeitherPartOfTheEventNorAReasonToRefuseIt(t *testing.T) {
	const plain = `{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"entityId":7,"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z","payload":{"a":1}}`
	want, err := platform.DecodeEvent([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := want.MarshalJSON()
	for _, field := range []string{
		`"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`,
		`"TraceParent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`,
		`"traceparent":"not a trace"`,
		`"traceparent":"00-00000000000000000000000000000000-0000000000000000-00"`,
		`"traceparent":42`,
		`"traceparent":{"version":0}`,
		`"traceparent":null`,
	} {
		body := strings.Replace(plain, "{", "{"+field+",", 1)
		got, err := platform.DecodeEvent([]byte(body))
		if err != nil {
			t.Errorf("%s: refused: %v", field, err)
			continue
		}
		gotJSON, _ := got.MarshalJSON()
		if got.Key() != want.Key() || !bytes.Equal(gotJSON, wantJSON) {
			t.Errorf("%s: key %s, JSON %s; want %s, %s as without it", field, got.Key(), gotJSON, want.Key(), wantJSON)
		}
	}
}
