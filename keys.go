package platform

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// createdOnLayout is .NET's round-trip "O" format for a UTC DateTime: 7 fractional digits, Z.
const createdOnLayout = "2006-01-02T15:04:05.0000000Z"

// FormatCreatedOn renders t as keys use it (docs/contracts.md, "Keys"): UTC, 7 fractional digits
// truncated, Z.
func FormatCreatedOn(t time.Time) string {
	return t.UTC().Truncate(100 * time.Nanosecond).Format(createdOnLayout)
}

// Identity is the entity's identity in keys: entityGuid if present, else entityId if non-zero,
// else businessUnitId (an event about the business unit itself, e.g. its settings).
func (ev *EntityEvent) Identity() string {
	switch {
	case ev.EntityGUID != "":
		return ev.EntityGUID
	case ev.EntityID != 0:
		return strconv.FormatInt(ev.EntityID, 10)
	default:
		return strconv.FormatInt(ev.BusinessUnitID, 10)
	}
}

// Key is the event key, the one identity of the business occurrence from which every
// downstream key derives: {eventTypeId}:{entityTypeId}:{entityIdentity}:{createdOn:O}:{actionTypeId}.
func (ev *EntityEvent) Key() string {
	return fmt.Sprintf("%d:%d:%s:%s:%d", ev.EventTypeID, ev.EntityTypeID, ev.Identity(), FormatCreatedOn(ev.CreatedOn), ev.ActionTypeID)
}

// HistoryEventKey is the key of the history row this event writes on the timeline of entity
// (entityTypeID, identity) — its own entity, or another one for a multi-mapping.
func (ev *EntityEvent) HistoryEventKey(entityTypeID int, identity string) string {
	return fmt.Sprintf("entity-history:%d:%d:%s:%s:%d", ev.EventTypeID, entityTypeID, identity, FormatCreatedOn(ev.CreatedOn), ev.ActionTypeID)
}

// HistoryPartitionKey is the EntityHistory partition of one entity's timeline.
func HistoryPartitionKey(entityTypeID int, identity string) string {
	return EscapeKey(strconv.Itoa(entityTypeID) + ":" + identity)
}

// ParseEventKey reads an event key, {eventTypeId}:{entityTypeId}:{identity}:{createdOn:O}:{actionTypeId},
// back into the fields it is made of (identity as EntityGUID or EntityID). Anything else is an
// ErrInvalidInput.
func ParseEventKey(key string) (*EntityEvent, error) {
	bad := fmt.Errorf("%w: %q is not an event key", ErrInvalidInput, key)
	parts := strings.SplitN(key, ":", 4)
	last := strings.LastIndexByte(key, ':')
	if len(parts) != 4 || last < len(parts[0])+len(parts[1])+len(parts[2])+3 {
		return nil, bad
	}
	createdOn := key[len(parts[0])+len(parts[1])+len(parts[2])+3 : last]
	ev := &EntityEvent{}
	var err1, err2, err3, err4 error
	ev.EventTypeID, err1 = strconv.Atoi(parts[0])
	ev.EntityTypeID, err2 = strconv.Atoi(parts[1])
	ev.ActionTypeID, err3 = strconv.Atoi(key[last+1:])
	ev.CreatedOn, err4 = time.Parse(time.RFC3339Nano, createdOn)
	if errors.Join(err1, err2, err3, err4) != nil {
		return nil, bad
	}
	if g, err := NormalizeGUID(parts[2]); err == nil && g != "" {
		ev.EntityGUID = g
	} else if id, err := strconv.ParseInt(parts[2], 10, 64); err == nil && id > 0 {
		ev.EntityID = id
	} else {
		return nil, bad
	}
	return ev, nil
}

// DeliveryKey is the key of the delivery of event eventKey to webhook endpoint endpointID:
// webhook:{endpointId}:{eventKey}.
func DeliveryKey(endpointID, eventKey string) string {
	return deliveryPrefix + endpointID + ":" + eventKey
}

const deliveryPrefix = "webhook:"

// ParseDeliveryKey splits a delivery key into its endpoint id and event key; ok is false for any
// other key.
func ParseDeliveryKey(key string) (endpointID, eventKey string, ok bool) {
	rest, ok := strings.CutPrefix(key, deliveryPrefix)
	if !ok {
		return "", "", false
	}
	endpointID, eventKey, ok = strings.Cut(rest, ":")
	return endpointID, eventKey, ok && endpointID != "" && eventKey != ""
}

// maxTicks is .NET's DateTime.MaxValue.Ticks: 100 ns intervals from 0001-01-01 to 9999-12-31.
const maxTicks = 3155378975999999999

// secondsFromYear1ToUnix is the number of seconds between 0001-01-01 and 1970-01-01.
const secondsFromYear1ToUnix = 62135596800

// HistoryRowKey orders a timeline newest first: a partition scan (ascending RowKey) starts with
// the latest createdOn. The rest of the HistoryEventKey (event and action type) follows, so the
// key stays unique within the partition, which already fixes the entity.
func HistoryRowKey(createdOn time.Time, eventTypeID, actionTypeID int) string {
	t := createdOn.UTC()
	ticks := (t.Unix()+secondsFromYear1ToUnix)*10_000_000 + int64(t.Nanosecond()/100)
	return fmt.Sprintf("%019d:%d:%d", maxTicks-ticks, eventTypeID, actionTypeID)
}

// EscapeKey makes s safe as an Azure Table PartitionKey or RowKey, which may not contain
// / \ # ? or control characters. Those bytes, % itself and bytes that are not valid UTF-8 become
// %XX (upper-case hex), so the mapping is deterministic and reversible: two different inputs
// never share a key.
func EscapeKey(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || escapeRune(r) {
			for _, c := range []byte(s[i : i+size]) {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || escapeRune(r) {
			return true
		}
	}
	return false
}

func escapeRune(r rune) bool {
	switch r {
	case '/', '\\', '#', '?', '%':
		return true
	}
	return r < 0x20 || (r >= 0x7f && r <= 0x9f)
}

// MaxKeyLength is the longest Azure Table PartitionKey or RowKey: 1 KiB of UTF-16, that is 512
// UTF-16 code units (Azurite refuses longer keys too). A string that becomes a key must fit once
// escaped: an over-long one is refused when it is given, not found later, when the row it names
// cannot be written or read (a job whose cancellation key can never be cancelled).
const MaxKeyLength = 512

// KeyLength is the length of s as a table key: escaped (EscapeKey), in UTF-16 code units.
func KeyLength(s string) int {
	n := 0
	for _, r := range EscapeKey(s) {
		n += utf16.RuneLen(r)
	}
	return n
}

// CheckKeyLength refuses s, the value of field, when it would not fit in a table key, with an
// error naming the field and the limit (the caller wraps it as its kind of bad input).
func CheckKeyLength(field, s string) error {
	if n := KeyLength(s); n > MaxKeyLength {
		return fmt.Errorf("%s: at most %d characters once escaped for Azure Tables (each / \\ # ? %% or control byte counts 3), got %d",
			field, MaxKeyLength, n)
	}
	return nil
}

// ParseIdentity canonicalises an entity identity given by a person (URL, command line): a UUID
// becomes lowercase, a positive integer loses leading zeros. Anything else is an error.
func ParseIdentity(s string) (string, error) {
	if len(s) == 36 {
		g, err := NormalizeGUID(s)
		if err != nil || g == "" {
			return "", fmt.Errorf("identity %q: want a non-nil UUID or a positive integer", s)
		}
		return g, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return "", fmt.Errorf("identity %q: want a UUID or a positive integer", s)
	}
	return strconv.FormatInt(n, 10), nil
}
