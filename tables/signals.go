package tables

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// PutSignal writes a signal on topic to the change bus: every replica reads it with the
// changes at its next poll (about a second), so a change of configuration that each replica
// caches (webhook endpoints) is seen everywhere at once, at no cost beyond the poll every
// replica makes anyway. It needs no running worker: the command line writes it too.
//
// The row also carries a change that names no entity, so that a replica of an earlier version,
// which knows no signal, still reads the row (and streams it as such, in business unit 0).
func (s *Changes) PutSignal(ctx context.Context, topic string) error {
	id := platform.NewSourceKey()
	ch, _ := json.Marshal(&platform.Change{EventKey: "signal:" + topic + ":" + id, ChangedFields: []string{}})
	body, _ := json.Marshal(changeEntity{PartitionKey: ChangePartition(id), RowKey: id, Change: string(ch), Signal: topic})
	if _, err := s.t.UpsertEntity(ctx, body, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace}); err != nil {
		return fmt.Errorf("change bus: signal %s: %w", topic, storage.Translate(err))
	}
	return nil
}
