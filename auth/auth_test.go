package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform/internal/testenv"
)

func TestUnitsAndWhatAPrincipalSees(t *testing.T) {
	for _, bad := range []string{"", "0", "-1", "x", "1,,2", "1.5", "9223372036854775808"} {
		if _, err := ParseUnits(bad); err == nil {
			t.Errorf("ParseUnits(%q) accepted", bad)
		}
	}
	u, err := ParseUnits("42, 43,42")
	if err != nil || !slices.Equal(u.IDs, []int64{42, 43}) || u.String() != "42,43" {
		t.Fatalf("ParseUnits: %+v %v", u, err)
	}
	scoped := &Principal{Roles: []Role{Support}, Units: u}
	if !scoped.Sees(42) || scoped.Sees(44) || scoped.AllUnits() || scoped.Visible() == nil || scoped.Has(HistoryRead) || !scoped.Has(Support) {
		t.Fatalf("a scoped support principal: %+v", scoped)
	}
	star, _ := ParseUnits("*")
	if p := (&Principal{Roles: []Role{Support}, Units: star}); !p.Sees(7) || !p.AllUnits() || p.Visible() != nil {
		t.Fatal("* sees every unit")
	}
	if p := (&Principal{Roles: []Role{Support}}); p.Sees(7) || p.AllUnits() {
		t.Fatal("a principal without units or admin sees nothing")
	}
	admin := &Principal{Roles: []Role{Admin}}
	if !admin.AllUnits() || !admin.Has(WebhooksManage) {
		t.Fatal("an admin without units sees every unit and holds every role")
	}
	if a := (&Principal{Roles: []Role{Admin}, Units: Units{IDs: []int64{1}}}); a.Sees(2) {
		t.Fatal("an admin given units sees only those")
	}
}

func newTokens(t *testing.T, iss *testenv.Issuer, refresh time.Duration) *Authenticator {
	t.Helper()
	a, err := New(Config{Issuer: iss.URL, Audience: "api://x", KeysRefresh: refresh}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Claims in the forms issuers write them: roles a list, units a list of numbers, of strings,
// or one string; roles of other applications ignored; a unit that is not one refused.
func TestTokenClaimsBecomeAPrincipal(t *testing.T) {
	iss := testenv.StartIssuer(t)
	a := newTokens(t, iss, time.Second)
	ctx := context.Background()
	for _, c := range []struct {
		bu    any
		units string
	}{{[]int{1, 2}, "1,2"}, {[]string{"1", "2"}, "1,2"}, {"1 2", "1,2"}, {"*", "*"}, {3, "3"}} {
		p, err := a.Authenticate(ctx, "Bearer "+iss.Token(testenv.Claims{"aud": "api://x", "oid": "o-1", "sub": "s-1",
			"roles": []string{"support", "Some.Other.App.Role"}, "bu": c.bu}))
		if err != nil {
			t.Fatalf("bu %v: %v", c.bu, err)
		}
		if p.ID != "token:o-1" || !slices.Equal(p.Roles, []Role{Support}) || p.Units.String() != c.units {
			t.Errorf("bu %v: %+v, want token:o-1, [support], %s", c.bu, p, c.units)
		}
	}
	_, err := a.Authenticate(ctx, "Bearer "+iss.Token(testenv.Claims{"aud": "api://x", "sub": "s", "bu": []any{1, "x"}}))
	if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "claim bu") {
		t.Fatalf("a unit that is not one: %v", err)
	}
}

// Tokens naming key ids the issuer never had cannot make the worker read the issuer's keys
// more than once per KeysRefresh; a real rotation is still picked up after it.
func TestUnknownKeyIDsDoNotFloodTheIssuer(t *testing.T) {
	iss := testenv.StartIssuer(t)
	a := newTokens(t, iss, 500*time.Millisecond)
	ctx := context.Background()
	good := testenv.Claims{"aud": "api://x", "sub": "s"}
	if _, err := a.Authenticate(ctx, "Bearer "+iss.Token(good)); err != nil {
		t.Fatal(err)
	}
	forged := "Bearer " + iss.TokenWithUnknownKey(good)
	before := iss.JWKSReads.Load()
	for range 50 {
		if _, err := a.Authenticate(ctx, forged); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := iss.JWKSReads.Load() - before; n > 2 {
		t.Fatalf("50 tokens with unknown key ids read the JWKS %d times, want at most 2", n)
	}
	iss.Rotate(false)
	time.Sleep(600 * time.Millisecond)
	if _, err := a.Authenticate(ctx, "Bearer "+iss.Token(good)); err != nil {
		t.Fatalf("after a rotation: %v", err)
	}
}

// An issuer that does not answer is 503 (ErrUnavailable), not 401, and is not asked again at
// once.
func TestAnIssuerDownIsUnavailableNotUnauthenticated(t *testing.T) {
	a, err := New(Config{Issuer: "http://127.0.0.1:1", Audience: "api://x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := a.Authenticate(context.Background(), "Bearer a.b.c"); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("issuer down: %v, want ErrUnavailable", err)
		}
	}
}

func TestConfigIsCheckedWithItsVariableNamed(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		addr string
		want string
	}{
		{Config{}, "0.0.0.0:8080", "not a loopback address"},
		{Config{}, ":8080", "not a loopback address"},
		{Config{}, "example.com:8080", "not a loopback address"},
		{Config{Mode: "open"}, "127.0.0.1:8080", "PLATFORM_AUTH"},
		{Config{Mode: ModeOIDC}, "127.0.0.1:8080", "PLATFORM_AUTH_ISSUER"},
		{Config{Issuer: "http://login.example.com/t/v2.0", Audience: "a"}, "0.0.0.0:8080", "want an https URL"},
		{Config{Mode: ModeKeys, Issuer: "https://x"}, "0.0.0.0:8080", "ignores PLATFORM_AUTH_ISSUER"},
	} {
		if err := c.cfg.CheckListener(c.addr); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v on %s: %v, want %q", c.cfg, c.addr, err, c.want)
		}
	}
	for _, c := range []struct {
		cfg  Config
		addr string
	}{
		{Config{}, "127.0.0.1:8080"}, {Config{}, "localhost:0"}, {Config{}, "[::1]:8080"},
		{Config{Mode: ModeKeys}, "0.0.0.0:8080"},
		{Config{Issuer: "https://login.microsoftonline.com/t/v2.0", Audience: "api://platform"}, "0.0.0.0:8080"},
	} {
		if err := c.cfg.CheckListener(c.addr); err != nil {
			t.Errorf("%+v on %s: %v", c.cfg, c.addr, err)
		}
	}
}

// A verified token is remembered (one RS256 verification per token, not per request), but not
// past its expiry.
func TestAVerifiedTokenIsRememberedUntilItExpires(t *testing.T) {
	iss := testenv.StartIssuer(t)
	a, err := New(Config{Issuer: iss.URL, Audience: "api://x", Leeway: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	exp := time.Now().Add(1500 * time.Millisecond).Unix()
	tok := "Bearer " + iss.Token(testenv.Claims{"aud": "api://x", "sub": "s", "exp": exp})
	first, err := a.Authenticate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := a.Authenticate(ctx, tok); err != nil || again != first {
		t.Fatalf("the same token again: %v %v, want the remembered principal", again, err)
	}
	time.Sleep(time.Until(time.Unix(exp, 0)) + 100*time.Millisecond)
	if _, err := a.Authenticate(ctx, tok); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("after its exp: %v, want refused", err)
	}
}

// While the issuer's keys cannot be read, tokens of keys already held are still served, and
// tokens naming other keys are 503 without a read of the keys each: at most one per
// KeysRefresh, failed reads included.
func TestAnIssuerWhoseKeysAreDownIsNotHammered(t *testing.T) {
	iss := testenv.StartIssuer(t)
	a := newTokens(t, iss, time.Hour)
	ctx := context.Background()
	good := "Bearer " + iss.Token(testenv.Claims{"aud": "api://x", "sub": "s"})
	if _, err := a.Authenticate(ctx, good); err != nil {
		t.Fatal(err)
	}
	iss.KeysDown.Store(true)
	ks := a.tokens.keySet
	ks.mu.Lock()
	ks.read = time.Time{} // as if the last read were long ago
	ks.mu.Unlock()
	before := iss.JWKSReads.Load()
	forged := "Bearer " + iss.TokenWithUnknownKey(testenv.Claims{"aud": "api://x", "sub": "s"})
	for range 30 {
		if _, err := a.Authenticate(ctx, forged); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("an unknown key while the issuer's keys are down: %v, want ErrUnavailable", err)
		}
	}
	if n := iss.JWKSReads.Load() - before; n != 1 {
		t.Fatalf("30 tokens of an unknown key read the failing JWKS %d times, want 1", n)
	}
	other := "Bearer " + iss.Token(testenv.Claims{"aud": "api://x", "sub": "t"}) // a held key, a token not yet remembered
	if _, err := a.Authenticate(ctx, other); err != nil {
		t.Fatalf("a token of a held key while the keys are down: %v", err)
	}
}
