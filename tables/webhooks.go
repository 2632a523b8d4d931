package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// TableWebhookEndpoints holds the integrators' webhook subscriptions.
const TableWebhookEndpoints = "WebhookEndpoints"

// Endpoint is an integrator's subscription: events of these types in this business unit are
// POSTed to URL, signed with Secret.
type Endpoint struct {
	ID             string    `json:"id"`
	BusinessUnitID int64     `json:"businessUnitId"`
	EventTypes     []int     `json:"eventTypes"`
	URL            string    `json:"url"`
	Secret         string    `json:"-"` // never printed, never logged
	Enabled        bool      `json:"enabled"`
	CreatedAt      time.Time `json:"createdAt"`
	// DisabledReason and DisabledAt say why and when the worker disabled the endpoint itself
	// (every delivery failing for a while); empty for one enabled or disabled by hand.
	DisabledReason string    `json:"disabledReason,omitempty"`
	DisabledAt     time.Time `json:"disabledAt,omitzero"`
	// FailingSince is the first failed attempt since the last success; zero when the last
	// attempt succeeded.
	FailingSince time.Time `json:"failingSince,omitzero"`
	// PreviousSecret is the secret a rotation replaced: it signs too, besides Secret, until
	// PreviousSecretExpiresAt.
	PreviousSecret          string    `json:"-"` // never printed, never logged
	PreviousSecretExpiresAt time.Time `json:"previousSecretExpiresAt,omitzero"`
}

// Secrets are the secrets that sign a delivery at now: Secret, then PreviousSecret while it
// has not expired.
func (e *Endpoint) Secrets(now time.Time) []string {
	if e.PreviousSecret != "" && now.Before(e.PreviousSecretExpiresAt) {
		return []string{e.Secret, e.PreviousSecret}
	}
	return []string{e.Secret}
}

// Subscribes reports whether the endpoint wants ev.
func (e *Endpoint) Subscribes(ev *platform.EntityEvent) bool {
	return e.Enabled && e.BusinessUnitID == ev.BusinessUnitID && slices.Contains(e.EventTypes, ev.EventTypeID)
}

// Endpoints is the WebhookEndpoints table: one small partition, read whole and cached by the
// worker.
type Endpoints struct{ t *aztables.Client }

// Endpoints returns the namespace's webhook endpoints.
func (c *Client) Endpoints() *Endpoints { return &Endpoints{t: c.table(TableWebhookEndpoints)} }

const endpointPartition = "endpoint"

type endpointEntity struct {
	PartitionKey, RowKey string
	BusinessUnitId       int64  `json:",string"`
	BusinessUnitIdType   string `json:"BusinessUnitId@odata.type"`
	EventTypes           string
	URL                  string
	Secret               string
	Enabled              bool
	CreatedAt            string
	CreatedAtType        string `json:"CreatedAt@odata.type"`
	DisabledReason       string `json:",omitempty"`
	DisabledAt           string `json:",omitempty"`
	FailingSince         string `json:",omitempty"`
	// Set by RotateSecret.
	PreviousSecret              string `json:",omitempty"`
	PreviousSecretExpiresAt     string `json:",omitempty"`
	PreviousSecretExpiresAtType string `json:"PreviousSecretExpiresAt@odata.type,omitempty"`
}

// Add stores a new endpoint.
func (s *Endpoints) Add(ctx context.Context, e *Endpoint) error {
	types, _ := json.Marshal(e.EventTypes)
	body, _ := json.Marshal(endpointEntity{PartitionKey: endpointPartition, RowKey: e.ID, BusinessUnitId: e.BusinessUnitID, BusinessUnitIdType: edmInt64,
		EventTypes: string(types), URL: e.URL, Secret: e.Secret, Enabled: e.Enabled, CreatedAt: e.CreatedAt.UTC().Format(timeLayout), CreatedAtType: edmDateTime})
	if _, err := s.t.AddEntity(ctx, body, nil); err != nil {
		return fmt.Errorf("add webhook endpoint: %w", storage.Translate(err))
	}
	return nil
}

// List reads every endpoint, enabled or not.
func (s *Endpoints) List(ctx context.Context) ([]*Endpoint, error) {
	filter := "PartitionKey eq " + odataQuote(endpointPartition)
	pager := s.t.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter})
	var out []*Endpoint
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
				return nil, nil
			}
			return nil, fmt.Errorf("list webhook endpoints: %w", err)
		}
		for _, raw := range page.Entities {
			var e endpointEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, err
			}
			ep := &Endpoint{ID: e.RowKey, BusinessUnitID: e.BusinessUnitId, URL: e.URL, Secret: e.Secret, Enabled: e.Enabled}
			_ = json.Unmarshal([]byte(e.EventTypes), &ep.EventTypes)
			ep.CreatedAt, _ = parseTime(e.CreatedAt)
			ep.DisabledReason = e.DisabledReason
			ep.DisabledAt, _ = parseTime(e.DisabledAt)
			ep.FailingSince, _ = parseTime(e.FailingSince)
			ep.PreviousSecret = e.PreviousSecret
			ep.PreviousSecretExpiresAt, _ = parseTime(e.PreviousSecretExpiresAt)
			out = append(out, ep)
		}
	}
	return out, nil
}

// Get reads endpoint id; platform.ErrNotFound when there is none.
func (s *Endpoints) Get(ctx context.Context, id string) (*Endpoint, error) {
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range all {
		if e.ID == id {
			return e, nil
		}
	}
	return nil, fmt.Errorf("webhook endpoint %s: %w", id, platform.ErrNotFound)
}

// Disable stops deliveries to endpoint id (deliveries already sent stay as they are).
func (s *Endpoints) Disable(ctx context.Context, id string) error {
	body, _ := json.Marshal(map[string]any{"PartitionKey": endpointPartition, "RowKey": id, "Enabled": false})
	tag := azcoreETagAny
	if _, err := s.t.UpdateEntity(ctx, body, &aztables.UpdateEntityOptions{IfMatch: &tag, UpdateMode: aztables.UpdateModeMerge}); err != nil {
		return fmt.Errorf("disable webhook endpoint %s: %w", id, storage.Translate(err))
	}
	return nil
}

// RotateSecret makes secret endpoint id's current secret; the one it replaces keeps signing
// until keepOldUntil (not at all when that is not in the future), and one replaced before is
// dropped. It returns when the old one stops signing; platform.ErrNotFound when there is no
// endpoint id. The row is read and written under its ETag, so that two rotations at once
// each keep the secret the other replaced, never a lost one.
func (s *Endpoints) RotateSecret(ctx context.Context, id, secret string, keepOldUntil time.Time) (time.Time, error) {
	for {
		resp, err := s.t.GetEntity(ctx, endpointPartition, id, nil)
		if err != nil {
			return time.Time{}, fmt.Errorf("rotate webhook endpoint %s's secret: %w", id, storage.Translate(err))
		}
		var e endpointEntity
		if err := json.Unmarshal(resp.Value, &e); err != nil {
			return time.Time{}, fmt.Errorf("rotate webhook endpoint %s's secret: %w", id, err)
		}
		now := time.Now().UTC()
		row := map[string]any{"PartitionKey": endpointPartition, "RowKey": id, "Secret": secret, "PreviousSecret": "",
			"PreviousSecretExpiresAt": now.Format(timeLayout), "PreviousSecretExpiresAt@odata.type": edmDateTime}
		expires := now
		if keepOldUntil.After(now) {
			expires = keepOldUntil.UTC()
			row["PreviousSecret"], row["PreviousSecretExpiresAt"] = e.Secret, expires.Format(timeLayout)
		}
		body, _ := json.Marshal(row)
		tag := resp.ETag
		_, err = s.t.UpdateEntity(ctx, body, &aztables.UpdateEntityOptions{IfMatch: &tag, UpdateMode: aztables.UpdateModeMerge})
		if err = storage.Translate(err); errors.Is(err, platform.ErrConflict) {
			continue // changed since we read it: read it again
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("rotate webhook endpoint %s's secret: %w", id, err)
		}
		return expires, nil
	}
}
