package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// tokens verifies bearer tokens of one OIDC issuer for one audience. The issuer's discovery
// document is read on the first token, not at start: the worker's queues do not wait for the
// identity provider, and a provider down at start costs 503s to callers, not a crash loop.
type tokens struct {
	cfg Config

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	keySet   *keySet
	tried    time.Time // the last failed discovery: the next waits rediscoverAfter

	// verified remembers tokens already verified, by their SHA-256, until they expire: a
	// caller sends one token for many requests, and an RS256 verification costs more than the
	// request itself. A token cannot be revoked before its exp anyway.
	cacheMu  sync.Mutex
	verified map[[32]byte]verifiedToken
}

type verifiedToken struct {
	p   *Principal
	exp time.Time
}

// maxVerifiedTokens bounds the cache of verified tokens: past it, it starts over.
const maxVerifiedTokens = 10_000

func (t *tokens) verify(ctx context.Context, raw string) (*Principal, error) {
	sum := sha256.Sum256([]byte(raw))
	t.cacheMu.Lock()
	v, ok := t.verified[sum]
	t.cacheMu.Unlock()
	if ok && time.Now().Add(-t.cfg.Leeway).Before(v.exp) {
		return v.p, nil
	}
	p, exp, err := t.verifyNow(ctx, raw)
	if err != nil {
		return nil, err
	}
	t.cacheMu.Lock()
	if t.verified == nil || len(t.verified) >= maxVerifiedTokens {
		t.verified = map[[32]byte]verifiedToken{}
	}
	t.verified[sum] = verifiedToken{p: p, exp: exp}
	t.cacheMu.Unlock()
	return p, nil
}

// rediscoverAfter is how long a failed discovery is remembered before it is tried again.
const rediscoverAfter = 5 * time.Second

// verifyNow verifies raw with the issuer's keys and returns its principal and expiry.
func (t *tokens) verifyNow(ctx context.Context, raw string) (*Principal, time.Time, error) {
	v, err := t.discover(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	var keysDown error
	tok, err := v.Verify(context.WithValue(ctx, keysDownKey{}, &keysDown), raw)
	if err != nil {
		if keysDown != nil {
			return nil, time.Time{}, keysDown
		}
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			return nil, time.Time{}, unauthenticated("bearer token expired")
		}
		return nil, time.Time{}, refused("invalid bearer token", err)
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return nil, time.Time{}, refused("invalid bearer token", err)
	}
	// go-oidc allows a nbf up to 5 minutes ahead; the leeway here is ours.
	if nbf, ok := numericDate(claims["nbf"]); ok && time.Now().Add(t.cfg.Leeway).Before(nbf) {
		return nil, time.Time{}, unauthenticated("bearer token not valid yet (nbf " + nbf.UTC().Format(time.RFC3339) + ")")
	}
	p := &Principal{}
	id := stringClaim(claims["oid"]) // Entra: the object id of the user or service principal
	if id == "" {
		id = tok.Subject
	}
	if id == "" {
		return nil, time.Time{}, unauthenticated("invalid bearer token: no oid or sub claim")
	}
	p.ID = "token:" + id
	for _, s := range listClaim(claims[t.cfg.RolesClaim]) {
		if r, err := ParseRole(s); err == nil {
			p.Roles = append(p.Roles, r) // roles of other applications are not ours to read
		}
	}
	for _, s := range listClaim(claims[t.cfg.UnitsClaim]) {
		if err := p.Units.add(s); err != nil {
			return nil, time.Time{}, unauthenticated(fmt.Sprintf("invalid bearer token: claim %s: %v", t.cfg.UnitsClaim, err))
		}
	}
	return p, tok.Expiry, nil
}

// discover returns the verifier, reading the issuer's discovery document the first time.
func (t *tokens) discover(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.verifier != nil {
		return t.verifier, nil
	}
	if !t.tried.IsZero() && time.Since(t.tried) < rediscoverAfter {
		return nil, fmt.Errorf("%w: the identity provider's discovery failed moments ago", ErrUnavailable)
	}
	dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, t.cfg.HTTPClient), 10*time.Second)
	defer cancel()
	provider, err := oidc.NewProvider(dctx, t.cfg.Issuer)
	if err != nil {
		t.tried = time.Now()
		return nil, fmt.Errorf("%w: discovery at %s: %v", ErrUnavailable, t.cfg.Issuer, err)
	}
	var doc struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := provider.Claims(&doc); err != nil || doc.JWKS == "" {
		t.tried = time.Now()
		return nil, fmt.Errorf("%w: discovery at %s: no jwks_uri", ErrUnavailable, t.cfg.Issuer)
	}
	algs := make([]string, len(Algorithms))
	for i, a := range Algorithms {
		algs[i] = string(a)
	}
	keys := &keySet{url: doc.JWKS, client: t.cfg.HTTPClient, minRefresh: t.cfg.KeysRefresh}
	t.keySet = keys
	t.verifier = oidc.NewVerifier(t.cfg.Issuer, keys, &oidc.Config{
		ClientID:             t.cfg.Audience,
		SupportedSigningAlgs: algs,
		// exp is checked against now less the leeway: a token a moment past its expiry on a
		// clock a little ahead of the issuer's is still good.
		Now: func() time.Time { return time.Now().Add(-t.cfg.Leeway) },
	})
	return t.verifier, nil
}

// listClaim reads a claim that is a list of strings or numbers, or one string holding values
// separated by spaces or commas (the forms issuers use for roles and custom claims).
func listClaim(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		list = []json.RawMessage{raw}
	}
	var out []string
	for _, v := range list {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out = append(out, strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })...)
			continue
		}
		var n json.Number
		if json.Unmarshal(v, &n) == nil {
			out = append(out, n.String())
			continue
		}
		out = append(out, string(v)) // neither: kept, so that the caller refuses it by name
	}
	return out
}

func stringClaim(raw json.RawMessage) string {
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

func numericDate(raw json.RawMessage) (time.Time, bool) {
	var n json.Number
	if len(raw) == 0 || json.Unmarshal(raw, &n) != nil {
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}
