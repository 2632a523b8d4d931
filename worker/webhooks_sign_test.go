package worker_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
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
	"github.com/platform/platform/internal/testenv"
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

// v1Signatures counts the v1 signatures of a request.
func v1Signatures(h http.Header) int { return strings.Count(h.Get("webhook-signature"), "v1,") }

// Rotation: while the old secret is valid every delivery carries both signatures and either
// secret verifies it; once it has expired only the new one signs. The new secret is in the
// answer once, and never in a list or the log.
func TestWebhookSecretRotation(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	cfg := env.config()
	log, logs := teeLogger(t)
	cfg.Logger = log
	w := env.start(cfg)
	ctx := context.Background()
	api := httptest.NewServer(w.Handler())
	t.Cleanup(api.Close)
	r := newRecordingReceiver(t, 0)
	e, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: r.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{12}})
	if err != nil {
		t.Fatal(err)
	}
	rotate := func(body string) (int, map[string]string) {
		resp, err := http.Post(api.URL+"/v1/webhooks/"+e.ID+"/rotate-secret", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var answer map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&answer)
		return resp.StatusCode, answer
	}
	deliver := func(minute int) request {
		t.Helper()
		send(t, w, event(12, 1, 2, attendee, fmt.Sprintf("2026-11-22T10:%02d:00Z", minute), `{"firstName":"Ada"}`))
		drain(t, w)
		got := r.requests()
		if len(got) != minute+1 {
			t.Fatalf("%d requests, want %d", len(got), minute+1)
		}
		return got[minute]
	}
	s1 := e.Secret
	if req := deliver(0); v1Signatures(req.header) != 1 || verifyStandardWebhook(s1, req.header, req.body, time.Now()) != nil {
		t.Fatalf("before rotation: %q, want one signature, by the secret", req.header.Get("webhook-signature"))
	}

	code, answer := rotate(`{"expireOldAfter":"1h"}`)
	s2 := answer["secret"]
	expires, _ := time.Parse(time.RFC3339, answer["oldSecretExpiresAt"])
	if code != http.StatusOK || !strings.HasPrefix(s2, "whsec_") || s2 == s1 || time.Until(expires) < 59*time.Minute || time.Until(expires) > time.Hour {
		t.Fatalf("rotate: %d %v, want 200 with a new whsec_ secret and the old one's expiry in 1h", code, answer)
	}
	req := deliver(1)
	if n := v1Signatures(req.header); n != 2 {
		t.Errorf("during the overlap: %d v1 signatures, want 2", n)
	}
	for name, s := range map[string]string{"old": s1, "new": s2} {
		if err := verifyStandardWebhook(s, req.header, req.body, time.Now()); err != nil {
			t.Errorf("during the overlap, the %s secret: %v", name, err)
		}
	}
	if !hmac.Equal([]byte(req.header.Get("X-Platform-Signature")), []byte(webhooks.Sign(s2, req.body))) {
		t.Error("X-Platform-Signature is not by the current secret")
	}

	// Rotate again, the old one (s2) kept for 1s: s1 is dropped at once, s2 after the second.
	rot, err := w.Webhooks().RotateSecret(ctx, e.ID, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s3 := rot.Secret
	testenv.Eventually(t, 10*time.Second, "the old secret expired", func() bool { return time.Now().After(rot.OldSecretExpiresAt) })
	req = deliver(2)
	if n := v1Signatures(req.header); n != 1 || verifyStandardWebhook(s3, req.header, req.body, time.Now()) != nil {
		t.Errorf("after the old secret expired: %q, want one signature, by the new secret", req.header.Get("webhook-signature"))
	}
	for name, s := range map[string]string{"expired": s2, "first": s1} {
		if verifyStandardWebhook(s, req.header, req.body, time.Now()) == nil {
			t.Errorf("after the old secret expired, the %s secret still verifies", name)
		}
	}

	// 0: the old secret is revoked at once.
	code, answer = rotate(`{"expireOldAfter":"0"}`)
	if code != http.StatusOK || answer["secret"] == "" {
		t.Fatalf("rotate with 0: %d %v", code, answer)
	}
	s4 := answer["secret"]
	if req := deliver(3); v1Signatures(req.header) != 1 || verifyStandardWebhook(s4, req.header, req.body, time.Now()) != nil {
		t.Errorf("after a rotation with 0: %q, want one signature, by the new secret", req.header.Get("webhook-signature"))
	}
	// No body: the old secret signs for 24h.
	if code, answer = rotate(""); code != http.StatusOK || answer["secret"] == "" {
		t.Fatalf("rotate without a body: %d %v", code, answer)
	} else if expires, _ := time.Parse(time.RFC3339, answer["oldSecretExpiresAt"]); time.Until(expires) < 23*time.Hour || time.Until(expires) > 24*time.Hour {
		t.Errorf("rotate without a body: the old secret expires at %v, want in 24h", expires)
	}
	secrets := []string{s1, s2, s3, s4, answer["secret"]}

	for body, field := range map[string]string{`{"expireOldAfter":"-1h"}`: "expireOldAfter", `{"expireOldAfter":"soon"}`: "expireOldAfter",
		`{"expireOldAfter":"800h"}`: "expireOldAfter", `{"expireOldAftr":"1h"}`: "expireOldAftr", `{"expireOldAfter":24}`: "expireOldAfter"} {
		if code, answer := rotate(body); code != http.StatusBadRequest || !strings.Contains(answer["error"], field) {
			t.Errorf("rotate %s: %d %v, want 400 naming %s", body, code, answer, field)
		}
	}
	resp, err := http.Post(api.URL+"/v1/webhooks/01NOSUCHENDPOINT0000000000/rotate-secret", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("rotate an unknown endpoint: %d, want 404", resp.StatusCode)
	}
	if _, err := w.Webhooks().RotateSecret(ctx, "01NOSUCHENDPOINT0000000000", time.Hour); !errors.Is(err, platform.ErrNotFound) {
		t.Errorf("RotateSecret of an unknown endpoint: %v, want ErrNotFound", err)
	}

	// Never shown again: not in a list, not in the log.
	all, err := w.Webhooks().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listed, _ := json.Marshal(all)
	resp, err = http.Get(api.URL + "/v1/webhooks")
	if err != nil {
		t.Fatal(err)
	}
	listedHTTP, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, s := range secrets {
		key := strings.TrimPrefix(s, "whsec_")
		for where, text := range map[string]string{"the list": string(listed), "GET /v1/webhooks": string(listedHTTP), "the log": logs.String()} {
			if strings.Contains(text, key) {
				t.Errorf("a secret is in %s", where)
			}
		}
	}
	if !strings.Contains(string(listed), "previousSecretExpiresAt") {
		t.Errorf("the list does not say until when the old secret signs: %s", listed)
	}
}
