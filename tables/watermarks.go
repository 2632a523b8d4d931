package tables

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// Watermarks is the Watermarks table: how far each scan-repair provider has looked.
type Watermarks struct{ t *aztables.Client }

// Watermarks returns the namespace's watermark store.
func (c *Client) Watermarks() *Watermarks { return &Watermarks{t: c.table(TableWatermarks)} }

type watermarkEntity struct {
	PartitionKey, RowKey string
	Watermark            string
	WatermarkType        string `json:"Watermark@odata.type"`
}

// Get is provider's watermark and its version; zero time and "" when it has none yet.
func (w *Watermarks) Get(ctx context.Context, provider string) (time.Time, ETag, error) {
	resp, err := w.t.GetEntity(ctx, platform.EscapeKey(provider), singleRowKey, nil)
	if err != nil {
		if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
			return time.Time{}, "", nil
		}
		return time.Time{}, "", err
	}
	var e watermarkEntity
	if err := json.Unmarshal(resp.Value, &e); err != nil {
		return time.Time{}, "", err
	}
	t, err := parseTime(e.Watermark)
	return t, etagOf(resp.ETag), err
}

// Advance sets provider's watermark to t if it is still at version etag ("" : it has none):
// platform.ErrConflict when another runner moved it first.
func (w *Watermarks) Advance(ctx context.Context, provider string, t time.Time, etag ETag) (ETag, error) {
	body, _ := json.Marshal(watermarkEntity{PartitionKey: platform.EscapeKey(provider), Watermark: t.UTC().Format(timeLayout), WatermarkType: edmDateTime})
	if etag == "" {
		resp, err := w.t.AddEntity(ctx, body, nil)
		if err != nil {
			if err = storage.Translate(err); errors.Is(err, platform.ErrExists) {
				return "", platform.ErrConflict
			}
			return "", err
		}
		return etagOf(resp.ETag), nil
	}
	tag := azcore.ETag(etag)
	resp, err := w.t.UpdateEntity(ctx, body, &aztables.UpdateEntityOptions{IfMatch: &tag, UpdateMode: aztables.UpdateModeReplace})
	if err != nil {
		return "", storage.Translate(err)
	}
	return etagOf(resp.ETag), nil
}
