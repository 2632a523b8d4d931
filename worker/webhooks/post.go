package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/delivery"
)

// Post POSTs body as JSON to target as delivery id, signed with secrets (SignRequest: the
// current one first), through client, and sorts the answer (classify).
func Post(ctx context.Context, client *http.Client, target, id string, secrets []string, body []byte, headers map[string]string) (string, error) {
	_, providerID, err := post(ctx, client, target, id, secrets, body, headers)
	return providerID, err
}

// post is Post, and the receiver's status code (0: no answer).
func post(ctx context.Context, client *http.Client, target, id string, secrets []string, body []byte, headers map[string]string) (status int, providerID string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, "", platform.Permanent(fmt.Errorf("webhook %s: %v", RedactURL(target), redactError(err)))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "platform-webhooks")
	SignRequest(req, id, secrets, body)
	// The receiver may continue the trace (W3C traceparent; nothing when tracing is off). It is
	// not signed, as no header is: the signatures cover the id, the timestamp and the body.
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		err = redactError(err) // net/http's error names the URL, credentials and all
		if errors.Is(err, ErrForbiddenTarget) {
			return 0, "", platform.Permanent(err)
		}
		return 0, "", fmt.Errorf("webhook POST: %w", err)
	}
	defer resp.Body.Close()
	// Read (a little of) the body, so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	providerID, err = classify(resp)
	return resp.StatusCode, providerID, err
}

// classify sorts a receiver's answer: 2xx sent (the provider id is "http {code}"); 408, 429
// and 5xx worth a retry, a 429 or 503 with the wait its Retry-After asks for
// (delivery.RetryAfter); any other answer refused for good.
func classify(resp *http.Response) (string, error) {
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return fmt.Sprintf("http %d", code), nil
	case code == http.StatusTooManyRequests, code == http.StatusServiceUnavailable:
		err := fmt.Errorf("webhook answered %d", code)
		if wait, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return "", delivery.RetryAfter(fmt.Errorf("%w (Retry-After %s)", err, wait.Round(time.Second)), wait)
		}
		return "", err
	case code == http.StatusRequestTimeout, code >= 500:
		return "", fmt.Errorf("webhook answered %d", code)
	default:
		return "", platform.Permanent(fmt.Errorf("webhook answered %d", code))
	}
}

// retryAfter reads a Retry-After value (RFC 9110: seconds, or an HTTP date) as a wait from now;
// ok is false when there is none or it is malformed. A date in the past is no wait; a wait
// over a week is a week (the caller bounds it further).
func retryAfter(v string, now time.Time) (wait time.Duration, ok bool) {
	const week = 7 * 24 * time.Hour
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		return time.Duration(min(n, uint64(week/time.Second))) * time.Second, true // ErrRange: n is the largest uint64
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(at.Sub(now), 0), week), true
}
