package testenv

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ManagedIdentity is the token endpoint Azure Container Apps (and App Service) give a
// container in IDENTITY_ENDPOINT and IDENTITY_HEADER: a real HTTP server on loopback that
// answers the protocol azidentity's ManagedIdentityCredential speaks to it (GET with
// api-version 2019-08-01, resource and client_id, and the X-IDENTITY-HEADER secret) with
// RS256 tokens shaped as Microsoft Entra ID's v1 access tokens are: iss
// https://sts.windows.net/{tenant}/, aud the resource asked for, and the identity's ids.
type ManagedIdentity struct {
	URL    string
	Header string // the X-IDENTITY-HEADER secret
	// ClientID is the user-assigned identity the endpoint knows; a request for another is
	// refused as Azure refuses it (400, identity not found).
	ClientID string
	Tenant   string
	// Requests counts token requests answered with a token.
	Requests atomic.Int64

	mu       sync.Mutex
	audience string // replaces the resource as aud when set (a token for another service)
	expired  bool   // tokens whose exp has passed (the answer's expires_on says an hour)
	key      *rsa.PrivateKey
}

// StartManagedIdentity starts the endpoint for t, knowing one user-assigned identity.
func StartManagedIdentity(t testing.TB) *ManagedIdentity {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	m := &ManagedIdentity{Header: "identity-header-" + string(NewNamespace()), ClientID: "0d9e1a52-3c7e-4d43-9d39-5f1c2a7b8e61",
		Tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47", key: key}
	srv := httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(srv.Close)
	m.URL = srv.URL + "/msi/token"
	return m
}

// Env is what the platform sets in a container with a managed identity.
func (m *ManagedIdentity) Env() []string {
	return []string{"IDENTITY_ENDPOINT=" + m.URL, "IDENTITY_HEADER=" + m.Header}
}

// MintFor makes every later token name audience instead of the resource asked for ("" to stop).
func (m *ManagedIdentity) MintFor(audience string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.audience = audience
}

// MintExpired makes every later token one whose lifetime has passed.
func (m *ManagedIdentity) MintExpired(expired bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expired = expired
}

func (m *ManagedIdentity) serve(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	fail := func(status int, code, desc string) {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(status)
		_ = json.NewEncoder(rw).Encode(map[string]string{"error": code, "error_description": desc})
	}
	switch {
	case r.Method != http.MethodGet || r.URL.Path != "/msi/token":
		fail(http.StatusNotFound, "not_found", "no such endpoint")
		return
	case r.Header.Get("X-IDENTITY-HEADER") != m.Header:
		fail(http.StatusUnauthorized, "unauthorized", "X-IDENTITY-HEADER missing or wrong")
		return
	case q.Get("api-version") != "2019-08-01" || q.Get("resource") == "":
		fail(http.StatusBadRequest, "invalid_request", "api-version 2019-08-01 and resource are required")
		return
	case q.Get("client_id") != "" && q.Get("client_id") != m.ClientID:
		fail(http.StatusBadRequest, "invalid_request", "Identity not found")
		return
	}
	m.mu.Lock()
	aud, expired := m.audience, m.expired
	m.mu.Unlock()
	if aud == "" {
		aud = q.Get("resource")
	}
	now := time.Now()
	exp := now.Add(time.Hour)
	iat := now
	if expired {
		iat, exp = now.Add(-2*time.Hour), now.Add(-time.Hour)
	}
	token := SignRS256(m.key, "mi-key", Claims{
		"aud": aud, "iss": "https://sts.windows.net/" + m.Tenant + "/",
		"iat": iat.Unix(), "nbf": iat.Unix(), "exp": exp.Unix(),
		"appid": m.ClientID, "oid": "5b6f6c33-2d6a-4f2e-8d55-0b8c1b0e9f10", "sub": "5b6f6c33-2d6a-4f2e-8d55-0b8c1b0e9f10",
		"tid": m.Tenant, "idtyp": "app", "ver": "1.0",
	})
	m.Requests.Add(1)
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(map[string]any{
		"access_token": token, "expires_on": now.Add(time.Hour).Unix(), "resource": q.Get("resource"),
		"token_type": "Bearer", "client_id": m.ClientID,
	})
}
