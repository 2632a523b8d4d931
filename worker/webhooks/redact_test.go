package webhooks_test

import (
	"testing"

	"github.com/platform/platform/worker/webhooks"
)

func TestRedactURLKeepsSchemeHostAndPath(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://hooks.example.com/in/42":                "https://hooks.example.com/in/42",
		"https://hooks.example.com:8443/in?token=s3cr3t": "https://hooks.example.com:8443/in?redacted",
		"https://user:pw@hooks.example.com/in#k=v":       "https://redacted@hooks.example.com/in#redacted",
		"https://hooks.example.com/in?":                  "https://hooks.example.com/in?redacted",
		"http://[2606:4700::1111]/a%2Fb?x=1":             "http://[2606:4700::1111]/a%2Fb?redacted",
		"https://hooks.example.com/in?token=a%zz":        "https://hooks.example.com/in?redacted",
		"mailto:ops@example.com?subject=token":           "(a malformed URL, not shown)",
		"https://hooks.example.com/\x7f?token=s3cr3t":    "(a malformed URL, not shown)",
	} {
		if got := webhooks.RedactURL(raw); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}
