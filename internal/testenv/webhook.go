package testenv

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// WebhookReceiver is an integrator's endpoint for tests that run the worker as a process: it
// counts deliveries by Idempotency-Key, and refuses (and counts) any whose signature does not
// verify. It checks the signature itself (HMAC-SHA256 of the body, "sha256=" + hex), not with
// the worker's own code.
type WebhookReceiver struct {
	URL    string
	mu     sync.Mutex
	got    map[string]int
	forged int
}

// StartWebhookReceiver serves a receiver that expects secret until t ends.
func StartWebhookReceiver(t testing.TB, secret string) *WebhookReceiver {
	r := &WebhookReceiver{got: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		r.mu.Lock()
		defer r.mu.Unlock()
		if !hmac.Equal([]byte(req.Header.Get("X-Platform-Signature")), []byte(want)) {
			r.forged++
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.got[req.Header.Get("Idempotency-Key")]++
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Received is how many deliveries each Idempotency-Key had, and how many requests were
// refused for a signature that did not verify.
func (r *WebhookReceiver) Received() (byKey map[string]int, forged int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.got), r.forged
}
