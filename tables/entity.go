package tables

import (
	"context"
	"encoding/json"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform/internal/storage"
)

// addEntity, updateEntity and upsertEntity write the entity whose JSON is body, of keys pk and
// rk, as those bytes: the SDK is handed an entity of the keys alone, which it needs for the
// request's address, and body replaces what it encodes (storage.WithEntityBody). The SDK would
// decode body into a map and encode the map again. The hot path's writes go through these.
func addEntity(ctx context.Context, t *aztables.Client, pk, rk string, body []byte) (aztables.AddEntityResponse, error) {
	return t.AddEntity(storage.WithEntityBody(ctx, body), keysOnly(pk, rk), nil)
}

func updateEntity(ctx context.Context, t *aztables.Client, pk, rk string, body []byte, opts *aztables.UpdateEntityOptions) (aztables.UpdateEntityResponse, error) {
	return t.UpdateEntity(storage.WithEntityBody(ctx, body), keysOnly(pk, rk), opts)
}

func upsertEntity(ctx context.Context, t *aztables.Client, pk, rk string, body []byte, opts *aztables.UpsertEntityOptions) (aztables.UpsertEntityResponse, error) {
	return t.UpsertEntity(storage.WithEntityBody(ctx, body), keysOnly(pk, rk), opts)
}

func keysOnly(pk, rk string) []byte {
	b, _ := json.Marshal(struct{ PartitionKey, RowKey string }{pk, rk})
	return b
}
