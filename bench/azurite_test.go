//go:build bench

package bench

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
)

// azuriteBin starts the pinned Azurite that make azurite/install (and azurite/up) installs,
// as azurite/up does: with its extent garbage collectors put off (azurite/launch.js says why;
// their multi-second stalls would be noise in every figure).
const azuriteBin = "../azurite/launch.js"

// azurite is a private Azurite, in memory, on free ports. Each measured phase (the worker's,
// the floor's) gets a fresh one: Azurite gets slower as it holds more data, so a phase that
// ran after another on the same instance would pay for what the first left behind, and the
// ratio of the two would measure the order they ran in.
type azurite struct {
	cmd  *exec.Cmd
	acct storage.Account
}

func startAzurite(t *testing.T) *azurite {
	bin, err := filepath.Abs(azuriteBin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: %v (make azurite/install installs it)", bin, err)
	}
	var ports [3]string
	for i := range ports {
		_, ports[i], _ = net.SplitHostPort(testenv.FreeAddr(t))
	}
	dir := t.TempDir()
	log, err := os.Create(filepath.Join(dir, "azurite.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	// Run with node, so that node's own flags can be given.
	var nodeArgs []string
	if *flagAzuriteProfile != "" {
		dir, err := filepath.Abs(*flagAzuriteProfile)
		if err != nil {
			t.Fatal(err)
		}
		nodeArgs = append(nodeArgs, "--cpu-prof", "--cpu-prof-dir="+dir, "--cpu-prof-name="+strings.ReplaceAll(t.Name(), "/", "-")+".cpuprofile")
	}
	cmd := exec.Command("node", append(nodeArgs, bin, "--silent", "--skipApiVersionCheck", "--inMemoryPersistence", "--disableProductStyleUrl", "--disableTelemetry",
		"--blobHost", "127.0.0.1", "--blobPort", ports[0],
		"--queueHost", "127.0.0.1", "--queuePort", ports[1],
		"--tableHost", "127.0.0.1", "--tablePort", ports[2])...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // Azurite stops gracefully (and node writes a profile)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	for _, port := range ports {
		testenv.Eventually(t, time.Minute, "the bench's Azurite answering on "+port, func() bool {
			select {
			case <-exited:
				b, _ := os.ReadFile(log.Name())
				t.Fatalf("Azurite exited while starting (%v): %s", exitErr, b)
			default:
			}
			resp, err := http.Get("http://127.0.0.1:" + port + "/")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return true
		})
	}
	// The development account, on these ports.
	conn := strings.NewReplacer("127.0.0.1:10000/", "127.0.0.1:"+ports[0]+"/", "127.0.0.1:10001/", "127.0.0.1:"+ports[1]+"/",
		"127.0.0.1:10002/", "127.0.0.1:"+ports[2]+"/").Replace(storage.DevelopmentConnectionString)
	return &azurite{cmd: cmd, acct: storage.Account{ConnectionString: conn}}
}

func (a *azurite) pid() int { return a.cmd.Process.Pid }

// counted is the account with every request counted by c.
func (a *azurite) counted(c *storage.Counter) storage.Account {
	acct := a.acct
	acct.Counter = c
	return acct
}
