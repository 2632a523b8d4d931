package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/platform/platform"
)

// Post POSTs body as JSON to target, signed with secret (signRequest), through client, and
// sorts the answer (classify).
func Post(ctx context.Context, client *http.Client, target, secret string, body []byte, headers map[string]string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return "", platform.Permanent(fmt.Errorf("webhook %s: %v", RedactURL(target), redactError(err)))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "platform-webhooks")
	signRequest(req, secret, body)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		err = redactError(err) // net/http's error names the URL, credentials and all
		if errors.Is(err, ErrForbiddenTarget) {
			return "", platform.Permanent(err)
		}
		return "", fmt.Errorf("webhook POST: %w", err)
	}
	defer resp.Body.Close()
	// Read (a little of) the body, so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return classify(resp)
}

// classify sorts a receiver's answer: 2xx sent (the provider id is "http {code}"); 408, 429
// and 5xx worth a retry; any other answer refused for good.
func classify(resp *http.Response) (string, error) {
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return fmt.Sprintf("http %d", code), nil
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return "", fmt.Errorf("webhook answered %d", code)
	default:
		return "", platform.Permanent(fmt.Errorf("webhook answered %d", code))
	}
}
