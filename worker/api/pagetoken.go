package api

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
)

// pageTokens seal the continuation tokens the API hands out (AES-256-GCM under a key every
// replica shares), bound to what they page through. A token of the table is where the last
// page stopped reading: a row key, which may be a row the reader was not shown (another
// business unit's: its time, to 100 ns, and its event type). Sealed, it says nothing, and an
// after= of a caller's own making is refused instead of read.
type pageTokens struct {
	key func(ctx context.Context) ([]byte, error)

	mu   sync.Mutex
	aead cipher.AEAD
}

// errBadToken: an after= that is not a token this API sealed for this listing.
var errBadToken = errors.New("not a token of this listing (use the next of its previous page)")

func (p *pageTokens) cipher(ctx context.Context) (cipher.AEAD, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.aead != nil {
		return p.aead, nil
	}
	key, err := p.key(ctx)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if p.aead, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	return p.aead, nil
}

// seal wraps token (empty stays empty) for the listing scope names.
func (p *pageTokens) seal(ctx context.Context, scope, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	aead, err := p.cipher(ctx)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(token)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(token), []byte(scope))), nil
}

// open unwraps a sealed token of the listing scope names; errBadToken for anything else.
func (p *pageTokens) open(ctx context.Context, scope, sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	aead, err := p.cipher(ctx)
	if err != nil {
		return "", err
	}
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(b) < aead.NonceSize()+aead.Overhead() {
		return "", errBadToken
	}
	token, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(scope))
	if err != nil || len(token) == 0 {
		return "", errBadToken
	}
	return string(token), nil
}
