package capacity

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// Scenario is a column pair of the capacity table: a mix on layouts of every N and M.
type Scenario struct {
	// Title heads the column, e.g. "history".
	Title string
	Mix   Mix
	// ChangePerShard splits the change bus into as many partitions as queue shards; false:
	// one partition, as today.
	ChangePerShard bool
}

// Cell is one scenario on one layout: the simulation's result and the closed form's.
type Cell struct {
	Layout Layout // with enough replicas
	Sim    Result
	Closed Bound
}

// Run simulates each scenario on every shards × accounts, with enough replicas, offering sim's
// load: cells[scenario][i*len(accounts)+j] is shards[i], accounts[j].
func Run(scenarios []Scenario, shards, accounts []int, t Targets, sim Sim) ([][]Cell, error) {
	cells := make([][]Cell, len(scenarios))
	for k, sc := range scenarios {
		for _, n := range shards {
			for _, m := range accounts {
				l := Layout{Shards: n, Accounts: m}
				if sc.ChangePerShard {
					l.ChangePartitions = n
				}
				l, err := EnoughReplicas(sc.Mix, l, t)
				if err != nil {
					return nil, err
				}
				closed, err := Closed(sc.Mix, l, t)
				if err != nil {
					return nil, err
				}
				res, err := Simulate(sc.Mix, l, t, sim)
				if err != nil {
					return nil, err
				}
				cells[k] = append(cells[k], Cell{Layout: l, Sim: res, Closed: closed})
			}
		}
	}
	return cells, nil
}

// WriteTable writes Run's cells as a Markdown table: a row per N, a column per scenario and M,
// each cell the simulated throughput (events/s, to three significant digits) and the limit that binds.
func WriteTable(w io.Writer, scenarios []Scenario, shards, accounts []int, cells [][]Cell) error {
	var b strings.Builder
	b.WriteString("| N |")
	for _, sc := range scenarios {
		for _, m := range accounts {
			fmt.Fprintf(&b, " %s, M=%d |", sc.Title, m)
		}
	}
	b.WriteString("\n|---|")
	b.WriteString(strings.Repeat("---|", len(scenarios)*len(accounts)))
	b.WriteString("\n")
	for i, n := range shards {
		fmt.Fprintf(&b, "| %d |", n)
		for k := range scenarios {
			for j := range accounts {
				c := cells[k][i*len(accounts)+j]
				fmt.Fprintf(&b, " %s %s |", thousands(c.Sim.Throughput), c.Sim.Binding)
			}
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// thousands is v to three significant digits, with thousands separated by commas.
func thousands(v float64) string {
	unit := 1.0
	for v/unit >= 1000 {
		unit *= 10
	}
	s := fmt.Sprint(int64(math.Round(v/unit) * unit))
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
