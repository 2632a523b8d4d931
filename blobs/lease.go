package blobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"

	"github.com/platform/platform/internal/storage"
)

// ContainerLeases holds the blobs whose leases elect leaders.
const ContainerLeases = "leases"

// Lease is a blob lease used for leader election: whoever holds it leads, until it stops
// renewing and the lease expires.
type Lease struct {
	blob     *blockblob.Client
	lease    *lease.BlobClient
	duration time.Duration
}

// NewLease prepares the lease on blob name (created, empty, if missing). duration is 15-60 s,
// the service's range for a finite lease.
func (c *Client) NewLease(ctx context.Context, name string, duration time.Duration) (*Lease, error) {
	if duration < 15*time.Second || duration > 60*time.Second {
		return nil, fmt.Errorf("lease %s: duration %s: want 15s-60s", name, duration)
	}
	full := c.ns.Container(ContainerLeases)
	bb := c.svc.ServiceClient().NewContainerClient(full).NewBlockBlobClient(name)
	_, err := bb.UploadBuffer(ctx, nil, &blockblob.UploadBufferOptions{AccessConditions: &blob.AccessConditions{
		ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}})
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		if err = c.ensureContainer(ctx, full); err == nil {
			_, err = bb.UploadBuffer(ctx, nil, &blockblob.UploadBufferOptions{AccessConditions: &blob.AccessConditions{
				ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}})
		}
	}
	if err != nil && !bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet, bloberror.LeaseIDMissing) {
		return nil, fmt.Errorf("lease blob %s/%s: %w", full, name, storage.Translate(err))
	}
	lc, err := lease.NewBlobClient(bb, nil)
	if err != nil {
		return nil, err
	}
	return &Lease{blob: bb, lease: lc, duration: duration}, nil
}

// Acquire takes the lease if nobody holds it; false when somebody else does.
func (l *Lease) Acquire(ctx context.Context) (bool, error) {
	_, err := l.lease.AcquireLease(ctx, int32(l.duration/time.Second), nil)
	if err == nil {
		return true, nil
	}
	if bloberror.HasCode(err, bloberror.LeaseAlreadyPresent) {
		return false, nil
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == 409 {
		return false, nil
	}
	return false, storage.Translate(err)
}

// Renew extends a held lease; an error means it is lost (expired and taken, or unreachable).
func (l *Lease) Renew(ctx context.Context) error {
	_, err := l.lease.RenewLease(ctx, nil)
	return storage.Translate(err)
}

// Release gives the lease up at once, so another replica leads without waiting for expiry.
func (l *Lease) Release(ctx context.Context) error {
	_, err := l.lease.ReleaseLease(ctx, nil)
	return storage.Translate(err)
}

// Duration is the lease's length.
func (l *Lease) Duration() time.Duration { return l.duration }
