// Package capacity models the platform's sustained throughput on Azure Storage: what an event
// costs (its storage requests, the change-bus rows it writes, the worker CPU each role spends on
// it), where those requests land (N queue shards, M storage accounts, one change-bus partition),
// and Azure's published scalability targets. Bounds gives the closed form, the rate at which each
// limit is reached; Simulate steps time, offers load and serves a backlog subject to every limit
// at once, and says which one binds.
//
// It does no I/O and imports no storage SDK: its inputs are the bench's measured figures (mix.go)
// and Microsoft's published targets (Azure), both meant to be updated by hand when they change.
package capacity

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
)

// Targets are the storage service's scalability targets: rates it promises to reach, past which
// it answers 503 Server Busy.
type Targets struct {
	// QueueRequests is the target of one queue, in requests per second: every put, get (of up to
	// 32 messages) and delete counts one.
	QueueRequests float64
	// AccountRequests is the target of one storage account, in requests per second, every
	// service together.
	AccountRequests float64
	// PartitionEntities is the target of one table partition, in entities per second: a batch
	// (entity group transaction) counts each entity it writes.
	PartitionEntities float64
}

// Azure returns the targets Microsoft publishes for a standard general-purpose v2 account, with
// 1 KiB messages and entities (the platform's are smaller):
//
//   - "Scalability and performance targets for Queue Storage"
//     (learn.microsoft.com/azure/storage/queues/scalability-targets): target throughput for a
//     single queue up to 2,000 messages per second; maximum request rate per storage account
//     20,000 messages per second.
//   - "Scalability and performance targets for Table storage"
//     (learn.microsoft.com/azure/storage/tables/scalability-targets): target throughput for a
//     single table partition up to 2,000 entities per second; maximum request rate per storage
//     account 20,000 transactions per second.
//   - "Scalability and performance targets for standard storage accounts"
//     (learn.microsoft.com/azure/storage/common/scalability-targets-standard-account): default
//     maximum request rate per GPv2 account 20,000 requests per second, but 40,000 in the
//     regions that page lists (among them East US, East US 2, West Europe, North Europe, UK
//     South); in those, AccountRequests may be set to 40,000. Premium accounts and raised
//     limits (by a support request) differ.
//
// The Queue page words the account's 20,000 as messages per second where the account page
// says requests: the model reads a queue's "messages" as requests too (a put, a get of up to 32,
// a delete each count one), the conservative reading; counting only messages put would double
// a queue's bound.
func Azure() Targets {
	return Targets{QueueRequests: 2_000, AccountRequests: 20_000, PartitionEntities: 2_000}
}

// Op is one kind of storage request an event costs.
type Op struct {
	// Name says what the request is, e.g. "history row".
	Name string
	// PerEvent is how many such requests one event costs: 1 for an enqueue, 1/32 for its share
	// of a dequeue of 32.
	PerEvent float64
	// Queue is the work queue (its logical name) the request goes to; an event's requests go to
	// its shard of it. Empty for a table request.
	Queue string
	// ChangeEntities is how many change-bus rows one such request writes (a group commit of 32
	// changes writes 32); zero for every other request. The change bus is the Changes table, one
	// partition per minute for every replica (tables/changes.go), on account 0.
	ChangeEntities float64
}

// Mix is what one event costs: its storage requests and the worker CPU each role spends on it.
type Mix struct {
	// Name names the scenario, e.g. "history".
	Name string
	// Ops are the requests one event costs, the publish included.
	Ops []Op
	// CPU is the worker CPU one event costs each role that handles it, in seconds.
	CPU map[string]float64
}

// Requests is how many storage requests one event costs.
func (m Mix) Requests() float64 {
	var n float64
	for _, op := range m.Ops {
		n += op.PerEvent
	}
	return n
}

// ChangeRows is how many change-bus rows one event writes.
func (m Mix) ChangeRows() float64 {
	var n float64
	for _, op := range m.Ops {
		n += op.PerEvent * op.ChangeEntities
	}
	return n
}

// Layout is a deployment: its queue shards, storage accounts and replicas.
type Layout struct {
	// Shards is N: each work queue is N queues ({name}-0 … {name}-{N-1}), an event on one of
	// them by a hash of its entity, and every request for that event on the same shard of each
	// queue. Shard i lives on account i mod Accounts. 1 to 64.
	Shards int
	// Accounts is M, the storage accounts. At least 1.
	Accounts int
	// TablesOnShardAccount puts an event's table rows (all but the change bus) on the account of
	// its shard. False: every table is on account 0, and only queues spread.
	TablesOnShardAccount bool
	// ChangePartitions is how many change-bus partitions take writes at once: 1 today (the
	// partition of the current minute). More models a bus split N ways, rows spread evenly.
	// Default 1.
	ChangePartitions int
	// ChangeReads is how many times the change bus's rows are read back, in all (every replica's
	// poll, times each row's rereads), counted against the partition's target like writes.
	// Zero: reads are not counted.
	ChangeReads float64
	// Replicas is how many replicas each role runs.
	Replicas map[string]int
	// ReplicaCPU is the CPU one replica can spend, in cores. Default 0.5 (the Container Apps
	// replicas of deploy/azure).
	ReplicaCPU float64
}

func (l Layout) withDefaults() Layout {
	l.ChangePartitions = cmp.Or(l.ChangePartitions, 1)
	l.ReplicaCPU = cmp.Or(l.ReplicaCPU, 0.5)
	return l
}

func (l Layout) validate(m Mix) error {
	switch {
	case l.Shards < 1 || l.Shards > 64:
		return fmt.Errorf("layout: Shards %d: want 1 to 64", l.Shards)
	case l.Accounts < 1:
		return fmt.Errorf("layout: Accounts %d: want at least 1", l.Accounts)
	case l.ChangePartitions < 1:
		return fmt.Errorf("layout: ChangePartitions %d: want at least 1", l.ChangePartitions)
	case l.ChangeReads < 0:
		return fmt.Errorf("layout: ChangeReads %g: want 0 or more", l.ChangeReads)
	case l.ReplicaCPU <= 0:
		return fmt.Errorf("layout: ReplicaCPU %g: want more than 0", l.ReplicaCPU)
	}
	for _, role := range slices.Sorted(maps.Keys(m.CPU)) {
		if m.CPU[role] > 0 && l.Replicas[role] < 1 {
			return fmt.Errorf("layout: Replicas[%q] %d: mix %s costs that role CPU", role, l.Replicas[role], m.Name)
		}
	}
	for _, op := range m.Ops {
		if op.PerEvent < 0 || op.ChangeEntities < 0 {
			return fmt.Errorf("mix %s: op %q: negative cost", m.Name, op.Name)
		}
	}
	return nil
}

// Limit names a kind of limit.
type Limit string

// The limits an event's work is subject to.
const (
	LimitQueue   Limit = "queue"            // Targets.QueueRequests, per queue shard
	LimitAccount Limit = "account"          // Targets.AccountRequests, per storage account
	LimitChanges Limit = "change partition" // Targets.PartitionEntities, the change bus's partition
	// LimitNone: nothing binds, every event offered is served.
	LimitNone Limit = "offered load"
)

// LimitCPU is the limit of role's replicas' CPU.
func LimitCPU(role string) Limit { return Limit("CPU of " + role) }

// resource is one thing with a capacity that events use: a queue shard, an account, the change
// partition, a role's replicas.
type resource struct {
	limit    Limit
	name     string    // "entity-events-3", "account 1"
	capacity float64   // per second, in the unit of load
	load     []float64 // what one event of each shard costs it
}

// resources lays mix out on l: every resource and what an event of each shard costs it.
func resources(m Mix, l Layout, t Targets) []resource {
	n := l.Shards
	var out []resource
	queues := map[string]bool{}
	for _, op := range m.Ops {
		if op.Queue != "" && op.PerEvent > 0 {
			queues[op.Queue] = true
		}
	}
	for _, q := range slices.Sorted(maps.Keys(queues)) {
		for s := range n {
			r := resource{limit: LimitQueue, name: fmt.Sprintf("%s-%d", q, s), capacity: t.QueueRequests, load: make([]float64, n)}
			for _, op := range m.Ops {
				if op.Queue == q {
					r.load[s] += op.PerEvent
				}
			}
			out = append(out, r)
		}
	}
	for a := range l.Accounts {
		r := resource{limit: LimitAccount, name: fmt.Sprintf("account %d", a), capacity: t.AccountRequests, load: make([]float64, n)}
		for s := range n {
			for _, op := range m.Ops {
				var on int // the account the request goes to
				switch {
				case op.Queue != "":
					on = s % l.Accounts
				case op.ChangeEntities > 0:
					on = 0
				case l.TablesOnShardAccount:
					on = s % l.Accounts
				}
				if on == a {
					r.load[s] += op.PerEvent
				}
			}
		}
		out = append(out, r)
	}
	if rows := m.ChangeRows(); rows > 0 {
		// Spread evenly over the partitions: their sum is one resource.
		out = append(out, resource{limit: LimitChanges, name: "change partition",
			capacity: t.PartitionEntities * float64(l.ChangePartitions),
			load:     fill(n, rows*(1+l.ChangeReads))})
	}
	for _, role := range slices.Sorted(maps.Keys(m.CPU)) {
		if m.CPU[role] > 0 {
			out = append(out, resource{limit: LimitCPU(role), name: role + " replicas",
				capacity: float64(l.Replicas[role]) * l.ReplicaCPU, load: fill(n, m.CPU[role])})
		}
	}
	return out
}

func fill(n int, v float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// Bound is the rate, in events per second, at which one limit is reached.
type Bound struct {
	Limit Limit
	// Where is the first resource of that kind to reach it, e.g. "entity-events-0", "account 0".
	Where string
	Rate  float64
}

// Bounds is the closed form: for each kind of limit, the event rate at which its most loaded
// resource reaches its target, events spread evenly over the shards; least first. A limit that
// no event uses is absent.
func Bounds(m Mix, l Layout, t Targets) ([]Bound, error) {
	l = l.withDefaults()
	if err := l.validate(m); err != nil {
		return nil, err
	}
	best := map[Limit]Bound{}
	for _, r := range resources(m, l, t) {
		var perEvent float64 // the resource's load per event, averaged over the shards
		for _, v := range r.load {
			perEvent += v / float64(l.Shards)
		}
		if perEvent == 0 {
			continue
		}
		rate := r.capacity / perEvent
		if b, ok := best[r.limit]; !ok || rate < b.Rate {
			best[r.limit] = Bound{Limit: r.limit, Where: r.name, Rate: rate}
		}
	}
	out := slices.Collect(maps.Values(best))
	slices.SortFunc(out, func(a, b Bound) int {
		return cmp.Or(cmp.Compare(a.Rate, b.Rate), cmp.Compare(a.Limit, b.Limit))
	})
	return out, nil
}

// Closed is the least of Bounds: the sustained throughput, and the limit that sets it.
func Closed(m Mix, l Layout, t Targets) (Bound, error) {
	b, err := Bounds(m, l, t)
	if err != nil {
		return Bound{}, err
	}
	if len(b) == 0 {
		return Bound{}, errors.New("capacity: the mix uses no limited resource")
	}
	return b[0], nil
}

// EnoughReplicas returns l with, for each role the mix costs CPU, the fewest replicas with
// which that CPU is not what binds: storage's bound divided by what one replica does.
func EnoughReplicas(m Mix, l Layout, t Targets) (Layout, error) {
	l = l.withDefaults()
	l.Replicas = map[string]int{}
	for role := range m.CPU {
		l.Replicas[role] = 1 // a placeholder, for the bounds of storage
	}
	bounds, err := Bounds(m, l, t)
	if err != nil {
		return l, err
	}
	storage := math.Inf(1)
	for _, b := range bounds {
		if b.Limit == LimitQueue || b.Limit == LimitAccount || b.Limit == LimitChanges {
			storage = min(storage, b.Rate)
		}
	}
	if math.IsInf(storage, 1) {
		return l, errors.New("capacity: the mix uses no storage: replicas are its only limit")
	}
	for role, cpu := range m.CPU {
		// Strictly more than enough: a tie would leave two limits binding at once.
		l.Replicas[role] = max(1, int(math.Ceil(storage*cpu/l.ReplicaCPU+1e-9)))
	}
	return l, nil
}

// PerReplica is how many events per second one replica of role handles, all its CPU busy.
func PerReplica(m Mix, l Layout, role string) float64 {
	l = l.withDefaults()
	return l.ReplicaCPU / m.CPU[role]
}
