package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// TableAPIKeys holds the API keys of services and tools: a hash of each secret, never the
// secret.
const TableAPIKeys = "ApiKeys"

// APIKey is one key as stored. Role and Units are kept as written ("history.read", "42,43"
// or "*"): package auth reads them.
type APIKey struct {
	ID        string     `json:"id"`
	Name      string     `json:"name,omitempty"`
	Role      string     `json:"role"`
	Units     string     `json:"businessUnits"`
	Hash      string     `json:"-"` // never printed, never logged
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// APIKeys is the ApiKeys table: one row per key, PartitionKey the key id.
type APIKeys struct{ t *aztables.Client }

// APIKeys returns the namespace's API key store.
func (c *Client) APIKeys() *APIKeys { return &APIKeys{t: c.table(TableAPIKeys)} }

type apiKeyEntity struct {
	PartitionKey, RowKey string
	Name                 string
	Role                 string
	Units                string
	Hash                 string
	CreatedAt            string
	CreatedAtType        string `json:"CreatedAt@odata.type"`
	ExpiresAt            string `json:",omitempty"`
	ExpiresAtType        string `json:"ExpiresAt@odata.type,omitempty"`
	RevokedAt            string `json:",omitempty"`
	RevokedAtType        string `json:"RevokedAt@odata.type,omitempty"`
}

// Add stores a new key; platform.ErrExists when its id is taken.
func (s *APIKeys) Add(ctx context.Context, k *APIKey) error {
	e := apiKeyEntity{PartitionKey: k.ID, RowKey: singleRowKey, Name: k.Name, Role: k.Role, Units: k.Units, Hash: k.Hash,
		CreatedAt: k.CreatedAt.UTC().Format(timeLayout), CreatedAtType: edmDateTime}
	if k.ExpiresAt != nil {
		e.ExpiresAt, e.ExpiresAtType = k.ExpiresAt.UTC().Format(timeLayout), edmDateTime
	}
	body, _ := json.Marshal(e)
	if _, err := s.t.AddEntity(ctx, body, nil); err != nil {
		return fmt.Errorf("add API key %s: %w", k.ID, storage.Translate(err))
	}
	return nil
}

// Get reads key id; platform.ErrNotFound when there is none.
func (s *APIKeys) Get(ctx context.Context, id string) (*APIKey, error) {
	resp, err := s.t.GetEntity(ctx, id, singleRowKey, nil)
	if err != nil {
		return nil, fmt.Errorf("read API key %s: %w", id, storage.Translate(err))
	}
	var e apiKeyEntity
	if err := json.Unmarshal(resp.Value, &e); err != nil {
		return nil, fmt.Errorf("read API key %s: %w", id, err)
	}
	return e.key()
}

// List reads every key, revoked and expired ones included, without their hashes.
func (s *APIKeys) List(ctx context.Context) ([]*APIKey, error) {
	pager := s.t.NewListEntitiesPager(nil)
	var out []*APIKey
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
				return nil, nil
			}
			return nil, fmt.Errorf("list API keys: %w", err)
		}
		for _, raw := range page.Entities {
			var e apiKeyEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, fmt.Errorf("list API keys: %w", err)
			}
			k, err := e.key()
			if err != nil {
				return nil, err
			}
			k.Hash = ""
			out = append(out, k)
		}
	}
	return out, nil
}

// Revoke marks key id revoked now, once: revoking it again keeps the first time.
// platform.ErrNotFound when there is no such key.
func (s *APIKeys) Revoke(ctx context.Context, id string) (*APIKey, error) {
	k, err := s.Get(ctx, id)
	if err != nil || k.RevokedAt != nil {
		return k, err
	}
	now := time.Now().UTC()
	body, _ := json.Marshal(map[string]string{"PartitionKey": id, "RowKey": singleRowKey,
		"RevokedAt": now.Format(timeLayout), "RevokedAt@odata.type": edmDateTime})
	tag := azcoreETagAny
	if _, err := s.t.UpdateEntity(ctx, body, &aztables.UpdateEntityOptions{IfMatch: &tag, UpdateMode: aztables.UpdateModeMerge}); err != nil {
		return nil, fmt.Errorf("revoke API key %s: %w", id, storage.Translate(err))
	}
	k.RevokedAt = &now
	return k, nil
}

func (e *apiKeyEntity) key() (*APIKey, error) {
	k := &APIKey{ID: e.PartitionKey, Name: e.Name, Role: e.Role, Units: e.Units, Hash: e.Hash}
	var err error
	if k.CreatedAt, err = parseTime(e.CreatedAt); err != nil {
		return nil, fmt.Errorf("API key %s: CreatedAt: %w", e.PartitionKey, err)
	}
	for _, f := range []struct {
		s  string
		to **time.Time
	}{{e.ExpiresAt, &k.ExpiresAt}, {e.RevokedAt, &k.RevokedAt}} {
		if f.s == "" {
			continue
		}
		t, err := parseTime(f.s)
		if err != nil {
			return nil, fmt.Errorf("API key %s: %w", e.PartitionKey, err)
		}
		*f.to = &t
	}
	return k, nil
}
