package worker_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/webhooks"
)

// verifyStandardWebhook is a receiver's check written here from the Standard Webhooks spec
// (standardwebhooks.com), not with the worker's code: the key is the base64 after "whsec_"
// (any other secret is used as its bytes, as the libraries' raw-key form does); the signed
// content is "{webhook-id}.{webhook-timestamp}.{body}"; webhook-signature lists
// "v1,<base64 HMAC-SHA256>" signatures, space-separated, any of which may match (compared in
// constant time); a timestamp more than 5 minutes from now is refused (a replay).
func verifyStandardWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	key := []byte(secret)
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		var err error
		if key, err = base64.StdEncoding.DecodeString(rest); err != nil {
			return fmt.Errorf("secret: %v", err)
		}
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q: %v", ts, err)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("webhook-timestamp %s is %s from now: a replay", ts, d)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	for _, s := range strings.Split(sigs, " ") {
		if v, sig, ok := strings.Cut(s, ","); ok && v == "v1" && hmac.Equal([]byte(sig), want) {
			return nil
		}
	}
	return errors.New("no v1 signature matches")
}

// request is what a recordingReceiver got.
type request struct {
	header http.Header
	body   []byte
}

// recordingReceiver records every request, and answers 500 to the first fail of them.
type recordingReceiver struct {
	URL  string
	mu   sync.Mutex
	got  []request
	fail int
}

func newRecordingReceiver(t *testing.T, fail int) *recordingReceiver {
	r := &recordingReceiver{fail: fail}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.got = append(r.got, request{req.Header.Clone(), body})
		if len(r.got) <= r.fail {
			rw.WriteHeader(http.StatusInternalServerError)
			return
		}
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *recordingReceiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

// Every delivery carries the Standard Webhooks headers, which a verifier written from the
// spec accepts: with a generated whsec_ secret and with a hex one given before them, on every
// attempt of a retried delivery (the same webhook-id, the Idempotency-Key). The same request
// replayed more than 5 minutes later, with its timestamp moved, or with its body changed, is
// refused. X-Platform-Signature is still sent, for receivers written before.
func TestWebhookDeliveriesVerifyAsStandardWebhooks(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	ctx := context.Background()
	const hexSecret = "3f8a1c9e0b7d2465f1a0c3e9b8d7e6a5"
	generated := newRecordingReceiver(t, 0)
	legacy := newRecordingReceiver(t, 2) // 500, 500, then 204
	eg, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: generated.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{11, 12}})
	if err != nil {
		t.Fatal(err)
	}
	el, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: legacy.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{12}, Secret: hexSecret})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(eg.Secret, "whsec_") {
		t.Fatalf("generated secret %q: want the whsec_ form", eg.Secret)
	}
	first := event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`)
	second := event(11, 1, 1, attendee, "2026-11-22T09:00:00Z", `{"firstName":"Ada"}`)
	send(t, w, first, second)
	drain(t, w)
	ev, _ := platform.DecodeEvent([]byte(first))

	for _, c := range []struct {
		name, secret, endpoint string
		r                      *recordingReceiver
		want                   int
	}{{"generated whsec_", eg.Secret, eg.ID, generated, 2}, {"hex", hexSecret, el.ID, legacy, 3}} {
		got := c.r.requests()
		if len(got) != c.want {
			t.Fatalf("%s: %d requests, want %d", c.name, len(got), c.want)
		}
		for i, req := range got {
			if err := verifyStandardWebhook(c.secret, req.header, req.body, time.Now()); err != nil {
				t.Errorf("%s, request %d: %v (headers %v)", c.name, i, err, req.header)
			}
			if id := req.header.Get("webhook-id"); id != req.header.Get("Idempotency-Key") || !strings.HasPrefix(id, "webhook:"+c.endpoint+":") {
				t.Errorf("%s, request %d: webhook-id %q, Idempotency-Key %q: want the same delivery key", c.name, i, id, req.header.Get("Idempotency-Key"))
			}
			if !hmac.Equal([]byte(req.header.Get("X-Platform-Signature")), []byte(webhooks.Sign(c.secret, req.body))) {
				t.Errorf("%s, request %d: X-Platform-Signature %q does not verify", c.name, i, req.header.Get("X-Platform-Signature"))
			}
		}
		if c.r == legacy { // three attempts of one delivery: one webhook-id
			for _, req := range got {
				if id := req.header.Get("webhook-id"); id != platform.DeliveryKey(el.ID, ev.Key()) {
					t.Errorf("attempt with webhook-id %q, want %q on every attempt", id, platform.DeliveryKey(el.ID, ev.Key()))
				}
			}
		}
	}

	// What an attacker who saw a delivery can try.
	req := generated.requests()[0]
	if err := verifyStandardWebhook(eg.Secret, req.header, req.body, time.Now().Add(6*time.Minute)); err == nil {
		t.Error("the delivery replayed 6 minutes later was accepted")
	}
	moved := req.header.Clone()
	moved.Set("webhook-timestamp", strconv.FormatInt(time.Now().Add(6*time.Minute).Unix(), 10))
	if err := verifyStandardWebhook(eg.Secret, moved, req.body, time.Now().Add(6*time.Minute)); err == nil {
		t.Error("the delivery replayed with a fresh timestamp was accepted")
	}
	tampered := []byte(strings.Replace(string(req.body), `"Ada"`, `"Eve"`, 1))
	if string(tampered) == string(req.body) {
		t.Fatalf("body %s: nothing to tamper with", req.body)
	}
	if err := verifyStandardWebhook(eg.Secret, req.header, tampered, time.Now()); err == nil {
		t.Error("a tampered body was accepted")
	}
	if err := verifyStandardWebhook(webhooks.NewSecret(), req.header, req.body, time.Now()); err == nil {
		t.Error("another endpoint's secret verified the delivery")
	}
}
