package webhooks

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"math"
	"strings"

	"github.com/platform/platform"
)

// Endpoint secrets: one is generated when none is given; a given one must carry at least
// MinSecretBits: a whsec_ secret by the bytes it encodes, any other by SecretBits' estimate.
const (
	MinSecretBits   = 128
	whsecPrefix     = "whsec_" // Standard Webhooks: the base64 of the key follows
	minSecretChars  = 8        // distinct characters: "aaaa…" and "abab…" are no secret
	maxSecretLength = 1024     // a header value and a table property, comfortably
)

// NewSecret is a generated endpoint secret in the Standard Webhooks form: "whsec_" and the
// base64 of 32 bytes from crypto/rand, the HMAC key of webhook-signature.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (it crashes the program rather than return short)
	return whsecPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// SecretBits estimates, conservatively, how many bits of entropy secret carries: its length
// times log2 of the alphabet it draws from. The alphabet is the size of the character classes
// the secret uses (16 if it is all hex digits of one case; otherwise 10 digits, 26 lowercase,
// 26 uppercase, 32 symbols, summed over the classes present), but never more than twice the
// number of distinct characters it uses, so a long secret made of few characters
// ("password-password-…") counts for little. It is an estimate for refusing weak secrets (short
// ones, one class, few characters), not a measure of randomness: a generated secret is best.
func SecretBits(secret string) float64 {
	var digit, lower, upper, symbol, beyondF bool
	distinct := map[rune]bool{}
	for _, r := range secret {
		distinct[r] = true
		switch {
		case r >= '0' && r <= '9':
			digit = true
		case r >= 'a' && r <= 'z':
			lower, beyondF = true, beyondF || r > 'f'
		case r >= 'A' && r <= 'Z':
			upper, beyondF = true, beyondF || r > 'F'
		default:
			symbol = true
		}
	}
	alphabet := 0
	if hex := (lower != upper) && !symbol && !beyondF; hex {
		alphabet = 16
	} else {
		for _, c := range []struct {
			used bool
			size int
		}{{digit, 10}, {lower, 26}, {upper, 26}, {symbol, 32}} {
			if c.used {
				alphabet += c.size
			}
		}
	}
	alphabet = min(alphabet, 2*len(distinct))
	if alphabet < 2 {
		return 0
	}
	return float64(len(secret)) * math.Log2(float64(alphabet))
}

// CheckSecret refuses an endpoint secret that is too weak (SecretBits under MinSecretBits, or
// fewer than 8 distinct characters), too long, or not printable ASCII. A secret that starts
// with whsec_ must be the Standard Webhooks form, the standard base64 of a key of at least
// MinSecretBits/8 bytes, 8 of them distinct: receivers' libraries decode it to their key, so
// anything else would verify nothing.
func CheckSecret(secret string) error {
	if len(secret) > maxSecretLength {
		return fmt.Errorf("%w: secret: %d characters, want at most %d", platform.ErrInvalidInput, len(secret), maxSecretLength)
	}
	if i := strings.IndexFunc(secret, func(r rune) bool { return r <= ' ' || r > '~' }); i >= 0 {
		return fmt.Errorf("%w: secret: character %d is not printable ASCII (spaces and control characters are refused too)", platform.ErrInvalidInput, i+1)
	}
	if strings.HasPrefix(secret, whsecPrefix) {
		return checkWhsec(secret)
	}
	distinct := map[rune]bool{}
	for _, r := range secret {
		distinct[r] = true
	}
	if bits := SecretBits(secret); bits < MinSecretBits || len(distinct) < minSecretChars {
		return fmt.Errorf("%w: secret: too weak (about %.0f bits by length and characters used, %d distinct characters; want at least %d bits and %d distinct): "+
			"leave it out to have one generated, or use at least 32 random hex digits or 32 random letters and digits",
			platform.ErrInvalidInput, bits, len(distinct), MinSecretBits, minSecretChars)
	}
	return nil
}

func checkWhsec(secret string) error {
	key, ok := whsecKey(secret)
	if !ok {
		return fmt.Errorf("%w: secret: after %s, want the standard base64 (with = padding) of the key", platform.ErrInvalidInput, whsecPrefix)
	}
	distinct := map[byte]bool{}
	for _, b := range key {
		distinct[b] = true
	}
	if len(key) < MinSecretBits/8 || len(distinct) < minSecretChars {
		return fmt.Errorf("%w: secret: too weak (a %s key of %d bytes, %d distinct; want at least %d bytes and %d distinct): "+
			"leave it out to have one generated", platform.ErrInvalidInput, whsecPrefix, len(key), len(distinct), MinSecretBits/8, minSecretChars)
	}
	return nil
}
