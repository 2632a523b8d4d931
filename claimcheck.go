package platform

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// DefaultMaxPayloadBytes is the largest event payload accepted by default, inline or by
// claim-check, on publish and on read (PLATFORM_MAX_PAYLOAD_BYTES).
const DefaultMaxPayloadBytes = 1 << 20

// PayloadBlobName is the claim-check name of payload published for business unit
// businessUnitID: "bu-{businessUnitId}/sha256-{hex of the payload}.json". The scope makes a
// reference one tenant's own, and the hash makes a name point at one content only.
func PayloadBlobName(businessUnitID int64, payload []byte) string {
	sum := sha256.Sum256(payload)
	return payloadBlobPrefix(businessUnitID) + hex.EncodeToString(sum[:]) + ".json"
}

func payloadBlobPrefix(businessUnitID int64) string {
	return "bu-" + strconv.FormatInt(businessUnitID, 10) + "/sha256-"
}

// ParsePayloadBlobName checks that name is a claim-check name of business unit
// businessUnitID and returns the SHA-256 it names. Any other name is refused: another
// tenant's blob, a path, or a name without the bu- scope (older publishers wrote
// "sha256-{hex}.json": such a message must be published again).
func ParsePayloadBlobName(businessUnitID int64, name string) (sum [sha256.Size]byte, err error) {
	prefix := payloadBlobPrefix(businessUnitID)
	if sum, ok := parseHashName(name, prefix); ok {
		return sum, nil
	}
	return sum, fmt.Errorf("%q is not a claim-check name of business unit %d: want %s<64 lowercase hex digits>.json "+
		"(names without the bu- scope, written by older publishers, are refused: publish the event again)",
		truncate(name, 100), businessUnitID, prefix)
}

// legacyPayloadBlobPrefix starts the unscoped claim-check names, "sha256-{hex}.json", that
// versions before scoped names wrote.
const legacyPayloadBlobPrefix = "sha256-"

// ParseLegacyPayloadBlobName checks that name is an unscoped claim-check name of an older
// version, "sha256-{64 lowercase hex digits}.json", and returns the SHA-256 it names. Only
// rows stored in the outbox's tables (intents, the event log: DecodeStoredEvent) may carry
// one: an event on the queue may not (ParsePayloadBlobName).
func ParseLegacyPayloadBlobName(name string) (sum [sha256.Size]byte, err error) {
	if sum, ok := parseHashName(name, legacyPayloadBlobPrefix); ok {
		return sum, nil
	}
	return sum, fmt.Errorf("%q is not an unscoped claim-check name: want %s<64 lowercase hex digits>.json", truncate(name, 100), legacyPayloadBlobPrefix)
}

// parseHashName reads name as prefix, 64 lowercase hex digits and ".json", and returns the
// SHA-256 the digits spell.
func parseHashName(name, prefix string) (sum [sha256.Size]byte, ok bool) {
	hexSum, ok := strings.CutPrefix(name, prefix)
	if ok {
		hexSum, ok = strings.CutSuffix(hexSum, ".json")
	}
	if !ok || len(hexSum) != 2*sha256.Size || hexSum != strings.ToLower(hexSum) {
		return sum, false
	}
	_, err := hex.Decode(sum[:], []byte(hexSum))
	return sum, err == nil
}
