package tables

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"time"

	"github.com/platform/platform/internal/storage"
)

// SetFailingSince records the first failed delivery attempt to endpoint id since its last
// success; a zero since clears it (a success).
func (s *Endpoints) SetFailingSince(ctx context.Context, id string, since time.Time) error {
	props := map[string]any{"FailingSince": ""}
	if !since.IsZero() {
		props["FailingSince"], props["FailingSince@odata.type"] = since.UTC().Format(timeLayout), edmDateTime
	}
	return s.merge(ctx, id, "record the failures of", props)
}

// AutoDisable disables endpoint id for reason, at at: the worker's own decision, shown in lists.
func (s *Endpoints) AutoDisable(ctx context.Context, id, reason string, at time.Time) error {
	return s.merge(ctx, id, "disable", map[string]any{"Enabled": false, "DisabledReason": reason,
		"DisabledAt": at.UTC().Format(timeLayout), "DisabledAt@odata.type": edmDateTime})
}

// Enable turns endpoint id back on, clearing why and when it was disabled and its failing
// mark: it starts afresh. platform.ErrNotFound when there is no such endpoint.
func (s *Endpoints) Enable(ctx context.Context, id string) error {
	return s.merge(ctx, id, "enable", map[string]any{"Enabled": true, "DisabledReason": "", "DisabledAt": "", "FailingSince": ""})
}

// merge writes props over endpoint id's row, whatever its version; platform.ErrNotFound when
// it is gone.
func (s *Endpoints) merge(ctx context.Context, id, what string, props map[string]any) error {
	props["PartitionKey"], props["RowKey"] = endpointPartition, id
	body, err := json.Marshal(props)
	if err != nil {
		return err
	}
	tag := azcoreETagAny
	if _, err := s.t.UpdateEntity(ctx, body, &aztables.UpdateEntityOptions{IfMatch: &tag, UpdateMode: aztables.UpdateModeMerge}); err != nil {
		return fmt.Errorf("%s webhook endpoint %s: %w", what, id, storage.Translate(err))
	}
	return nil
}
