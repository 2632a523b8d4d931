package testenv

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Issuer is a real OIDC issuer for tests: a discovery document and a JWKS served over HTTP on
// loopback, RSA keys generated here, and tokens signed with them. It can rotate its key, and
// mint the tokens an attacker would (alg none, HS256 keyed with the public key, an unknown
// key id).
type Issuer struct {
	URL string

	mu        sync.Mutex
	keys      []*issuerKey // published in the JWKS; the last one signs
	n         int
	JWKSReads atomic.Int64
	// KeysDown makes the JWKS answer 503, as an identity provider in an outage would.
	KeysDown atomic.Bool
}

type issuerKey struct {
	kid string
	key *rsa.PrivateKey
}

// StartIssuer starts an issuer for t, with one key.
func StartIssuer(t testing.TB) *Issuer {
	t.Helper()
	iss := &Issuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(rw http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(rw).Encode(map[string]any{
			"issuer": iss.URL, "jwks_uri": iss.URL + "/keys",
			"authorization_endpoint": iss.URL + "/authorize", "token_endpoint": iss.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /keys", func(rw http.ResponseWriter, _ *http.Request) {
		iss.JWKSReads.Add(1)
		if iss.KeysDown.Load() {
			http.Error(rw, "down", http.StatusServiceUnavailable)
			return
		}
		iss.mu.Lock()
		defer iss.mu.Unlock()
		var keys []map[string]string
		for _, k := range iss.keys {
			keys = append(keys, jwk(k))
		}
		_ = json.NewEncoder(rw).Encode(map[string]any{"keys": keys})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	iss.URL = srv.URL
	iss.Rotate(false)
	return iss
}

// Rotate makes a new signing key; keepOld leaves the previous ones published too.
func (iss *Issuer) Rotate(keepOld bool) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.n++
	nk := &issuerKey{kid: "key-" + strconv.Itoa(iss.n), key: k}
	if keepOld {
		iss.keys = append(iss.keys, nk)
	} else {
		iss.keys = []*issuerKey{nk}
	}
}

// Claims are a token's claims; Token fills in iss, exp, iat and nbf when they are missing.
type Claims map[string]any

// Token is a token signed (RS256) with the current key.
func (iss *Issuer) Token(c Claims) string {
	iss.mu.Lock()
	k := iss.keys[len(iss.keys)-1]
	iss.mu.Unlock()
	return SignRS256(k.key, k.kid, iss.claims(c))
}

// TokenWithUnknownKey is a token signed with a key the issuer never published.
func (iss *Issuer) TokenWithUnknownKey(c Claims) string {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return SignRS256(k, "key-unknown", iss.claims(c))
}

// TokenAlgNone is the token unsigned, with "alg": "none".
func (iss *Issuer) TokenAlgNone(c Claims) string {
	return segment(map[string]any{"alg": "none", "typ": "JWT"}) + "." + segment(iss.claims(c)) + "."
}

// TokenHS256WithPublicKey is the classic key-confusion forgery: HS256, keyed with the
// issuer's public key (which anyone can read from the JWKS).
func (iss *Issuer) TokenHS256WithPublicKey(c Claims) string {
	iss.mu.Lock()
	k := iss.keys[len(iss.keys)-1]
	iss.mu.Unlock()
	pub, _ := x509.MarshalPKIXPublicKey(&k.key.PublicKey)
	signing := segment(map[string]any{"alg": "HS256", "typ": "JWT", "kid": k.kid}) + "." + segment(iss.claims(c))
	mac := hmac.New(sha256.New, pub)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (iss *Issuer) claims(c Claims) Claims {
	out := Claims{"iss": iss.URL, "iat": time.Now().Unix(), "nbf": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range c {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

// SignRS256 signs claims as a compact JWS with key, naming kid.
func SignRS256(key *rsa.PrivateKey, kid string, claims Claims) string {
	signing := segment(map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}) + "." + segment(claims)
	h := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	if err != nil {
		panic(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func segment(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func jwk(k *issuerKey) map[string]string {
	pub := k.key.PublicKey
	return map[string]string{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": k.kid,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString([]byte{1, 0, 1})}
}
