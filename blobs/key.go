package blobs

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// KeySize is the length of a key made by Key.
const KeySize = 32

// Key is the namespace's secret named name: KeySize random bytes in blob keys/{name} of the
// container leases, which only the worker uses. The first caller creates it, writing only if
// no blob is there (If-None-Match: *), so replicas that race to create it all end up with the
// one that was written first (and a retry whose first write took effect reads its own).
func (c *Client) Key(ctx context.Context, name string) ([]byte, error) {
	full := c.ns.Container(ContainerLeases)
	bb := c.svc.ServiceClient().NewContainerClient(full).NewBlockBlobClient("keys/" + name)
	key := make([]byte, KeySize)
	_, _ = rand.Read(key) // never fails (crypto/rand panics rather than return short)
	onlyNew := &blockblob.UploadBufferOptions{AccessConditions: &blob.AccessConditions{
		ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}}
	_, err := bb.UploadBuffer(ctx, key, onlyNew)
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		if err = c.ensureContainer(ctx, full); err == nil {
			_, err = bb.UploadBuffer(ctx, key, onlyNew)
		}
	}
	switch {
	case err == nil:
		return key, nil
	case !bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet):
		return nil, fmt.Errorf("key %s: %w", name, storage.Translate(err))
	}
	stored, _, err := c.GetBounded(ctx, ContainerLeases, "keys/"+name, KeySize)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}
	if len(stored) != KeySize {
		return nil, fmt.Errorf("key %s: blob %s/keys/%s holds %d bytes, want %d (delete it to have a new one made): %w",
			name, full, name, len(stored), KeySize, platform.ErrConflict)
	}
	return stored, nil
}
