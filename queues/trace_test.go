package queues

import (
	"encoding/base64"
	"encoding/json"
	"testing"
)

const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestWithTraceparentPutsItFirstAndKeepsTheRest(t *testing.T) {
	for _, c := range []struct{ in, tp, want string }{
		{`{"jobKey":"k"}`, tp, `{"traceparent":"` + tp + `","jobKey":"k"}`},
		{`{}`, tp, `{"traceparent":"` + tp + `"}`},
		{`{"jobKey":"k"}`, "", `{"jobKey":"k"}`}, // tracing off: byte for byte
		{`run_0123`, tp, `run_0123`},             // not an object: left alone
	} {
		got := string(withTraceparent([]byte(c.in), c.tp))
		if got != c.want {
			t.Errorf("withTraceparent(%s, %q) = %s, want %s", c.in, c.tp, got, c.want)
		}
		if c.tp != "" && got != c.in && !json.Valid([]byte(got)) {
			t.Errorf("withTraceparent(%s) = %s: not JSON", c.in, got)
		}
	}
}

func TestMessageTraceparentFindsItWhereverASenderPutIt(t *testing.T) {
	event := `{"eventTypeId":11,"traceparent":"` + tp + `","entityTypeId":1}`
	for name, c := range map[string]struct{ body, want string }{
		"first, as the platform writes it":  {`{"traceparent":"` + tp + `","jobKey":"k"}`, tp},
		"anywhere at the top level":         {event, tp},
		"PascalCase, as .NET writes it":     {`{"EventTypeId":11,"TraceParent":"` + tp + `"}`, tp},
		"base64 of an object":               {base64.StdEncoding.EncodeToString([]byte(event)), tp},
		"none":                              {`{"eventTypeId":11}`, ""},
		"a number":                          {`{"traceparent":5,"eventTypeId":11}`, ""},
		"an object":                         {`{"eventTypeId":11,"traceparent":{"a":1}}`, ""},
		"nested, not top level":             {`{"payload":{"traceparent":"` + tp + `"}}`, ""},
		"not JSON":                          {`{"traceparent`, ""},
		"a bare run id":                     {`run_0123456789abcdef0123456789abcdef`, ""},
		"empty":                             {``, ""},
		"unterminated first member":         {`{"traceparent":"00-4bf9`, ""},
		"a malformed one is returned as is": {`{"traceparent":"garbage","x":1}`, "garbage"}, // the propagator ignores it
	} {
		if got := messageTraceparent([]byte(c.body)); got != c.want {
			t.Errorf("%s: messageTraceparent(%s) = %q, want %q", name, c.body, got, c.want)
		}
	}
}
