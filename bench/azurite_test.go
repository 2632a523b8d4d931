//go:build bench

package bench

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
)

// azurite is a private Azurite (testenv.StartAzurite: the pinned one, in memory, on free
// ports, its extent garbage collectors put off — their multi-second stalls would be noise in
// every figure). Each measured phase (the worker's, the floor's) gets a fresh one: Azurite gets
// slower as it holds more data, so a phase that ran after another on the same instance would
// pay for what the first left behind, and the ratio of the two would measure the order they
// ran in.
type azurite struct {
	*testenv.Azurite
	acct storage.Account
}

func startAzurite(t *testing.T) *azurite {
	var opts testenv.AzuriteOptions
	if *flagAzuriteProfile != "" {
		dir, err := filepath.Abs(*flagAzuriteProfile)
		if err != nil {
			t.Fatal(err)
		}
		opts.NodeArgs = []string{"--cpu-prof", "--cpu-prof-dir=" + dir, "--cpu-prof-name=" + strings.ReplaceAll(t.Name(), "/", "-") + ".cpuprofile"}
	}
	a := testenv.StartAzurite(t, opts)
	return &azurite{Azurite: a, acct: storage.Account{ConnectionString: a.ConnectionString()}}
}

func (a *azurite) pid() int { return a.PID() }

// counted is the account with every request counted by c.
func (a *azurite) counted(c *storage.Counter) storage.Account {
	acct := a.acct
	acct.Counter = c
	return acct
}
