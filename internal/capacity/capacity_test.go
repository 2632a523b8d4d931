package capacity_test

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform/internal/capacity"
)

// within reports whether got is within frac of want.
func within(got, want, frac float64) bool { return math.Abs(got-want) <= frac*want }

// enough lays mix out on l with enough replicas that CPU does not bind.
func enough(t *testing.T, m capacity.Mix, l capacity.Layout) capacity.Layout {
	t.Helper()
	l, err := capacity.EnoughReplicas(m, l, capacity.Azure())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The bounds worked out by hand from the mixes' requests (history: 2 + 1/32 on its queue,
// 3 + 1/16 in all, 1 change row; notify: 2 + 1/32 on each of 2 queues, 9 + 3/32 in all) and
// Azure's targets; each checked against the closed form exactly and the simulation within 3 %.
func TestBindingLimitMatchesHandComputedCases(t *testing.T) {
	history, notify := capacity.History(), capacity.Notify()
	const queue = 2 + 1.0/32 // requests per event on each queue an event goes through
	cases := []struct {
		name   string
		mix    capacity.Mix
		layout capacity.Layout
		limit  capacity.Limit
		rate   float64
	}{
		{"history, N=1: one queue", history, capacity.Layout{Shards: 1, Accounts: 1}, capacity.LimitQueue, 2000 / queue},
		{"history, N=2: two queues", history, capacity.Layout{Shards: 2, Accounts: 1}, capacity.LimitQueue, 2 * 2000 / queue},
		{"history, N=4: the change partition, one row per event", history, capacity.Layout{Shards: 4, Accounts: 1}, capacity.LimitChanges, 2000},
		{"history, N=32, M=1, bus split: the account", history, capacity.Layout{Shards: 32, Accounts: 1, ChangePartitions: 32}, capacity.LimitAccount, 20000 / (3 + 1.0/16)},
		{"history, N=32, M=2, bus split: account 0, every table and half the queues", history, capacity.Layout{Shards: 32, Accounts: 2, ChangePartitions: 32}, capacity.LimitAccount, 20000 / (1 + 1.0/32 + queue/2)},
		{"history, N=32, M=2, bus split, tables on the shard's account", history, capacity.Layout{Shards: 32, Accounts: 2, ChangePartitions: 32, TablesOnShardAccount: true}, capacity.LimitAccount, 20000 / (0.5 + 1.0/32 + queue/2)},
		{"history, reads counted: 12 reads of each change row", history, capacity.Layout{Shards: 4, Accounts: 1, ChangeReads: 12}, capacity.LimitChanges, 2000.0 / 13},
		{"notify, N=1: one queue", notify, capacity.Layout{Shards: 1, Accounts: 1}, capacity.LimitQueue, 2000 / queue},
		{"notify, N=32, M=1: the change partition", notify, capacity.Layout{Shards: 32, Accounts: 1}, capacity.LimitChanges, 2000},
		{"notify, N=32, M=1, bus split: the account", notify, capacity.Layout{Shards: 32, Accounts: 1, ChangePartitions: 32}, capacity.LimitAccount, 20000 / (9 + 3.0/32)},
		{"notify, N=32, M=2, bus split: account 0, every table and half the queues", notify, capacity.Layout{Shards: 32, Accounts: 2, ChangePartitions: 32}, capacity.LimitAccount, 20000 / (5 + 1.0/32 + queue)},
		{"notify, roles apart, N=32, M=1, bus split: the account", capacity.NotifyRolesApart(), capacity.Layout{Shards: 32, Accounts: 1, ChangePartitions: 32}, capacity.LimitAccount, 20000 / (12 + 1.0/8)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := enough(t, c.mix, c.layout)
			closed, err := capacity.Closed(c.mix, l, capacity.Azure())
			if err != nil {
				t.Fatal(err)
			}
			if closed.Limit != c.limit || !within(closed.Rate, c.rate, 1e-9) {
				t.Errorf("closed form: %.1f events/s, %s binds; want %.1f, %s", closed.Rate, closed.Limit, c.rate, c.limit)
			}
			sim, err := capacity.Simulate(c.mix, l, capacity.Azure(), capacity.Sim{Offered: 2 * c.rate, Duration: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if sim.Binding != c.limit || !within(sim.Throughput, c.rate, 0.03) {
				t.Errorf("simulation: %.1f events/s, %s binds (%s); want %.1f, %s", sim.Throughput, sim.Binding, sim.Where, c.rate, c.limit)
			}
		})
	}
}

func TestTooFewReplicasBindOnTheirCPU(t *testing.T) {
	l := capacity.Layout{Shards: 4, Accounts: 1, ChangePartitions: 4, Replicas: map[string]int{capacity.RoleEvents: 2}}
	want := 2 * capacity.PerReplica(capacity.History(), l, capacity.RoleEvents) // 2 × 0.5 / 1.8 ms
	for _, got := range []func() (float64, capacity.Limit, error){
		func() (float64, capacity.Limit, error) {
			b, err := capacity.Closed(capacity.History(), l, capacity.Azure())
			return b.Rate, b.Limit, err
		},
		func() (float64, capacity.Limit, error) {
			r, err := capacity.Simulate(capacity.History(), l, capacity.Azure(), capacity.Sim{Offered: 2000, Duration: 5 * time.Second})
			return r.Throughput, r.Binding, err
		},
	} {
		rate, limit, err := got()
		if err != nil {
			t.Fatal(err)
		}
		if limit != capacity.LimitCPU(capacity.RoleEvents) || !within(rate, want, 0.03) {
			t.Errorf("%.1f events/s, %s binds; want %.1f, %s", rate, limit, want, capacity.LimitCPU(capacity.RoleEvents))
		}
	}
}

// Throughput grows with N while queues bind (each doubling of N about doubles it), never falls,
// and stops at the account's bound; a second account raises that bound.
func TestThroughputScalesWithShardsUntilTheAccountBinds(t *testing.T) {
	mix := capacity.History()
	accountBound := map[int]float64{}
	for _, m := range []int{1, 2} {
		var prev capacity.Result
		for _, n := range []int{1, 2, 4, 8, 16, 32} {
			l := enough(t, mix, capacity.Layout{Shards: n, Accounts: m, ChangePartitions: n})
			r, err := capacity.Simulate(mix, l, capacity.Azure(), capacity.Sim{Offered: 30_000, Duration: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case n > 1 && r.Throughput < prev.Throughput*0.999:
				t.Errorf("M=%d: N=%d sustains %.0f events/s, less than N=%d's %.0f", m, n, r.Throughput, n/2, prev.Throughput)
			case n > 1 && prev.Binding == capacity.LimitQueue && r.Binding == capacity.LimitQueue && r.Throughput < 1.9*prev.Throughput:
				t.Errorf("M=%d: N=%d sustains %.0f events/s with queues binding: want about twice N=%d's %.0f", m, n, r.Throughput, n/2, prev.Throughput)
			case n > 1 && prev.Binding == capacity.LimitAccount && r.Binding != capacity.LimitAccount:
				t.Errorf("M=%d: N=%d: %s binds after the account did at N=%d", m, n, r.Binding, n/2)
			}
			if r.Binding == capacity.LimitAccount {
				accountBound[m] = r.Throughput
			}
			prev = r
		}
		if prev.Binding != capacity.LimitAccount {
			t.Errorf("M=%d: N=32: %s binds, want the account", m, prev.Binding)
		}
	}
	if accountBound[2] < 1.4*accountBound[1] {
		t.Errorf("a second account: %.0f events/s, want well above one account's %.0f", accountBound[2], accountBound[1])
	}
}

func TestBelowCapacityEveryEventOfferedIsServed(t *testing.T) {
	mix := capacity.Notify()
	l := enough(t, mix, capacity.Layout{Shards: 4, Accounts: 1})
	closed, err := capacity.Closed(mix, l, capacity.Azure())
	if err != nil {
		t.Fatal(err)
	}
	offered := 0.8 * closed.Rate
	r, err := capacity.Simulate(mix, l, capacity.Azure(), capacity.Sim{Offered: offered, Duration: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Binding != capacity.LimitNone || !within(r.Throughput, offered, 0.01) || r.Backlog > offered*0.05 {
		t.Errorf("offered %.0f events/s, 80 %% of the bound: served %.0f, %s binds, %.0f left waiting; want all served", offered, r.Throughput, r.Binding, r.Backlog)
	}
}

// An entity's events stay on its shard: events of one entity get one queue's rate whatever N,
// which the closed form (events spread evenly) does not see and the simulation must.
func TestOneEntityGetsOneQueue(t *testing.T) {
	mix := capacity.History()
	l := enough(t, mix, capacity.Layout{Shards: 8, Accounts: 1, ChangePartitions: 8})
	r, err := capacity.Simulate(mix, l, capacity.Azure(), capacity.Sim{Offered: 10_000, Duration: 5 * time.Second, Entities: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := 2000 / (2 + 1.0/32); r.Binding != capacity.LimitQueue || !within(r.Throughput, want, 0.01) {
		t.Errorf("one entity on 8 shards: %.0f events/s, %s binds; want one queue's %.0f", r.Throughput, r.Binding, want)
	}
}

func TestBadLayoutsAreRefusedNamingTheField(t *testing.T) {
	for _, c := range []struct {
		layout capacity.Layout
		field  string
	}{
		{capacity.Layout{Shards: 0, Accounts: 1, Replicas: map[string]int{capacity.RoleEvents: 1}}, "Shards"},
		{capacity.Layout{Shards: 65, Accounts: 1, Replicas: map[string]int{capacity.RoleEvents: 1}}, "Shards"},
		{capacity.Layout{Shards: 1, Accounts: 0, Replicas: map[string]int{capacity.RoleEvents: 1}}, "Accounts"},
		{capacity.Layout{Shards: 1, Accounts: 1}, `Replicas["events"]`},
	} {
		if _, err := capacity.Closed(capacity.History(), c.layout, capacity.Azure()); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: error %v, want one naming %s", c.layout, err, c.field)
		}
	}
}

// The table README "Capacity" shows: `make capacity` prints it. Each cell's simulation must
// agree with the closed form, and the README must show what the model gives.
func TestCapacityTable(t *testing.T) {
	scenarios := []capacity.Scenario{
		{Title: "history", Mix: capacity.History()},
		{Title: "history, bus split N ways", Mix: capacity.History(), ChangePerShard: true},
		{Title: "notify, bus split N ways", Mix: capacity.Notify(), ChangePerShard: true},
		{Title: "notify, roles apart, bus split N ways", Mix: capacity.NotifyRolesApart(), ChangePerShard: true},
	}
	shards, accounts := []int{1, 2, 4, 8, 16, 32}, []int{1, 2}
	cells, err := capacity.Run(scenarios, shards, accounts, capacity.Azure(), capacity.Sim{Offered: 20_000, Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for k := range cells {
		for _, c := range cells[k] {
			if c.Sim.Binding != c.Closed.Limit || !within(c.Sim.Throughput, c.Closed.Rate, 0.03) {
				t.Errorf("%s, N=%d, M=%d: simulated %.0f events/s, %s binds; closed form %.0f, %s", scenarios[k].Title,
					c.Layout.Shards, c.Layout.Accounts, c.Sim.Throughput, c.Sim.Binding, c.Closed.Rate, c.Closed.Limit)
			}
		}
	}
	var table bytes.Buffer
	if err := capacity.WriteTable(&table, scenarios, shards, accounts, cells); err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		os.Stdout.Write(table.Bytes())
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, table.Bytes()) {
		t.Errorf("README.md's Capacity table is not the model's: paste this (make capacity prints it)\n%s", table.String())
	}
}
