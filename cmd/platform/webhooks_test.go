package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker/webhooks"
)

func TestWebhooksListRedactsTheURL(t *testing.T) {
	t.Parallel()
	ns := string(testenv.Namespace(t))
	code, out, errOut := cli(t, "", "webhooks", "add", "--namespace", ns, "--url", "https://user:SECRET-PW@8.8.8.8/hook?token=SECRET-TOKEN#SECRET-FRAGMENT",
		"--business-unit", "7", "--event-types", "11")
	if code != 0 {
		t.Fatalf("add: %d %q %q", code, out, errOut)
	}
	for _, args := range [][]string{{"webhooks", "list", "--namespace", ns}, {"webhooks", "list", "--namespace", ns, "--json"}} {
		code, out, errOut := cli(t, "", args...)
		if code != 0 || !strings.Contains(out, "8.8.8.8/hook") || strings.Contains(out, "SECRET") {
			t.Errorf("%v: %d %q %q: want the scheme, host and path, never the credentials", args, code, out, errOut)
		}
	}
}

func TestWebhooksAddRefusesAWeakSecret(t *testing.T) {
	t.Parallel()
	ns := string(testenv.Namespace(t))
	for _, secret := range []string{"s", "s3cret", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"} {
		code, out, errOut := cli(t, "", "webhooks", "add", "--namespace", ns, "--url", "https://8.8.8.8/hook", "--business-unit", "7", "--event-types", "11", "--secret", secret)
		if code != 2 || out != "" || !strings.Contains(errOut, "secret: too weak") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("--secret %q: %d %q %q, want exit 2 with a one-line reason", secret, code, out, errOut)
		}
	}
}

// Not parallel: it sets PLATFORM_WEBHOOK_SECRET for the in-process command.
func TestWebhooksRecipientSecret(t *testing.T) {
	const url = "https://hooks.example.com/in/42"
	t.Setenv("PLATFORM_WEBHOOK_SECRET", "a-master-secret-for-the-test")
	mac := hmac.New(sha256.New, []byte("a-master-secret-for-the-test"))
	mac.Write([]byte("platform recipient secret\x00" + url))
	want := hex.EncodeToString(mac.Sum(nil))
	if code, out, errOut := cli(t, "", "webhooks", "recipient-secret", "--url", url); code != 0 || out != want+"\n" {
		t.Errorf("recipient-secret: %d %q %q, want %s", code, out, errOut, want)
	}
	for _, bad := range []string{"", "ftp://hooks.example.com/in", "hooks.example.com/in", "https:///in", "https://hooks.example.com/\x7f"} {
		code, out, errOut := cli(t, "", "webhooks", "recipient-secret", "--url", bad)
		if code != 2 || out != "" || !strings.Contains(errOut, "--url") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("recipient-secret --url %q: %d %q %q, want exit 2 with a one-line reason", bad, code, out, errOut)
		}
	}
	t.Setenv("PLATFORM_WEBHOOK_SECRET", "")
	if code, out, errOut := cli(t, "", "webhooks", "recipient-secret", "--url", url); code != 2 || out != "" || !strings.Contains(errOut, "PLATFORM_WEBHOOK_SECRET") {
		t.Errorf("recipient-secret without PLATFORM_WEBHOOK_SECRET: %d %q %q, want exit 2 naming it", code, out, errOut)
	}
}

// rotate-secret prints the new secret once, on standard output, and nothing of it anywhere
// else; an unknown id or a bad duration is exit 2 with a one-line reason.
func TestWebhooksRotateSecret(t *testing.T) {
	t.Parallel()
	ns := string(testenv.Namespace(t))
	code, out, errOut := cli(t, "", "webhooks", "add", "--namespace", ns, "--url", "https://8.8.8.8/hook", "--business-unit", "7", "--event-types", "11")
	if code != 0 {
		t.Fatalf("add: %d %q %q", code, out, errOut)
	}
	id := strings.TrimSpace(out)
	for _, args := range [][]string{
		{"webhooks", "rotate-secret", "--namespace", ns, id},
		{"webhooks", "rotate-secret", "--namespace", ns, id, "--expire-old-after", "0"},
		{"webhooks", "rotate-secret", "--namespace", ns, "--expire-old-after", "90m", id},
	} {
		code, out, errOut := cli(t, "", args...)
		secret := strings.TrimSuffix(out, "\n")
		if code != 0 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(secret, "whsec_") || webhooks.CheckSecret(secret) != nil {
			t.Fatalf("%v: %d %q %q, want the new whsec_ secret on one line", args, code, out, errOut)
		}
		code, listed, _ := cli(t, "", "webhooks", "list", "--namespace", ns, "--json")
		if code != 0 || strings.Contains(listed, strings.TrimPrefix(secret, "whsec_")) {
			t.Errorf("list after rotation: %d, shows the secret: %s", code, listed)
		}
	}
	for _, args := range [][]string{
		{"webhooks", "rotate-secret", "--namespace", ns, "01NOSUCHENDPOINT0000000000"},
		{"webhooks", "rotate-secret", "--namespace", ns},
		{"webhooks", "rotate-secret", "--namespace", ns, id, "--expire-old-after", "-1h"},
		{"webhooks", "rotate-secret", "--namespace", ns, id, "--expire-old-after", "soon"},
		{"webhooks", "rotate-secret", "--namespace", ns, id, "extra"},
	} {
		if code, out, errOut := cli(t, "", args...); code != 2 || out != "" || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: %d %q %q, want exit 2 with a one-line reason", args, code, out, errOut)
		}
	}
}
