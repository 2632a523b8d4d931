package tables

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// Azure's limits on an entity group transaction and on a property, which Azurite does not
// enforce: every transaction this package submits is checked (checkBatch) or split
// (splitBatch) against them here, so real Azure never refuses one.
const (
	MaxBatchOperations = 100
	MaxBatchBytes      = 4 << 20
	// MaxPropertyBytes is the largest string property (UTF-16: 32 Ki characters of the Basic
	// Multilingual Plane) and the largest binary one.
	MaxPropertyBytes = 64 << 10
)

// Room kept for the multipart framing of a transaction: per operation (boundary, headers, the
// request line with its URL) and for the whole body.
const (
	batchOpOverhead    = 1 << 10
	batchFrameOverhead = 64 << 10
)

// ErrBatchLimit: a transaction, or an entity in it, that real Azure would refuse.
var ErrBatchLimit = errors.New("entity group transaction over Azure's limits")

// checkEntity refuses an entity with a property over MaxPropertyBytes: strings are counted in
// UTF-16, as the service stores them; Edm.Binary properties by their decoded bytes.
func checkEntity(body []byte) error {
	var props map[string]json.RawMessage
	if err := json.Unmarshal(body, &props); err != nil {
		return fmt.Errorf("entity JSON: %w", err)
	}
	for name, raw := range props {
		if len(raw) == 0 || raw[0] != '"' || strings.HasSuffix(name, "@odata.type") {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("property %s: %w", name, err)
		}
		size := UTF16Bytes(s)
		if string(props[name+"@odata.type"]) == `"Edm.Binary"` {
			size = base64.StdEncoding.DecodedLen(len(s))
		}
		if size > MaxPropertyBytes {
			return fmt.Errorf("%w: property %s is %d bytes, at most %d", ErrBatchLimit, name, size, MaxPropertyBytes)
		}
	}
	return nil
}

// UTF16Bytes is the size of s as Azure Tables store it: two bytes per UTF-16 code unit.
func UTF16Bytes(s string) int {
	n := 0
	for _, r := range s {
		n += 2 * utf16.RuneLen(r)
	}
	return n
}

// splitBatch checks every entity of actions and splits them into transactions within Azure's
// limits: at most MaxBatchOperations each, and at most MaxBatchBytes with room for the
// framing. For rows that need not commit together (each its own InsertOrReplace).
func splitBatch(actions []aztables.TransactionAction) ([][]aztables.TransactionAction, error) {
	var out [][]aztables.TransactionAction
	var cur []aztables.TransactionAction
	size := 0
	for i, a := range actions {
		if err := checkEntity(a.Entity); err != nil {
			return nil, fmt.Errorf("operation %d: %w", i, err)
		}
		n := len(a.Entity) + batchOpOverhead
		if n > MaxBatchBytes-batchFrameOverhead {
			return nil, fmt.Errorf("%w: operation %d is %d bytes, over a transaction's %d", ErrBatchLimit, i, len(a.Entity), MaxBatchBytes)
		}
		if len(cur) == MaxBatchOperations || size+n > MaxBatchBytes-batchFrameOverhead {
			out, cur, size = append(out, cur), nil, 0
		}
		cur, size = append(cur, a), size+n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, nil
}

// checkBatch refuses, with ErrBatchLimit, a transaction that must commit whole but is over
// Azure's limits: more than MaxBatchOperations, more than MaxBatchBytes, or an entity with a
// property over MaxPropertyBytes.
func checkBatch(actions []aztables.TransactionAction) error {
	if len(actions) > MaxBatchOperations {
		return fmt.Errorf("%w: %d operations, at most %d", ErrBatchLimit, len(actions), MaxBatchOperations)
	}
	groups, err := splitBatch(actions)
	if err != nil {
		return err
	}
	if len(groups) > 1 {
		size := 0
		for _, a := range actions {
			size += len(a.Entity)
		}
		return fmt.Errorf("%w: %d bytes of entities, at most about %d", ErrBatchLimit, size, MaxBatchBytes-batchFrameOverhead-len(actions)*batchOpOverhead)
	}
	return nil
}
