// Package tables owns Platform's Azure Tables: typed stores (EntityHistory, and later jobs,
// messages, outbox and run history) and the Ensure helpers. It translates service errors into
// platform's sentinels at the edge; callers never see an SDK type. It must not decide what an
// event means: mappings and the worker build the rows, this package only stores and reads them.
package tables

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// Client reaches the namespace's tables.
type Client struct {
	svc *aztables.ServiceClient
	ns  platform.Namespace
}

// New connects to the account's table service.
func New(acct storage.Account, ns platform.Namespace) (*Client, error) {
	if err := ns.Validate(); err != nil {
		return nil, err
	}
	opts := &aztables.ClientOptions{ClientOptions: acct.ClientOptions(storage.Table)}
	var (
		svc *aztables.ServiceClient
		err error
	)
	if acct.Keyless() {
		svc, err = aztables.NewServiceClient(acct.Endpoint(storage.Table), acct.Credential, opts)
	} else {
		svc, err = aztables.NewServiceClientFromConnectionString(acct.ResolvedConnectionString(), opts)
	}
	if err != nil {
		return nil, fmt.Errorf("table client: %w", err)
	}
	return &Client{svc: svc, ns: ns}, nil
}

// CreateTables creates the named tables (names before the namespace prefix) where missing. The
// worker calls it once at start-up, so no hot path ever asks whether a table exists.
func (c *Client) CreateTables(ctx context.Context, names ...string) error {
	for _, name := range names {
		full := c.ns.Table(name)
		if _, err := c.svc.CreateTable(ctx, full, nil); err != nil {
			if err = storage.Translate(err); !errors.Is(err, platform.ErrExists) {
				return fmt.Errorf("create table %s: %w", full, err)
			}
		}
	}
	return nil
}

// Ping makes one cheap request, to tell whether the table service answers.
func (c *Client) Ping(ctx context.Context) error {
	pager := c.svc.NewListTablesPager(&aztables.ListTablesOptions{Top: to.Ptr[int32](1)})
	_, err := pager.NextPage(ctx)
	return storage.Translate(err)
}

// DeleteNamespace deletes every table of the namespace. Tests use it to clean up; it refuses the
// empty namespace, which would mean every table of the account.
func (c *Client) DeleteNamespace(ctx context.Context) error {
	if c.ns == "" {
		return errors.New("delete namespace: refusing the empty namespace")
	}
	prefix := string(c.ns)
	pager := c.svc.NewListTablesPager(nil)
	var errs []error
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return storage.Translate(err)
		}
		for _, t := range page.Tables {
			// Table names are case-insensitive; the namespace is lowercase, names are not.
			if t.Name == nil || !strings.HasPrefix(strings.ToLower(*t.Name), prefix) || !c.ownsTable(*t.Name) {
				continue
			}
			if _, err := c.svc.DeleteTable(ctx, *t.Name, nil); err != nil {
				errs = append(errs, storage.Translate(err))
			}
		}
	}
	return errors.Join(errs...)
}

// ownsTable tells a table of this namespace ("t1EntityHistory") from one of a longer namespace
// that merely starts the same way ("t12EntityHistory"): what follows the prefix must be a
// table name, which starts with an upper-case letter.
func (c *Client) ownsTable(name string) bool {
	rest := name[len(c.ns):]
	return rest != "" && rest[0] >= 'A' && rest[0] <= 'Z'
}

func (c *Client) table(name string) *aztables.Client { return c.svc.NewClient(c.ns.Table(name)) }

// odataQuote quotes s as an OData string literal.
func odataQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
