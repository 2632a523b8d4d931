package webhooks_test

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/webhooks"
)

func TestCheckSecretRefusesWeakSecrets(t *testing.T) {
	t.Parallel()
	weak := []string{
		"s", "s3cret", "secret-a", "chaos-endpoint-secret",
		strings.Repeat("a", 200), strings.Repeat("ab", 100), // long, but few characters
		"0123456789abcdef0123456789abcde",        // 31 hex digits: 124 bits
		"password-password-password-pass",        // 8 distinct characters
		"12345678901234567890123456789012345678", // 38 digits: 126 bits
		"Tr0ub4dor&3",
	}
	for _, s := range weak {
		if err := webhooks.CheckSecret(s); !errors.Is(err, platform.ErrInvalidInput) || !strings.Contains(err.Error(), "too weak") {
			t.Errorf("%q (%.0f bits): %v, want refused as too weak", s, webhooks.SecretBits(s), err)
		}
	}
	for _, s := range []string{"tab\tinside-0123456789abcdefghijklmnop", "space inside-0123456789abcdefghijklm", "é-0123456789abcdefghijklmnopqrstuvwxyz", strings.Repeat("0123456789abcdef", 65)} {
		if err := webhooks.CheckSecret(s); !errors.Is(err, platform.ErrInvalidInput) {
			t.Errorf("%q: %v, want refused", s, err)
		}
	}
	strong := []string{
		webhooks.NewSecret(),
		"3f8a1c9e0b7d2465f1a0c3e9b8d7e6a5",            // 32 random hex digits: 128 bits
		"3F8A1C9E0B7D2465F1A0C3E9B8D7E6A5",            //
		"q7XvR2mKp9LwT4sZb8NyC3hJf6DgA1eU",            // 32 random letters and digits
		"whsec-3kq9-ZtV7-pL2m-Xw8R-cN4d-Hy6J",         //
		"correct-horse-battery-staple-ocean-violet-9", // a long passphrase
	}
	for _, s := range strong {
		if err := webhooks.CheckSecret(s); err != nil {
			t.Errorf("%q (%.0f bits): %v, want accepted", s, webhooks.SecretBits(s), err)
		}
	}
	if a, b := webhooks.NewSecret(), webhooks.NewSecret(); !strings.HasPrefix(a, "whsec_") || a == b {
		t.Errorf("generated secrets %q, %q: want whsec_…, each new", a, b)
	} else if key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_")); err != nil || len(key) != 32 {
		t.Errorf("generated secret %q: %d bytes (%v), want the base64 of 32", a, len(key), err)
	}
}

// A whsec_ secret is the Standard Webhooks form: receivers' libraries base64-decode what
// follows the prefix to their key, so it must decode, to at least 16 bytes, 8 of them distinct.
func TestCheckSecretReadsWhsecSecretsAsTheirKey(t *testing.T) {
	t.Parallel()
	whsec := func(key []byte) string { return "whsec_" + base64.StdEncoding.EncodeToString(key) }
	random := func(n int) []byte { b := make([]byte, n); _, _ = rand.Read(b); return b }
	for _, s := range []string{whsec(random(16)), whsec(random(24)), whsec(random(64)), "whsec_MfKQ9r4OrVlYAKE4QxSvsCUQvxgwauQ="} {
		if err := webhooks.CheckSecret(s); err != nil {
			t.Errorf("%q: %v, want accepted", s, err)
		}
	}
	for s, why := range map[string]string{
		whsec(random(15)):       "too weak",
		whsec(make([]byte, 32)): "too weak", // 32 zero bytes
		"whsec_not base64":      "printable",
		"whsec_not-base64!":     "base64",
		"whsec_" + strings.TrimRight(base64.StdEncoding.EncodeToString(random(20)), "="): "base64", // no padding
	} {
		if err := webhooks.CheckSecret(s); !errors.Is(err, platform.ErrInvalidInput) || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: %v, want refused (%s)", s, err, why)
		}
	}
}
