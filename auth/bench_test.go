package auth

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
)

// What authentication adds to a request, against a baseline measured in the same run: one
// HTTP request over loopback to a handler that does nothing. A token costs an RS256
// verification and its claims the first time, a lookup after; a key (its row cached) a SHA-256
// and a compare.
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	b.Run("baseline: one loopback HTTP request", func(b *testing.B) {
		for b.Loop() {
			resp, err := http.Get(srv.URL)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})

	iss := testenv.StartIssuer(b)
	tc, err := tables.New(storage.Account{}, testenv.Namespace(b))
	if err != nil {
		b.Fatal(err)
	}
	if err := tc.CreateTables(ctx, tables.TableAPIKeys); err != nil {
		b.Fatal(err)
	}
	keys := NewKeys(tc.APIKeys(), time.Hour)
	a, err := New(Config{Issuer: iss.URL, Audience: "api://x"}, keys)
	if err != nil {
		b.Fatal(err)
	}
	token := "Bearer " + iss.Token(testenv.Claims{"aud": "api://x", "sub": "s", "roles": []string{"support"}, "bu": []int{1}})
	key, _, err := keys.Create(ctx, NewKey{Role: Support, Units: Units{IDs: []int64{1}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("token, first use (RS256 verification)", func(b *testing.B) {
		raw := token[len("Bearer "):]
		for b.Loop() {
			if _, _, err := a.tokens.verifyNow(ctx, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range []struct{ name, header string }{{"token, again (remembered)", token}, {"API key (row cached)", "Bearer " + key}} {
		b.Run(c.name, func(b *testing.B) {
			if _, err := a.Authenticate(ctx, c.header); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := a.Authenticate(ctx, c.header); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
