package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// An API key is "plk_{id}_{secret}": the prefix says what it is (to a person, and to secret
// scanners), the id (a 26-character ULID) finds its row, and the secret (32 random bytes,
// base64url) proves it. Only a hash of id and secret is stored; the key is shown once.
const (
	KeyPrefix    = "plk_"
	keyIDLen     = 26
	keySecretLen = 43 // 32 bytes, unpadded base64url
	keyLen       = len(KeyPrefix) + keyIDLen + 1 + keySecretLen
)

// DefaultKeyCacheTTL is how long a replica reuses a key's row before reading it again: a
// revoked key is refused everywhere within it.
const DefaultKeyCacheTTL = 5 * time.Second

// maxCachedKeys bounds the cache: past it, it starts over (a flood of made-up ids cannot grow
// it without bound).
const maxCachedKeys = 10_000

// Keys creates, lists, revokes and verifies API keys.
type Keys struct {
	store *tables.APIKeys
	ttl   time.Duration

	mu    sync.Mutex
	cache map[string]cachedKey
}

type cachedKey struct {
	key  *tables.APIKey // nil: there is no such key
	read time.Time
}

// NewKeys returns the keys kept in store; a key's row is reused for ttl (0:
// DefaultKeyCacheTTL).
func NewKeys(store *tables.APIKeys, ttl time.Duration) *Keys {
	if ttl <= 0 {
		ttl = DefaultKeyCacheTTL
	}
	return &Keys{store: store, ttl: ttl, cache: map[string]cachedKey{}}
}

// NewKey is a key to create.
type NewKey struct {
	Role Role
	// Units are the business units it may see. Required unless Role is Admin (an admin
	// without units sees every unit): "*" must be asked for.
	Units Units
	// Name says whom the key is for (shown by keys list). Optional.
	Name string
	// TTL is how long it is valid; 0: until revoked.
	TTL time.Duration
}

// Create makes a key and returns it, whole, once; only its hash is kept.
func (k *Keys) Create(ctx context.Context, nk NewKey) (secret string, key *tables.APIKey, err error) {
	if _, err := ParseRole(string(nk.Role)); err != nil {
		return "", nil, fmt.Errorf("%w: %v", platform.ErrInvalidInput, err)
	}
	if !nk.Units.All && len(nk.Units.IDs) == 0 && nk.Role != Admin {
		return "", nil, fmt.Errorf("%w: business units: required for role %s (a list such as 42,43, or %s for every unit)",
			platform.ErrInvalidInput, nk.Role, AllUnits)
	}
	if nk.TTL < 0 {
		return "", nil, fmt.Errorf("%w: expiry: want a positive duration", platform.ErrInvalidInput)
	}
	if len(nk.Name) > 200 || strings.ContainsFunc(nk.Name, isControl) {
		return "", nil, fmt.Errorf("%w: name: at most 200 printable characters", platform.ErrInvalidInput)
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	id := ulid.Make().String()
	secret = base64.RawURLEncoding.EncodeToString(raw[:])
	key = &tables.APIKey{ID: id, Name: nk.Name, Role: string(nk.Role), Units: nk.Units.String(), Hash: keyHash(id, secret),
		CreatedAt: time.Now().UTC().Truncate(time.Second)}
	if nk.TTL > 0 {
		exp := key.CreatedAt.Add(nk.TTL)
		key.ExpiresAt = &exp
	}
	if err := k.store.Add(ctx, key); err != nil {
		return "", nil, err
	}
	key.Hash = ""
	return KeyPrefix + id + "_" + secret, key, nil
}

// List lists every key, without secrets or hashes.
func (k *Keys) List(ctx context.Context) ([]*tables.APIKey, error) { return k.store.List(ctx) }

// Revoke revokes key id: this replica refuses it at once, every other within the cache TTL.
// An unknown id is platform.ErrInvalidInput.
func (k *Keys) Revoke(ctx context.Context, id string) (*tables.APIKey, error) {
	if !validKeyID(id) {
		return nil, fmt.Errorf("%w: %q is not an API key id (26 characters, as keys list shows)", platform.ErrInvalidInput, id)
	}
	key, err := k.store.Revoke(ctx, id)
	if errors.Is(err, platform.ErrNotFound) {
		return nil, fmt.Errorf("%w: no API key %s", platform.ErrInvalidInput, id)
	}
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	delete(k.cache, id)
	k.mu.Unlock()
	key.Hash = ""
	return key, nil
}

// Verify returns the principal of an API key ("plk_…"), or an error wrapping
// ErrUnauthenticated (a malformed, unknown, wrong, revoked or expired key) or ErrUnavailable
// (storage did not answer).
func (k *Keys) Verify(ctx context.Context, token string) (*Principal, error) {
	if len(token) != keyLen || !strings.HasPrefix(token, KeyPrefix) || token[len(KeyPrefix)+keyIDLen] != '_' {
		return nil, unauthenticated("malformed API key")
	}
	id, secret := token[len(KeyPrefix):len(KeyPrefix)+keyIDLen], token[len(KeyPrefix)+keyIDLen+1:]
	if !validKeyID(id) {
		return nil, unauthenticated("malformed API key")
	}
	key, err := k.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	// The hash is compared even for an unknown id (against nothing), in constant time.
	want := ""
	if key != nil {
		want = key.Hash
	}
	if subtle.ConstantTimeCompare([]byte(keyHash(id, secret)), []byte(want)) != 1 {
		return nil, unauthenticated("invalid API key")
	}
	now := time.Now()
	switch {
	case key.RevokedAt != nil:
		return nil, unauthenticated("API key revoked")
	case key.ExpiresAt != nil && now.After(*key.ExpiresAt):
		return nil, unauthenticated("API key expired")
	}
	role, err := ParseRole(key.Role)
	if err != nil {
		return nil, refused("invalid API key", fmt.Errorf("key %s: %w", id, err))
	}
	units, err := ParseUnits(key.Units)
	if key.Units == "" {
		units, err = Units{}, nil
	}
	if err != nil {
		return nil, refused("invalid API key", fmt.Errorf("key %s: %w", id, err))
	}
	return &Principal{ID: "key:" + id, Roles: []Role{role}, Units: units}, nil
}

// lookup reads key id's row, from the cache when it was read within the TTL; nil when there
// is no such key.
func (k *Keys) lookup(ctx context.Context, id string) (*tables.APIKey, error) {
	k.mu.Lock()
	c, ok := k.cache[id]
	k.mu.Unlock()
	if ok && time.Since(c.read) < k.ttl {
		return c.key, nil
	}
	key, err := k.store.Get(ctx, id)
	switch {
	case errors.Is(err, platform.ErrNotFound):
		key = nil
	case err != nil:
		return nil, fmt.Errorf("%w: read API key: %v", ErrUnavailable, err)
	}
	k.mu.Lock()
	if len(k.cache) >= maxCachedKeys {
		clear(k.cache)
	}
	k.cache[id] = cachedKey{key: key, read: time.Now()}
	k.mu.Unlock()
	return key, nil
}

// keyHash is what is stored of a key: SHA-256 over its id and secret. The secret is 256
// random bits, so a fast hash is enough; the id binds the hash to its row.
func keyHash(id, secret string) string {
	h := sha256.Sum256([]byte("platform-api-key\x00" + id + "\x00" + secret))
	return hex.EncodeToString(h[:])
}

func validKeyID(id string) bool {
	_, err := ulid.ParseStrict(id)
	return err == nil && len(id) == keyIDLen && strings.ToUpper(id) == id
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }
