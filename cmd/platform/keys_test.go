package main

import (
	"strings"
	"testing"

	"github.com/platform/platform/internal/testenv"
)

// keys create prints a key once; list shows its id and scope, never the secret; revoke
// refuses it; bad input is exit 2 with one line.
func TestKeysCreateListRevoke(t *testing.T) {
	t.Parallel()
	ns := string(testenv.Namespace(t))
	for _, bad := range [][]string{
		{"create", "--role", "history.read"},                                         // no business units
		{"create", "--role", "root", "--business-units", "1"},                        // no such role
		{"create", "--role", "support", "--business-units", "1,x"},                   // not a unit
		{"create", "--role", "support", "--business-units", "1", "--expires", "-3d"}, // not a duration
		{"revoke", "not-an-id"},
		{"revoke", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, // no such key
	} {
		args := append([]string{"keys", bad[0], "--namespace", ns}, bad[1:]...)
		code, out, errOut := cli(t, "", args...)
		if code != 2 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || errOut == "" {
			t.Errorf("keys %v: exit %d, stdout %q, stderr %q; want exit 2 and one line", bad, code, out, errOut)
		}
	}
	code, key, errOut := cli(t, "", "keys", "create", "--namespace", ns, "--role", "history.read", "--business-units", "42,43", "--expires", "90d", "--name", "reporting")
	key = strings.TrimSpace(key)
	if code != 0 || !strings.HasPrefix(key, "plk_") || len(key) != 74 {
		t.Fatalf("keys create: exit %d, %q %s", code, key, errOut)
	}
	id, secret := key[4:30], key[31:]
	code, list, _ := cli(t, "", "keys", "list", "--namespace", ns)
	if code != 0 || !strings.Contains(list, id) || !strings.Contains(list, "42,43") || !strings.Contains(list, "reporting") || strings.Contains(list, secret) {
		t.Fatalf("keys list: exit %d\n%s", code, list)
	}
	if code, out, errOut := cli(t, "", "keys", "revoke", "--namespace", ns, id); code != 0 || !strings.Contains(out, "revoked "+id) {
		t.Fatalf("keys revoke: exit %d %s %s", code, out, errOut)
	}
	if code, list, _ := cli(t, "", "keys", "list", "--namespace", ns, "--json"); code != 0 || !strings.Contains(list, `"revokedAt"`) || strings.Contains(list, secret) {
		t.Fatalf("keys list --json after revoke: exit %d\n%s", code, list)
	}
}

// The API is never served without authentication on an address others can reach: the worker
// refuses to start, exit 2, one line saying what to set. With API keys it starts.
func TestWorkerRefusesAnOpenAPIOnAPublicAddress(t *testing.T) {
	ns := string(testenv.Namespace(t))
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		code, out, errOut := cli(t, "", "worker", "--drain", "--namespace", ns, "--http-addr", addr)
		if code != 2 || out != "" || !strings.Contains(errOut, "not a loopback address") || !strings.Contains(errOut, "PLATFORM_AUTH_ISSUER") ||
			strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("worker --http-addr %s without auth: exit %d, stderr %q; want exit 2 and one line", addr, code, errOut)
		}
	}
	t.Setenv("PLATFORM_AUTH", "keys")
	if code, _, errOut := cli(t, "", "worker", "--drain", "--namespace", ns, "--http-addr", "0.0.0.0:0", "--log-level", "warn"); code != 0 {
		t.Fatalf("worker on 0.0.0.0 with PLATFORM_AUTH=keys: exit %d %s", code, errOut)
	}
	t.Setenv("PLATFORM_AUTH", "oidc")
	if code, _, errOut := cli(t, "", "worker", "--drain", "--namespace", ns); code != 2 || !strings.Contains(errOut, "PLATFORM_AUTH_ISSUER") {
		t.Fatalf("PLATFORM_AUTH=oidc without an issuer: exit %d %s, want 2", code, errOut)
	}
}

// Durations in the configuration take days too, and a bad one is exit 2 naming the variable.
func TestDurationVariablesAreCheckedWithTheirName(t *testing.T) {
	ns := string(testenv.Namespace(t))
	for _, name := range []string{"PLATFORM_WEBHOOK_DISABLE_AFTER", "PLATFORM_OUTBOX_STALE_AFTER"} {
		t.Setenv(name, "soon")
		code, _, errOut := cli(t, "", "worker", "--drain", "--namespace", ns)
		if code != 2 || !strings.Contains(errOut, name) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%s=soon: exit %d %q, want 2 naming it", name, code, errOut)
		}
		t.Setenv(name, "2d")
	}
	if code, _, errOut := cli(t, "", "worker", "--drain", "--namespace", ns, "--log-level", "warn"); code != 0 {
		t.Fatalf("both at 2d: exit %d %s", code, errOut)
	}
}
