package platform

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Example-independent action types (docs/contracts.md, "Example domain"); others are allowed.
const (
	ActionCreate = 1
	ActionUpdate = 2
	ActionDelete = 3
	ActionSubmit = 4
)

// EntityEvent is one change to one entity, as a service publishes it (docs/contracts.md,
// "EntityEvent wire format").
type EntityEvent struct {
	EventTypeID    int
	EntityTypeID   int
	ActionTypeID   int
	EntityGUID     string // lowercase UUID, or empty
	EntityID       int64  // 0 when absent
	BusinessUnitID int64
	CreatedOn      time.Time // UTC, truncated to 100 ns

	// NotificationEventTypeID is the hint (docs/contracts.md, "The promise they serve"): set only
	// at the guarded call-site that means "this occurrence should notify". 0 when absent.
	NotificationEventTypeID int

	Payload       json.RawMessage // a JSON object, or nil
	PayloadBlob   string          // claim-check: the payload lives in blob container event-payloads under this name (PayloadBlobName: scoped to BusinessUnitID); once resolved, Payload holds it too
	ChangedFields []string        // names only, never values

	// Informative; not part of any key.
	EventID, TenantID, CorrelationID, ActorID, Source string

	// Set by the platform on the events it publishes itself (docs/contracts.md, "Events the
	// platform publishes"); not part of any key. CausedByRule is the automation rule whose action
	// published the event, ChainDepth how many rule actions lie between it and an event a service
	// published (0), and Supplementary marks a lifecycle event: best effort, never the primary
	// path of anything, dropped (not poisoned) when no concern wants it.
	CausedByRule  string
	ChainDepth    int
	Supplementary bool
}

// wireEvent is the JSON shape. encoding/json matches field names case-insensitively, which is
// what accepts PascalCase (a .NET sender) as well as camelCase. Pointers tell "absent" from 0.
type wireEvent struct {
	EventTypeID             *int            `json:"eventTypeId"`
	EntityTypeID            *int            `json:"entityTypeId"`
	ActionTypeID            *int            `json:"actionTypeId"`
	EntityGUID              string          `json:"entityGuid,omitempty"`
	EntityID                int64           `json:"entityId,omitempty"`
	BusinessUnitID          *int64          `json:"businessUnitId"`
	CreatedOn               string          `json:"createdOn"`
	NotificationEventTypeID int             `json:"notificationEventTypeId,omitempty"`
	Payload                 json.RawMessage `json:"payload,omitempty"`
	PayloadBlob             string          `json:"payloadBlob,omitempty"`
	ChangedFields           []string        `json:"changedFields,omitempty"`
	EventID                 string          `json:"eventId,omitempty"`
	TenantID                string          `json:"tenantId,omitempty"`
	CorrelationID           string          `json:"correlationId,omitempty"`
	ActorID                 string          `json:"actorId,omitempty"`
	Source                  string          `json:"source,omitempty"`
	CausedByRule            string          `json:"causedByRule,omitempty"`
	ChainDepth              int             `json:"chainDepth,omitempty"`
	Supplementary           bool            `json:"supplementary,omitempty"`
}

// Azure Tables store Edm.DateTime from 1601 on; an event outside that range could never be
// written to a timeline, so it is refused at the door.
var (
	minCreatedOn = time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC)
	maxCreatedOn = time.Date(9999, 12, 31, 23, 59, 59, 999999900, time.UTC)
)

const maxBlobNameLen = 1024

// MaxChainDepth bounds chainDepth on the wire: far above any loop guard's cap (automations
// refuse to act past theirs), it only refuses nonsense.
const MaxChainDepth = 100

// DecodeEvent decodes one queue message body: raw JSON or base64 of it, camelCase or PascalCase
// field names. It validates every rule of docs/contracts.md, "EntityEvent wire format" and
// normalises the GUID (lowercase) and createdOn (UTC, 100 ns). Every error it returns is
// Permanent: no retry can fix the input.
func DecodeEvent(body []byte) (*EntityEvent, error) {
	ev, err := decodeEvent(body, false)
	return ev, Permanent(err)
}

// DecodeStoredEvent decodes an event stored in the outbox's tables (an outbox intent, written
// by a service through the outbox client; a PlatformEventLog row) as DecodeEvent does, but also
// accepts a payloadBlob with the unscoped name older versions wrote (ParseLegacyPayloadBlobName),
// so that rows written before scoped names still flow. Such a name can only be written by
// whoever may write those tables, and it names content by its hash (it is checked when read),
// so it borrows nothing its writer does not already hold. Whoever publishes such an event must
// store its payload under the scoped name first (blobs.Client.RescopeEventPayload): the queue
// accepts scoped names only.
func DecodeStoredEvent(body []byte) (*EntityEvent, error) {
	ev, err := decodeEvent(body, true)
	return ev, Permanent(err)
}

func decodeEvent(body []byte, legacyBlob bool) (*EntityEvent, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, errors.New("empty message body")
	}
	if body[0] != '{' && json.Valid(body) {
		return nil, errors.New("not a JSON object: an event is one JSON object per message")
	}
	if body[0] != '{' {
		decoded, err := decodeBase64(body)
		if err != nil {
			if body[0] == '[' || body[0] == '"' || (body[0] >= '0' && body[0] <= '9') || body[0] == '-' {
				return nil, errors.New("not a JSON object: an event is one JSON object per message")
			}
			return nil, errors.New("body is neither a JSON object nor base64 of one")
		}
		body = bytes.TrimSpace(decoded)
		if len(body) == 0 || body[0] != '{' {
			return nil, errors.New("base64 body does not decode to a JSON object")
		}
	}
	var w wireEvent
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, describeJSONError(err)
	}
	return w.event(legacyBlob)
}

func decodeBase64(b []byte) ([]byte, error) {
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Decode(out, b)
	if err != nil {
		return nil, err
	}
	return out[:n], nil
}

func describeJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return &FieldError{Field: typeErr.Field, Problem: fmt.Sprintf("want %s, got JSON %s", typeErr.Type, typeErr.Value)}
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return fmt.Errorf("invalid JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	}
	return fmt.Errorf("invalid JSON: %v", err)
}

func (w *wireEvent) event(legacyBlob bool) (*EntityEvent, error) {
	ev := &EntityEvent{
		EntityID:                w.EntityID,
		NotificationEventTypeID: w.NotificationEventTypeID,
		PayloadBlob:             w.PayloadBlob,
		ChangedFields:           w.ChangedFields,
		EventID:                 w.EventID,
		TenantID:                w.TenantID,
		CorrelationID:           w.CorrelationID,
		ActorID:                 w.ActorID,
		Source:                  w.Source,
		CausedByRule:            w.CausedByRule,
		ChainDepth:              w.ChainDepth,
		Supplementary:           w.Supplementary,
	}
	if w.ChainDepth < 0 || w.ChainDepth > MaxChainDepth {
		return nil, &FieldError{"chainDepth", fmt.Sprintf("want 0-%d, got %d", MaxChainDepth, w.ChainDepth)}
	}
	if len(w.CausedByRule) > 64 || hasControl(w.CausedByRule) {
		return nil, &FieldError{"causedByRule", "want a rule id (at most 64 characters, no control characters)"}
	}
	var err error
	if ev.EventTypeID, err = positive("eventTypeId", w.EventTypeID); err != nil {
		return nil, err
	}
	if ev.EntityTypeID, err = positive("entityTypeId", w.EntityTypeID); err != nil {
		return nil, err
	}
	if ev.ActionTypeID, err = positive("actionTypeId", w.ActionTypeID); err != nil {
		return nil, err
	}
	if ev.BusinessUnitID, err = positive("businessUnitId", w.BusinessUnitID); err != nil {
		return nil, err
	}
	if ev.EntityGUID, err = NormalizeGUID(w.EntityGUID); err != nil {
		return nil, err
	}
	if w.EntityID < 0 {
		return nil, &FieldError{"entityId", fmt.Sprintf("must be > 0 when present, got %d", w.EntityID)}
	}
	if ev.CreatedOn, err = parseCreatedOn(w.CreatedOn); err != nil {
		return nil, err
	}
	if w.NotificationEventTypeID < 0 {
		return nil, &FieldError{"notificationEventTypeId", fmt.Sprintf("must be > 0 when present, got %d", w.NotificationEventTypeID)}
	}
	if ev.Payload, err = CheckPayload(w.Payload); err != nil {
		return nil, &FieldError{"payload", err.Error()}
	}
	if n := len(ev.PayloadBlob); n > maxBlobNameLen {
		return nil, &FieldError{"payloadBlob", fmt.Sprintf("longer than %d characters", maxBlobNameLen)}
	}
	if hasControl(ev.PayloadBlob) {
		return nil, &FieldError{"payloadBlob", "contains control characters"}
	}
	if ev.PayloadBlob != "" {
		// A reference stands for the event's own payload: one carried beside an inline payload
		// would be stored without being read (a borrowed snapshot), one outside the event's
		// business unit would show another tenant's data.
		if ev.Payload != nil {
			return nil, &FieldError{"payloadBlob", "set together with payload: an event carries its payload inline or by claim-check, never both"}
		}
		if _, err := ParsePayloadBlobName(ev.BusinessUnitID, ev.PayloadBlob); err != nil {
			if _, lerr := ParseLegacyPayloadBlobName(ev.PayloadBlob); !legacyBlob || lerr != nil {
				return nil, &FieldError{"payloadBlob", err.Error()}
			}
		}
	}
	for i, f := range ev.ChangedFields {
		if f == "" {
			return nil, &FieldError{fmt.Sprintf("changedFields[%d]", i), "empty field name"}
		}
	}
	return ev, nil
}

// CheckPayload accepts a payload that is a JSON object, and treats empty and null as absent.
func CheckPayload(b []byte) (json.RawMessage, error) {
	p := bytes.TrimSpace(b)
	if len(p) == 0 || bytes.Equal(p, []byte("null")) {
		return nil, nil
	}
	if p[0] != '{' || !json.Valid(p) {
		return nil, errors.New("want a JSON object")
	}
	return p, nil
}

func positive[T int | int64](field string, v *T) (T, error) {
	if v == nil {
		return 0, &FieldError{field, "required"}
	}
	if *v <= 0 {
		return 0, &FieldError{field, fmt.Sprintf("must be > 0, got %d", *v)}
	}
	return *v, nil
}

// NormalizeGUID lowercases a canonical 8-4-4-4-12 UUID. The nil UUID counts as absent: .NET
// senders write Guid.Empty for "no guid", and it must not merge every such entity into one.
func NormalizeGUID(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) != 36 {
		return "", &FieldError{"entityGuid", fmt.Sprintf("want a UUID like 3f2504e0-4f89-11d3-9a0c-0305e82c3301, got %q", truncate(s, 60))}
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return "", &FieldError{"entityGuid", fmt.Sprintf("want a UUID like 3f2504e0-4f89-11d3-9a0c-0305e82c3301, got %q", s)}
			}
			continue
		}
		if !isHex(c) {
			return "", &FieldError{"entityGuid", fmt.Sprintf("want a UUID like 3f2504e0-4f89-11d3-9a0c-0305e82c3301, got %q", s)}
		}
	}
	s = strings.ToLower(s)
	if s == "00000000-0000-0000-0000-000000000000" {
		return "", nil
	}
	return s, nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func parseCreatedOn(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, &FieldError{"createdOn", "required"}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &FieldError{"createdOn", fmt.Sprintf("want RFC 3339 with an offset, e.g. 2026-11-22T10:00:00Z, got %q", truncate(s, 60))}
	}
	t = t.UTC().Truncate(100 * time.Nanosecond)
	if t.Before(minCreatedOn) || t.After(maxCreatedOn) {
		return time.Time{}, &FieldError{"createdOn", fmt.Sprintf("%s is outside 1601-01-01..9999-12-31", s)}
	}
	return t, nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// MarshalJSON writes the canonical wire form: camelCase, createdOn as in keys (7 digits, Z).
func (ev *EntityEvent) MarshalJSON() ([]byte, error) {
	w := wireEvent{
		EventTypeID:             &ev.EventTypeID,
		EntityTypeID:            &ev.EntityTypeID,
		ActionTypeID:            &ev.ActionTypeID,
		EntityGUID:              ev.EntityGUID,
		EntityID:                ev.EntityID,
		BusinessUnitID:          &ev.BusinessUnitID,
		CreatedOn:               FormatCreatedOn(ev.CreatedOn),
		NotificationEventTypeID: ev.NotificationEventTypeID,
		Payload:                 ev.Payload,
		PayloadBlob:             ev.PayloadBlob,
		ChangedFields:           ev.ChangedFields,
		EventID:                 ev.EventID,
		TenantID:                ev.TenantID,
		CorrelationID:           ev.CorrelationID,
		ActorID:                 ev.ActorID,
		Source:                  ev.Source,
		CausedByRule:            ev.CausedByRule,
		ChainDepth:              ev.ChainDepth,
		Supplementary:           ev.Supplementary,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&w); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Change is what the realtime stream says about an event: which fields of which entity
// changed — never their values.
type Change struct {
	EventKey       string   `json:"eventKey"`
	EntityTypeID   int      `json:"entityTypeId"`
	EntityIdentity string   `json:"entityIdentity"`
	BusinessUnitID int64    `json:"businessUnitId"`
	ActionTypeID   int      `json:"actionTypeId"`
	ChangedFields  []string `json:"changedFields"`
	// ChangedFieldsTruncated: ChangedFields is the start of a list too long for the change bus
	// (one table property); the entity changed in more fields than named.
	ChangedFieldsTruncated bool      `json:"changedFieldsTruncated,omitempty"`
	CreatedOn              time.Time `json:"createdOn"`
}

// Change projects ev for the realtime stream: ids and field names only. The payload is
// deliberately not read.
func (ev *EntityEvent) Change() *Change {
	fields := ev.ChangedFields
	if fields == nil {
		fields = []string{}
	}
	return &Change{EventKey: ev.Key(), EntityTypeID: ev.EntityTypeID, EntityIdentity: ev.Identity(), BusinessUnitID: ev.BusinessUnitID,
		ActionTypeID: ev.ActionTypeID, ChangedFields: fields, CreatedOn: ev.CreatedOn}
}
