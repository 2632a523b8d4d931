package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform/internal/testenv"
)

// keylessEnv runs the real binary against a private Azurite in OAuth mode (HTTPS; every
// request needs a bearer token whose issuer, audience and lifetime Azurite checks), with the
// storage account given by its endpoints alone and tokens from a managed identity endpoint as
// Azure Container Apps provides one. No account key is anywhere in the binary's environment.
type keylessEnv struct {
	bin string
	az  *testenv.Azurite
	mi  *testenv.ManagedIdentity
	env []string
}

func newKeylessEnv(t *testing.T) *keylessEnv {
	t.Helper()
	e := &keylessEnv{bin: buildPlatform(t), az: testenv.StartAzurite(t, testenv.AzuriteOptions{OAuth: true}), mi: testenv.StartManagedIdentity(t)}
	certFile, _ := e.az.Cert.Files(t)
	ep := e.az.Endpoints()
	e.env = append(e.mi.Env(),
		"PLATFORM_STORAGE_CONNECTION_STRING=", // whatever the shell says: no key
		"PLATFORM_STORAGE_BLOB_ENDPOINT="+ep.Blob,
		"PLATFORM_STORAGE_QUEUE_ENDPOINT="+ep.Queue,
		"PLATFORM_STORAGE_TABLE_ENDPOINT="+ep.Table,
		"PLATFORM_STORAGE_CREDENTIAL=managed-identity",
		"AZURE_CLIENT_ID="+e.mi.ClientID,
		"SSL_CERT_FILE="+certFile, // Go's own trust store variable: the test's certificate
		"PLATFORM_NAMESPACE="+string(testenv.NewNamespace()),
		"PLATFORM_SETTINGS_DSN="+filepath.Join(t.TempDir(), "settings.db"),
		"PLATFORM_HTTP_ADDR=127.0.0.1:0",
		"PLATFORM_LOG_FORMAT=json",
	)
	return e
}

// run runs the binary with the environment and extra, and returns its exit code and output.
func (e *keylessEnv) run(t *testing.T, stdin string, extra []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = append(append(os.Environ(), e.env...), extra...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("platform %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

func (e *keylessEnv) must(t *testing.T, stdin string, args ...string) (stdout, stderr string) {
	t.Helper()
	code, out, errOut := e.run(t, stdin, nil, args...)
	if code != 0 {
		t.Fatalf("platform %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out, errOut
}

// One history event and one notification, end to end, with Microsoft Entra ID tokens only: the
// publish (and a claim-checked payload's blob), the worker's setup, queues, table writes and
// batches, blob leases and key blobs, the SMTP send, and the history and trace read back.
//
// Not parallel: its private Azurite and seven processes would slow the timing tests that are.
func TestKeylessStorageWithAManagedIdentityEndToEnd(t *testing.T) {
	e := newKeylessEnv(t)
	smtp := testenv.StartPlainSMTP(t)
	e.env = append(e.env, "PLATFORM_SMTP_ADDR="+smtp.Addr)

	e.must(t, "", "seed", "../../scripts/seed_incident_submitted_notification.sql")
	out, _ := e.must(t, "", "publish", "../../examples/incident-submitted.json")
	incident := strings.TrimSpace(out)
	// A payload over a queue message's 64 KiB is claim-checked to a blob.
	big := fmt.Sprintf(`{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"entityGuid":"7c9e6679-7425-40de-944b-e07fc1f90ae7","businessUnitId":42,"createdOn":"2026-11-22T09:00:00Z","payload":{"firstName":"Ada","notes":"%s"}}`,
		strings.Repeat("n", 100_000))
	e.must(t, big, "publish", "-")

	_, workerLog := e.must(t, "", "worker", "--drain")
	if !strings.Contains(workerLog, `"storage":"BlobEndpoint=https://127.0.0.1:`) || !strings.Contains(workerLog, "Credential=managed-identity") {
		t.Errorf("the worker's start line does not describe the keyless account:\n%s", workerLog)
	}
	if strings.Contains(workerLog, "eyJ") {
		t.Errorf("a token is in the worker's log:\n%s", workerLog)
	}

	out, _ = e.must(t, "", "history", "--entity-type", "3", "--entity-guid", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "--json")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("the incident's timeline: %v %s", err, out)
	}
	out, _ = e.must(t, "", "history", "--entity-type", "1", "--entity-guid", "7c9e6679-7425-40de-944b-e07fc1f90ae7", "--json")
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("the attendee's timeline (the incident's related row and the claim-checked create): %v %s", err, out)
	}
	out, _ = e.must(t, "", "trace", incident, "--json")
	if !strings.Contains(out, `"state": "Sent"`) {
		t.Fatalf("trace of the incident: no message Sent:\n%s", out)
	}
	if mails := smtp.Mails(); len(mails) != 1 || mails[0].To[0] != "manager@example.com" {
		t.Fatalf("mails: %+v", mails)
	}
	if n := e.mi.Requests.Load(); n == 0 {
		t.Fatal("no token was asked of the managed identity endpoint")
	}
	t.Logf("managed identity token requests over 7 processes: %d", e.mi.Requests.Load())
}

// Azurite in this mode really checks what it is given: no token, a token for another service,
// an expired token, or an identity the platform does not know are each refused, and the
// command says so in one line (exit 1: a runtime failure, not bad usage).
func TestKeylessStorageRefusesWhatIsNotAValidToken(t *testing.T) {
	e := newKeylessEnv(t)

	// No credential at all: the queue service refuses to list.
	client := e.az.HTTPClient()
	resp, err := client.Get(e.az.Endpoints().Queue + "?comp=list")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a request without a token: %d %s", resp.StatusCode, body)
	}

	event := `{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"entityGuid":"7c9e6679-7425-40de-944b-e07fc1f90ae7","businessUnitId":42,"createdOn":"2026-11-22T09:00:00Z","payload":{}}`
	refused := func(what string, extra []string, want string) {
		t.Helper()
		start := time.Now()
		code, _, errOut := e.run(t, event, extra, "publish", "-")
		t.Logf("%s (%s): %s", what, time.Since(start).Round(time.Millisecond), errOut)
		if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, want) {
			t.Errorf("publish with %s: exit %d, want 1 and one line naming %q:\n%s", what, code, want, errOut)
		}
		if strings.Contains(errOut, "eyJ") {
			t.Errorf("publish with %s printed a token: %s", what, errOut)
		}
	}
	e.mi.MintFor("https://vault.azure.net")
	refused("a token for Key Vault", nil, "AuthenticationFailed")
	e.mi.MintFor("")
	e.mi.MintExpired(true)
	refused("an expired token", nil, "AuthenticationFailed")
	e.mi.MintExpired(false)
	refused("an identity the platform does not know", []string{"AZURE_CLIENT_ID=11111111-2222-3333-4444-555555555555"}, "ManagedIdentityCredential")

	// And the same environment with a good token goes through.
	if code, _, errOut := e.run(t, event, nil, "publish", "-"); code != 0 {
		t.Fatalf("publish with a good token: %d %s", code, errOut)
	}
}
