package platform_test

import (
	"strings"
	"testing"

	"github.com/platform/platform"
)

// A message key never carries a webhook URL's credentials, is the same for the same job and
// URL (idempotency), differs for URLs that differ only in their secret, and is unchanged for
// every address without one (messages created before keep their keys).
func TestMessageKeyOfAWebhookURLWithASecret(t *testing.T) {
	t.Parallel()
	const job = "notification-job:101:11:1:g:2026-11-22T10:00:00.0000000Z:1"
	key := func(channel, address string) string {
		return platform.MessageKey(job, platform.Recipient{Channel: channel, Address: address})
	}
	for _, c := range []struct{ channel, address, want string }{
		{"email", " Ada@Example.com ", job + "|email|ada@example.com"},
		{"webhook", "https://hooks.example.com/in/42", job + "|webhook|https://hooks.example.com/in/42"},
		{"WEBHOOK", " https://hooks.example.com/in?token=SECRET ", job + "|webhook|https://hooks.example.com/in#h-"},
		{"webhook", "https://user:SECRET@hooks.example.com/in", job + "|webhook|https://hooks.example.com/in#h-"},
		{"webhook", "https://hooks.example.com/in#SECRET", job + "|webhook|https://hooks.example.com/in#h-"},
		{"webhook", "https://hooks.example.com/in?", job + "|webhook|https://hooks.example.com/in#h-"},
		{"webhook", "https://hooks.example.com/in#", job + "|webhook|https://hooks.example.com/in#h-"},
		{"webhook", "https://hooks.example.com/\x7f?token=SECRET", job + "|webhook|#h-"},
	} {
		got := key(c.channel, c.address)
		if !strings.HasPrefix(got, c.want) || strings.Contains(got, "SECRET") || (strings.HasSuffix(c.want, "#h-") && len(got) != len(c.want)+16) {
			t.Errorf("MessageKey(%q, %q) = %q, want %q…", c.channel, c.address, got, c.want)
		}
		if again := key(c.channel, c.address); again != got {
			t.Errorf("MessageKey(%q) is not deterministic: %q then %q", c.address, got, again)
		}
	}
	if a, b := key("webhook", "https://h.example.com/in?token=SECRET-A"), key("webhook", "https://h.example.com/in?token=SECRET-B"); a == b {
		t.Errorf("two URLs differing in their secret share the key %q", a)
	}
}

// A display name is not what a message says: a message rendered again without the name its
// recipient had (recipients from event data no longer carry one) has the same content hash.
func TestMessageContentHashIgnoresTheDisplayName(t *testing.T) {
	t.Parallel()
	m := platform.OutgoingMessage{JobKey: "j", Recipient: platform.Recipient{Channel: "email", Address: "a@example.com", Name: "Byron"}, Subject: "s", Text: "t"}
	n := m
	n.Recipient.Name = ""
	if m.ContentHash() != n.ContentHash() {
		t.Error("the content hash changes with the recipient's display name")
	}
	n.Text = "u"
	if m.ContentHash() == n.ContentHash() {
		t.Error("the content hash does not change with the text")
	}
}
