package testenv

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/platform/platform/internal/storage"
)

// AzuriteOptions say how to start a private Azurite.
type AzuriteOptions struct {
	// OAuth starts it as `--oauth basic` over HTTPS, with a certificate made for it: every
	// request must then carry a bearer token whose issuer, audience and lifetime Azurite
	// checks (it does not check the signature), or the account's key.
	OAuth bool
	// NodeArgs are node's own flags (a CPU profile).
	NodeArgs []string
}

// Azurite is a private Azurite, in memory, on free ports of 127.0.0.1, stopped when the test
// ends. It is the pinned one that make azurite/install installs, started as azurite/up starts
// it (azurite/launch.js: its extent collectors put off).
type Azurite struct {
	// Ports of the blob, queue and table services.
	Ports [3]string
	// Cert is the HTTPS certificate with OAuth (nil without): trust its CertFile, or ClientTLS.
	Cert *Cert
	cmd  *exec.Cmd
}

// StartAzurite starts a private Azurite for t. It fails t when Azurite is not installed.
func StartAzurite(t testing.TB, o AzuriteOptions) *Azurite {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(here), "..", "..", "azurite", "launch.js")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: %v (make azurite/install installs it)", bin, err)
	}
	a := &Azurite{}
	for i := range a.Ports {
		_, a.Ports[i], _ = net.SplitHostPort(FreeAddr(t))
	}
	dir := t.TempDir()
	log, err := os.Create(filepath.Join(dir, "azurite.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	args := append(append([]string{}, o.NodeArgs...), bin, "--silent", "--skipApiVersionCheck", "--inMemoryPersistence", "--disableProductStyleUrl", "--disableTelemetry",
		"--blobHost", "127.0.0.1", "--blobPort", a.Ports[0],
		"--queueHost", "127.0.0.1", "--queuePort", a.Ports[1],
		"--tableHost", "127.0.0.1", "--tablePort", a.Ports[2])
	scheme := "http"
	if o.OAuth {
		a.Cert = NewCert(t)
		certFile, keyFile := a.Cert.Files(t)
		args = append(args, "--oauth", "basic", "--cert", certFile, "--key", keyFile)
		scheme = "https"
	}
	a.cmd = exec.Command("node", args...)
	a.cmd.Dir, a.cmd.Stdout, a.cmd.Stderr = dir, log, log
	// Killed with the test binary, whatever ends it (a -timeout panic runs no cleanup).
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = a.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM) // Azurite stops gracefully (and node writes a profile)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = a.cmd.Process.Kill()
			<-exited
		}
	})
	client := &http.Client{Timeout: 5 * time.Second}
	if a.Cert != nil {
		client.Transport = &http.Transport{TLSClientConfig: a.Cert.ClientTLS()}
	}
	for _, port := range a.Ports {
		Eventually(t, time.Minute, "a private Azurite answering on "+port, func() bool {
			select {
			case <-exited:
				b, _ := os.ReadFile(log.Name())
				t.Fatalf("Azurite exited while starting (%v): %s", exitErr, b)
			default:
			}
			resp, err := client.Get(scheme + "://127.0.0.1:" + port + "/")
			if err != nil {
				return false
			}
			resp.Body.Close()
			if !strings.HasPrefix(resp.Header.Get("Server"), "Azurite") {
				t.Fatalf("port %s answers, but not as Azurite (Server %q): another process took it", port, resp.Header.Get("Server"))
			}
			return true
		})
	}
	return a
}

// PID is Azurite's process id.
func (a *Azurite) PID() int { return a.cmd.Process.Pid }

// ConnectionString is the development account on this Azurite's ports (over HTTPS with OAuth:
// the account key still works there, as it does on Azure unless shared keys are turned off).
func (a *Azurite) ConnectionString() string {
	cs := strings.NewReplacer("127.0.0.1:10000/", "127.0.0.1:"+a.Ports[0]+"/", "127.0.0.1:10001/", "127.0.0.1:"+a.Ports[1]+"/",
		"127.0.0.1:10002/", "127.0.0.1:"+a.Ports[2]+"/").Replace(storage.DevelopmentConnectionString)
	if a.Cert != nil {
		cs = strings.ReplaceAll(cs, "http://", "https://")
	}
	return cs
}

// Endpoints are the development account's service URLs on this Azurite.
func (a *Azurite) Endpoints() storage.Endpoints {
	scheme := "http"
	if a.Cert != nil {
		scheme = "https"
	}
	url := func(port string) string { return scheme + "://127.0.0.1:" + port + "/devstoreaccount1" }
	return storage.Endpoints{Blob: url(a.Ports[0]), Queue: url(a.Ports[1]), Table: url(a.Ports[2])}
}

// HTTPClient trusts this Azurite's certificate.
func (a *Azurite) HTTPClient() *http.Client {
	tr := &http.Transport{}
	if a.Cert != nil {
		tr.TLSClientConfig = a.Cert.ClientTLS()
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
