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
	return StartWebhookReceiverFunc(t, func(string) string { return secret })
}

// StartWebhookReceiverFunc serves a receiver that expects secretFor(its URL) until t ends: a
// webhook-channel recipient's secret is derived from its URL, known only once it listens.
func StartWebhookReceiverFunc(t testing.TB, secretFor func(url string) string) *WebhookReceiver {
	r := &WebhookReceiver{got: map[string]int{}}
	var secret string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if !hmac.Equal([]byte(req.Header.Get("X-Platform-Signature")), []byte(want)) {
			r.forged++
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.got[req.Header.Get("Idempotency-Key")]++
		rw.WriteHeader(http.StatusNoContent)
	}))
	srv.Start()
	t.Cleanup(srv.Close)
	r.mu.Lock()
	r.URL = srv.URL
	secret = secretFor(srv.URL)
	r.mu.Unlock()
	return r
}

// Received is how many deliveries each Idempotency-Key had, and how many requests were
// refused for a signature that did not verify.
func (r *WebhookReceiver) Received() (byKey map[string]int, forged int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.got), r.forged
}
