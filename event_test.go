package platform_test

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform"
)

const camel = `{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityGuid":"7C9E6679-7425-40DE-944B-E07FC1F90AE7",` +
	`"businessUnitId":42,"createdOn":"2026-11-22T11:00:00.123456789+01:00","payload":{"firstName":"Ada"},"changedFields":["firstName"]}`

const pascal = `{"EventTypeId":12,"EntityTypeId":1,"ActionTypeId":2,"EntityGuid":"7c9e6679-7425-40de-944b-e07fc1f90ae7",` +
	`"BusinessUnitId":42,"CreatedOn":"2026-11-22T10:00:00.1234567Z","Payload":{"firstName":"Ada"},"ChangedFields":["firstName"]}`

func TestDecodeEncodingsAgreeOnKey(t *testing.T) {
	const want = "12:1:7c9e6679-7425-40de-944b-e07fc1f90ae7:2026-11-22T10:00:00.1234567Z:2"
	bodies := map[string]string{
		"camelCase":                            camel,
		"PascalCase":                           pascal,
		"base64":                               base64.StdEncoding.EncodeToString([]byte(camel)),
		"base64 + spaces":                      "  " + base64.StdEncoding.EncodeToString([]byte(pascal)) + "\n",
		"JSON with a BOM-less leading newline": "\n" + camel,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			ev, err := platform.DecodeEvent([]byte(body))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got := ev.Key(); got != want {
				t.Fatalf("key = %s, want %s", got, want)
			}
			if string(ev.Payload) != `{"firstName":"Ada"}` || len(ev.ChangedFields) != 1 {
				t.Fatalf("payload %s, changedFields %v", ev.Payload, ev.ChangedFields)
			}
		})
	}
}

func TestKeysWorkedExamples(t *testing.T) {
	cases := []struct {
		name, body, key, historyKey, partition string
	}{
		{
			name:       "guid wins, lowercased; offset to UTC; 9 digits truncated to 7",
			body:       `{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"entityGuid":"ABCDEF01-2345-6789-ABCD-EF0123456789","entityId":7,"businessUnitId":3,"createdOn":"2026-01-01T00:30:00.99999999-02:00"}`,
			key:        "11:1:abcdef01-2345-6789-abcd-ef0123456789:2026-01-01T02:30:00.9999999Z:1",
			historyKey: "entity-history:11:1:abcdef01-2345-6789-abcd-ef0123456789:2026-01-01T02:30:00.9999999Z:1",
			partition:  "1:abcdef01-2345-6789-abcd-ef0123456789",
		},
		{
			name:       "no guid: entityId; whole seconds get seven zeros",
			body:       `{"eventTypeId":22,"entityTypeId":2,"actionTypeId":2,"entityId":9001,"businessUnitId":3,"createdOn":"2026-11-22T10:00:00Z"}`,
			key:        "22:2:9001:2026-11-22T10:00:00.0000000Z:2",
			historyKey: "entity-history:22:2:9001:2026-11-22T10:00:00.0000000Z:2",
			partition:  "2:9001",
		},
		{
			name:       "nil guid and entityId 0: businessUnitId",
			body:       `{"eventTypeId":41,"entityTypeId":4,"actionTypeId":2,"entityGuid":"00000000-0000-0000-0000-000000000000","entityId":0,"businessUnitId":77,"createdOn":"2026-11-22T10:00:00.5+00:00"}`,
			key:        "41:4:77:2026-11-22T10:00:00.5000000Z:2",
			historyKey: "entity-history:41:4:77:2026-11-22T10:00:00.5000000Z:2",
			partition:  "4:77",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := platform.DecodeEvent([]byte(c.body))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got := ev.Key(); got != c.key {
				t.Errorf("key = %s, want %s", got, c.key)
			}
			if got := ev.HistoryEventKey(ev.EntityTypeID, ev.Identity()); got != c.historyKey {
				t.Errorf("history key = %s, want %s", got, c.historyKey)
			}
			if got := platform.HistoryPartitionKey(ev.EntityTypeID, ev.Identity()); got != c.partition {
				t.Errorf("partition = %s, want %s", got, c.partition)
			}
		})
	}
}

func TestDecodeRejectsNamingTheField(t *testing.T) {
	zeros := strings.Repeat("0", 64)
	base := `"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"businessUnitId":3,"createdOn":"2026-11-22T10:00:00Z"`
	cases := []struct{ name, body, want string }{
		{"empty", ``, "empty message body"},
		{"not JSON nor base64", `hello there`, "neither a JSON object nor base64"},
		{"array", `[{}]`, "not a JSON object"},
		{"truncated JSON", `{"eventTypeId":11,`, "invalid JSON"},
		{"base64 of non-JSON", base64.StdEncoding.EncodeToString([]byte("plain")), "does not decode to a JSON object"},
		{"missing eventTypeId", `{"entityTypeId":1,"actionTypeId":1,"businessUnitId":3,"createdOn":"2026-11-22T10:00:00Z"}`, "eventTypeId: required"},
		{"zero entityTypeId", `{"eventTypeId":11,"entityTypeId":0,"actionTypeId":1,"businessUnitId":3,"createdOn":"2026-11-22T10:00:00Z"}`, "entityTypeId: must be > 0"},
		{"negative businessUnitId", `{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"businessUnitId":-3,"createdOn":"2026-11-22T10:00:00Z"}`, "businessUnitId: must be > 0"},
		{"string eventTypeId", `{"eventTypeId":"11","entityTypeId":1,"actionTypeId":1,"businessUnitId":3,"createdOn":"2026-11-22T10:00:00Z"}`, "eventTypeId: want int"},
		{"fractional id", `{"eventTypeId":11.5,"entityTypeId":1,"actionTypeId":1,"businessUnitId":3,"createdOn":"2026-11-22T10:00:00Z"}`, "eventTypeId"},
		{"missing createdOn", `{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"businessUnitId":3}`, "createdOn: required"},
		{"createdOn without offset", `{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"businessUnitId":3,"createdOn":"2026-11-22T10:00:00"}`, "createdOn: want RFC 3339"},
		{"createdOn before 1601", `{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"businessUnitId":3,"createdOn":"1200-01-01T00:00:00Z"}`, "createdOn: 1200-01-01T00:00:00Z is outside"},
		{"bad guid", `{` + base + `,"entityGuid":"not-a-guid"}`, "entityGuid: want a UUID"},
		{"guid with a bad digit", `{` + base + `,"entityGuid":"7c9e6679-7425-40de-944b-e07fc1f90aeg"}`, "entityGuid: want a UUID"},
		{"negative entityId", `{` + base + `,"entityId":-1}`, "entityId: must be > 0"},
		{"payload not an object", `{` + base + `,"payload":[1,2]}`, "payload: want a JSON object"},
		{"changedFields with a number", `{` + base + `,"changedFields":["a",1]}`, "changedFields"},
		{"empty changed field", `{` + base + `,"changedFields":[""]}`, "changedFields[0]: empty"},
		{"payloadBlob with control characters", `{` + base + `,"payloadBlob":"a\u0001b"}`, "payloadBlob: contains control"},
		{"trailing garbage", `{` + base + `} x`, "invalid JSON"},
		{"payloadBlob unscoped (older publishers)", `{` + base + `,"payloadBlob":"sha256-` + zeros + `.json"}`, "payloadBlob: \"sha256-" + zeros + ".json\" is not a claim-check name of business unit 3"},
		{"payloadBlob of another business unit", `{` + base + `,"payloadBlob":"bu-1/sha256-` + zeros + `.json"}`, "not a claim-check name of business unit 3"},
		{"payloadBlob with a path", `{` + base + `,"payloadBlob":"bu-3/../bu-1/sha256-` + zeros + `.json"}`, "not a claim-check name of business unit 3"},
		{"payloadBlob with upper-case hex", `{` + base + `,"payloadBlob":"bu-3/sha256-` + strings.Repeat("A", 64) + `.json"}`, "not a claim-check name"},
		{"negative chainDepth", `{` + base + `,"chainDepth":-1}`, "chainDepth: want 0-100"},
		{"chainDepth past the bound", `{` + base + `,"chainDepth":101}`, "chainDepth: want 0-100"},
		{"causedByRule with a control character", `{` + base + `,"causedByRule":"r\u0007"}`, "causedByRule: want a rule id"},
		{"payloadBlob beside a payload", `{` + base + `,"payload":{"a":1},"payloadBlob":"bu-3/sha256-` + zeros + `.json"}`, "payloadBlob: set together with payload"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := platform.DecodeEvent([]byte(c.body))
			if err == nil {
				t.Fatalf("decoded %q without error", c.body)
			}
			if !platform.IsPermanent(err) {
				t.Errorf("error %v is not permanent", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestPayloadBlobNameIsScopedAndRoundTrips(t *testing.T) {
	payload := []byte(`{"a":1}`)
	name := platform.PayloadBlobName(42, payload)
	if !strings.HasPrefix(name, "bu-42/sha256-") || !strings.HasSuffix(name, ".json") {
		t.Fatalf("name %q", name)
	}
	sum, err := platform.ParsePayloadBlobName(42, name)
	if err != nil || sum != sha256.Sum256(payload) {
		t.Fatalf("parse %q: %x, %v", name, sum, err)
	}
	if _, err := platform.ParsePayloadBlobName(4, name); err == nil {
		t.Fatalf("%q accepted for business unit 4", name)
	}
	body := `{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z","payloadBlob":"` + name + `"}`
	if ev, err := platform.DecodeEvent([]byte(body)); err != nil || ev.PayloadBlob != name {
		t.Fatalf("decode: %+v, %v", ev, err)
	}
}

func TestDecodeAcceptsOptionalShapes(t *testing.T) {
	body := `{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"businessUnitId":3,"createdOn":"2026-11-22T10:00:00Z",` +
		`"payload":null,"entityGuid":"","unknownField":{"deep":[1,2,3]},"notificationEventTypeId":101,"correlationId":"c-1"}`
	ev, err := platform.DecodeEvent([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Payload != nil || ev.EntityGUID != "" || ev.NotificationEventTypeID != 101 || ev.CorrelationID != "c-1" {
		t.Fatalf("decoded %+v", ev)
	}
	if ev.Identity() != "3" {
		t.Fatalf("identity = %s, want the business unit", ev.Identity())
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	ev, err := platform.DecodeEvent([]byte(pascal))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ev.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"createdOn":"2026-11-22T10:00:00.1234567Z"`) || !strings.Contains(string(b), `"eventTypeId":12`) {
		t.Fatalf("canonical form %s", b)
	}
	again, err := platform.DecodeEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	if again.Key() != ev.Key() || string(again.Payload) != string(ev.Payload) {
		t.Fatalf("round trip changed the event: %s vs %s", again.Key(), ev.Key())
	}
	// What the platform sets on the events it publishes survives the trip, outside the key.
	ev.CausedByRule, ev.ChainDepth, ev.Supplementary = "rule-1", 2, true
	b, _ = ev.MarshalJSON()
	again, err = platform.DecodeEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	if again.CausedByRule != "rule-1" || again.ChainDepth != 2 || !again.Supplementary || again.Key() != ev.Key() {
		t.Fatalf("platform fields lost in %s: %+v", b, again)
	}
}

func TestHistoryRowKeyOrdersNewestFirst(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	older := platform.HistoryRowKey(t0, 12, 2)
	newer := platform.HistoryRowKey(t0.Add(100*time.Nanosecond), 12, 2)
	if !(newer < older) {
		t.Fatalf("newer %s does not sort before older %s", newer, older)
	}
	farPast := platform.HistoryRowKey(time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC), 1, 1)
	farFuture := platform.HistoryRowKey(time.Date(9999, 12, 31, 23, 59, 59, 999999900, time.UTC), 1, 1)
	if !(farFuture < farPast) || len(farFuture) != len(farPast) {
		t.Fatalf("range ends: %s vs %s", farFuture, farPast)
	}
	if platform.HistoryRowKey(t0, 12, 2) == platform.HistoryRowKey(t0, 11, 2) {
		t.Fatal("two event types at the same instant share a row key")
	}
}

func TestEscapeKey(t *testing.T) {
	cases := map[string]string{
		"1:abc":       "1:abc",
		"a/b\\c#d?e":  "a%2Fb%5Cc%23d%3Fe",
		"100%":        "100%25",
		"tab\there":   "tab%09here",
		"c1\u0085":    "c1%C2%85",
		"bad\xffutf8": "bad%FFutf8",
		"ünïcode":     "ünïcode",
	}
	for in, want := range cases {
		if got := platform.EscapeKey(in); got != want {
			t.Errorf("EscapeKey(%q) = %q, want %q", in, got, want)
		}
	}
	if platform.EscapeKey("a/b") == platform.EscapeKey("a%2Fb") {
		t.Error("escaping is not injective")
	}
}

func TestNamespace(t *testing.T) {
	for _, ok := range []string{"", "t1", "abc123", strings.Repeat("a", 24)} {
		if err := platform.Namespace(ok).Validate(); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"1t", "T1", "t-1", strings.Repeat("a", 25), "t_1"} {
		if err := platform.Namespace(bad).Validate(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	ns := platform.Namespace("t1")
	if ns.Queue("entity-events") != "t1-entity-events" || ns.Table("EntityHistory") != "t1EntityHistory" {
		t.Fatal("names do not follow the contract")
	}
	if platform.Namespace("").Queue("entity-events") != "entity-events" {
		t.Fatal("empty namespace must not prefix")
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("boom")
	if platform.IsPermanent(base) || platform.Permanent(nil) != nil {
		t.Fatal("plain errors are not permanent")
	}
	wrapped := errors.Join(errors.New("other"), platform.Permanent(base))
	if !platform.IsPermanent(wrapped) || !errors.Is(wrapped, base) {
		t.Fatal("permanence and identity must survive wrapping")
	}
}
