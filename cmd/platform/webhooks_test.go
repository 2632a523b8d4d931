package main

import (
	"strings"
	"testing"

	"github.com/platform/platform/internal/testenv"
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
