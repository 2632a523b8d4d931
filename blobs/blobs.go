// Package blobs owns Platform's blob containers: the claim-check for event payloads too large
// for a queue message (event-payloads), and later templates and rendered bodies. Containers are
// created on first use. It translates service errors into platform's sentinels and must not
// know what an event means.
package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// Client reads and writes blobs in the namespace's containers.
type Client struct {
	svc     *azblob.Client
	ns      platform.Namespace
	created sync.Map // container name → struct{}: created (or found) by this process

	maxPayload atomic.Int64 // SetMaxPayloadBytes; 0: platform.DefaultMaxPayloadBytes
}

// New connects to the account's blob service.
func New(acct storage.Account, ns platform.Namespace) (*Client, error) {
	if err := ns.Validate(); err != nil {
		return nil, err
	}
	opts := &azblob.ClientOptions{ClientOptions: acct.ClientOptions(storage.Blob)}
	var (
		svc *azblob.Client
		err error
	)
	if acct.Keyless() {
		svc, err = azblob.NewClient(acct.Endpoint(storage.Blob), acct.Credential, opts)
	} else {
		svc, err = azblob.NewClientFromConnectionString(acct.ResolvedConnectionString(), opts)
	}
	if err != nil {
		return nil, fmt.Errorf("blob client: %w", err)
	}
	return &Client{svc: svc, ns: ns}, nil
}

// Put writes data to blob name in container (a name before the namespace prefix), replacing
// what was there. The container is created if it does not exist yet.
func (c *Client) Put(ctx context.Context, container, name string, data []byte) error {
	full := c.ns.Container(container)
	_, err := c.svc.UploadBuffer(ctx, full, name, data, nil)
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		// The first write to a container pays for creating it; later ones do not ask.
		if err = c.ensureContainer(ctx, full); err == nil {
			_, err = c.svc.UploadBuffer(ctx, full, name, data, nil)
		}
	}
	if err != nil {
		return fmt.Errorf("put blob %s/%s: %w", full, name, storage.Translate(err))
	}
	return nil
}

// Get reads blob name of container. A missing blob or container is platform.ErrNotFound.
func (c *Client) Get(ctx context.Context, container, name string) ([]byte, error) {
	full := c.ns.Container(container)
	resp, err := c.svc.DownloadStream(ctx, full, name, nil)
	if err != nil {
		return nil, fmt.Errorf("get blob %s/%s: %w", full, name, storage.Translate(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read blob %s/%s: %w", full, name, err)
	}
	return data, nil
}

// GetBounded reads at most limit+1 bytes of blob name of container (a ranged read: never more
// into memory, whatever the blob's size), and the blob's full size. len(data) > limit tells
// the caller the blob is over its limit. A missing blob or container is platform.ErrNotFound.
func (c *Client) GetBounded(ctx context.Context, container, name string, limit int64) (data []byte, size int64, err error) {
	full := c.ns.Container(container)
	resp, err := c.svc.DownloadStream(ctx, full, name, &azblob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 0, Count: limit + 1}})
	if bloberror.HasCode(err, bloberror.InvalidRange) {
		return nil, 0, nil // a range of an empty blob: there is nothing to read
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get blob %s/%s: %w", full, name, storage.Translate(err))
	}
	defer resp.Body.Close()
	if data, err = io.ReadAll(io.LimitReader(resp.Body, limit+1)); err != nil {
		return nil, 0, fmt.Errorf("read blob %s/%s: %w", full, name, err)
	}
	size = int64(len(data))
	if resp.ContentRange != nil {
		// "bytes 0-N/TOTAL": the size of the whole blob, not only of the range read.
		if _, total, ok := strings.Cut(*resp.ContentRange, "/"); ok {
			if n, perr := strconv.ParseInt(total, 10, 64); perr == nil {
				size = n
			}
		}
	}
	return data, size, nil
}

func (c *Client) ensureContainer(ctx context.Context, full string) error {
	if _, ok := c.created.Load(full); ok {
		return nil
	}
	_, err := c.svc.CreateContainer(ctx, full, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return fmt.Errorf("create container %s: %w", full, storage.Translate(err))
	}
	c.created.Store(full, struct{}{})
	return nil
}

// DeleteNamespace deletes every container of the namespace. Tests use it to clean up; it refuses
// the empty namespace, which would mean every container of the account.
func (c *Client) DeleteNamespace(ctx context.Context) error {
	if c.ns == "" {
		return errors.New("delete namespace: refusing the empty namespace")
	}
	prefix := c.ns.Container("")
	pager := c.svc.NewListContainersPager(&azblob.ListContainersOptions{Prefix: &prefix})
	var errs []error
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return storage.Translate(err)
		}
		for _, item := range page.ContainerItems {
			if item.Name == nil || !strings.HasPrefix(*item.Name, prefix) {
				continue
			}
			if _, err := c.svc.DeleteContainer(ctx, *item.Name, nil); err != nil {
				errs = append(errs, storage.Translate(err))
			}
		}
	}
	return errors.Join(errs...)
}
