package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Algorithms are the only signature algorithms a token may use: "none" and HMAC (HS256, whose
// key would be the issuer's public key, known to anyone) are refused before any key is tried.
var Algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// keySet is the issuer's signing keys (its JWKS), implementing oidc.KeySet. It is read when a
// token names a key it does not hold (the issuer rotated its keys), but at most once per
// minRefresh, failed reads included: a stream of tokens with made-up key ids cannot turn the
// worker into a client that floods the identity provider. A read runs alone, and tokens of
// keys already held never wait for it.
type keySet struct {
	url        string
	client     *http.Client
	minRefresh time.Duration

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	read    time.Time // the last read, whether it failed or not
	readErr error     // why the last read failed; nil when it did not

	reading sync.Mutex
}

// VerifySignature returns the token's payload when one of the issuer's keys signed it.
func (s *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, Algorithms)
	if err != nil {
		return nil, fmt.Errorf("malformed token or algorithm not allowed (want RS256 or ES256): %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("want exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, read, readErr := s.held()
	if payload, ok := verifyWith(jws, keys, kid); ok {
		return payload, nil
	}
	if read.IsZero() || time.Since(read) >= s.minRefresh {
		// Unknown key: the issuer may have rotated. One read at a time; who waited for it
		// uses its result.
		s.reading.Lock()
		if keys, read, readErr = s.held(); read.IsZero() || time.Since(read) >= s.minRefresh {
			fresh, err := s.fetch(ctx)
			s.mu.Lock()
			s.read, s.readErr = time.Now(), err
			if err == nil {
				s.keys = fresh
			}
			s.mu.Unlock()
			keys, _, readErr = s.held()
		}
		s.reading.Unlock()
		if payload, ok := verifyWith(jws, keys, kid); ok {
			return payload, nil
		}
	}
	if readErr != nil {
		err := fmt.Errorf("%w: read the issuer's keys: %v", ErrUnavailable, readErr)
		if down, ok := ctx.Value(keysDownKey{}).(*error); ok {
			*down = err
		}
		return nil, err
	}
	return nil, fmt.Errorf("no key of the issuer verifies the token (kid %q)", kid)
}

// held is what the last read left: the keys, when it was, and why it failed.
func (s *keySet) held() ([]jose.JSONWebKey, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys, s.read, s.readErr
}

// keysDownKey is the context key under which tokens.verify asks VerifySignature to say that
// the issuer's keys could not be read (a *error): go-oidc keeps only the text of the key set's
// error, and a token's own words (its kid or alg) could imitate that text.
type keysDownKey struct{}

// verifyWith tries the keys the token may name: the one with its kid, or every signing key
// when it names none.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) ([]byte, bool) {
	for i := range keys {
		k := &keys[i]
		if (kid != "" && k.KeyID != kid) || (k.Use != "" && k.Use != "sig") || !k.IsPublic() {
			continue
		}
		if payload, err := jws.Verify(k); err == nil {
			return payload, true
		}
	}
	return nil, false
}

// maxJWKSBytes bounds what is read of the issuer's key set.
const maxJWKSBytes = 1 << 20

func (s *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", s.url, resp.Status)
	}
	var set struct{ Keys []json.RawMessage }
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKSBytes)).Decode(&set); err != nil {
		return nil, fmt.Errorf("%s: %w", s.url, err)
	}
	// A key of a type this build does not know is skipped, not a reason to trust none.
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if json.Unmarshal(raw, &k) == nil {
			keys = append(keys, k)
		}
	}
	return keys, nil
}
