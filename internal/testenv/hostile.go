package testenv

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Hostile is a message a careless or malicious sender could put on entity-events, and the
// reason the worker must give when it poisons it (a substring of the poison record's reason).
type Hostile struct {
	Name, Body, Reason string
}

// hostileEvent is a valid event with one field replaced: field=raw JSON value, or field= alone
// to drop it. A payloadBlob replaces the payload.
func hostileEvent(field, value string) string {
	fields := map[string]string{
		"eventTypeId": "12", "entityTypeId": "1", "actionTypeId": "2", "businessUnitId": "42",
		"entityGuid": `"0b7e7dd6-8a1f-4a59-9e56-6c3ad1b0f3a1"`, "createdOn": `"2026-11-22T10:00:00Z"`,
		"payload": `{"firstName":"Ada"}`,
	}
	order := []string{"eventTypeId", "entityTypeId", "actionTypeId", "businessUnitId", "entityGuid", "entityId", "createdOn", "payload", "payloadBlob"}
	if field == "payloadBlob" {
		delete(fields, "payload")
	}
	if value == "" {
		delete(fields, field)
	} else {
		fields[field] = value
	}
	var parts []string
	for _, k := range order {
		if v, ok := fields[k]; ok {
			parts = append(parts, fmt.Sprintf("%q:%s", k, v))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// HostileEvents are the entity-events messages the worker must poison, each with its reason.
// Hostile content the worker must accept and handle safely (SQL-looking or template strings,
// dates at the ends of the range) is tested where its effect is visible.
func HostileEvents() []Hostile {
	deep := `{"a":` + strings.Repeat("[", 11_000) + strings.Repeat("]", 11_000) + "}" // deeper than any decoder should follow
	zeros := strings.Repeat("0", 64)
	return []Hostile{
		{"invalid JSON", `{"eventTypeId":12,`, "JSON"},
		{"empty body", ` `, "empty message body"},
		{"JSON array", `[{"eventTypeId":12}]`, "not a JSON object"},
		{"JSON string", `"an event"`, "not a JSON object"},
		{"JSON null", `null`, "not a JSON object"},
		{"invalid base64", `eyJldmVudFR5cGVJZCI6MTJ9!!`, "neither a JSON object nor base64"},
		{"base64 of an array", base64.StdEncoding.EncodeToString([]byte(`[1,2]`)), "base64 body does not decode to a JSON object"},
		{"eventTypeId as a string", hostileEvent("eventTypeId", `"twelve"`), "eventTypeId"},
		{"entityTypeId fractional", hostileEvent("entityTypeId", `1.5`), "entityTypeId"},
		{"eventTypeId overflowing", hostileEvent("eventTypeId", `1e30`), "eventTypeId"},
		{"businessUnitId as a string", hostileEvent("businessUnitId", `"42"`), "businessUnitId"},
		{"missing eventTypeId", hostileEvent("eventTypeId", ""), "eventTypeId"},
		{"zero businessUnitId", hostileEvent("businessUnitId", `0`), "businessUnitId"},
		{"negative actionTypeId", hostileEvent("actionTypeId", `-2`), "actionTypeId"},
		{"missing createdOn", hostileEvent("createdOn", ""), "createdOn"},
		{"createdOn without an offset", hostileEvent("createdOn", `"2026-11-22T10:00:00"`), "createdOn"},
		{"createdOn before 1601", hostileEvent("createdOn", `"1500-01-01T00:00:00Z"`), "createdOn"},
		{"createdOn after 9999", hostileEvent("createdOn", `"+10000-01-01T00:00:00Z"`), "createdOn"},
		{"entityGuid not a GUID", hostileEvent("entityGuid", `"not-a-guid"`), "entityGuid"},
		{"entityGuid with a slash", hostileEvent("entityGuid", `"0b7e7dd6/8a1f-4a59-9e56-6c3ad1b0f3a1"`), "entityGuid"},
		{"entityGuid with # and ?", hostileEvent("entityGuid", `"0b7e7dd6#8a1f?4a59-9e56-6c3ad1b0f3a1"`), "entityGuid"},
		{"entityGuid with a backslash", hostileEvent("entityGuid", `"0b7e7dd6\\8a1f-4a59-9e56-6c3ad1b0f3a1"`), "entityGuid"},
		{"entityGuid with control characters", hostileEvent("entityGuid", `"0b7e7dd6-8a1f-4a59-9e56-6c3ad1b0f3a\u0000\n"`), "entityGuid"},
		{"entityId as a string with a slash", hostileEvent("entityId", `"7/../8"`), "entityId"},
		{"payload not an object", hostileEvent("payload", `[1,2,3]`), "payload"},
		{"payload nested 11,000 deep", hostileEvent("payload", deep), "JSON"},
		{"payloadBlob that does not exist", hostileEvent("payloadBlob", `"sha256-0000000000000000000000000000000000000000000000000000000000000000"`), "payloadBlob"},
		{"payloadBlob escaping its container", hostileEvent("payloadBlob", `"../../secrets"`), "payloadBlob"},
		{"payloadBlob without its business unit's scope", hostileEvent("payloadBlob", `"sha256-`+zeros+`.json"`), "not a claim-check name of business unit 42"},
		{"payloadBlob of another business unit", hostileEvent("payloadBlob", `"bu-1/sha256-`+zeros+`.json"`), "not a claim-check name of business unit 42"},
		{"payloadBlob beside an inline payload", strings.Replace(hostileEvent("payload", `{"firstName":"Ada"}`), `}}`, `},"payloadBlob":"bu-42/sha256-`+zeros+`.json"}`, 1), "never both"},
		{"unknown event type", hostileEvent("eventTypeId", `9999`), "unknown eventTypeId"},
	}
}
