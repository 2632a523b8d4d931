package capacity

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Sim configures a simulation. Zero fields take the defaults their comments give.
type Sim struct {
	// Offered is the arrival rate, in events per second. Required.
	Offered float64
	// Duration is the simulated time; throughput is measured over its second half. Default 20s.
	Duration time.Duration
	// Step is the time step. Default 10ms.
	Step time.Duration
	// Entities is how many distinct entities the events are about, each event's drawn at
	// random: an entity's events stay on one shard, so few entities spread unevenly.
	// Default 100,000.
	Entities int
	// Seed seeds the draws. Default 1.
	Seed uint64
}

// Result is what a simulation sustained.
type Result struct {
	// Throughput is the events served per second over the second half of the run.
	Throughput float64
	// Binding is the limit that was reached in most steps of the second half, LimitNone when
	// none was reached in half of them.
	Binding Limit
	// Where is the resource of that kind reached in most steps, e.g. "entity-events-0".
	Where string
	// Backlog is the events waiting at the end.
	Backlog float64
}

// Simulate offers sim.Offered events per second to layout l for sim.Duration. Each step, the
// step's arrivals join the backlog of their entity's shard (FNV-1a of the entity's id, mod N:
// the publisher's hash may differ, what matters is that it spreads and keeps an entity on one
// shard), then the backlogs are served as far as every resource's capacity for the step allows,
// each event charged its whole mix: in a steady state every stage of an event's pipeline runs
// at the same rate, so a fluid model sustains what a staged one does (it says nothing of
// latency). Capacity is shared out by progressive filling: every shard
// with a backlog is served at the same pace until a resource it uses is full or its backlog is
// empty, and the others go on.
func Simulate(m Mix, l Layout, t Targets, sim Sim) (Result, error) {
	l = l.withDefaults()
	if err := l.validate(m); err != nil {
		return Result{}, err
	}
	if sim.Offered <= 0 {
		return Result{}, fmt.Errorf("sim: Offered %g: want more than 0", sim.Offered)
	}
	sim.Duration = cmp.Or(sim.Duration, 20*time.Second)
	sim.Step = cmp.Or(sim.Step, 10*time.Millisecond)
	sim.Entities = cmp.Or(sim.Entities, 100_000)
	sim.Seed = cmp.Or(sim.Seed, 1)
	steps := int(sim.Duration / sim.Step)
	if steps < 2 {
		return Result{}, fmt.Errorf("sim: Duration %v is less than two steps of %v", sim.Duration, sim.Step)
	}
	dt := sim.Step.Seconds()

	n := l.Shards
	res := resources(m, l, t)
	shardOf := make([]int, sim.Entities)
	for e := range shardOf {
		h := fnv.New32a()
		fmt.Fprintf(h, "entity-%d", e)
		shardOf[e] = int(h.Sum32() % uint32(n))
	}
	rng := rand.New(rand.NewPCG(sim.Seed, 0))

	backlog := make([]float64, n)
	served := make([]float64, n)
	left := make([]float64, len(res))
	full := make([]bool, len(res))
	fullSteps := make([]int, len(res))
	var owed, measured float64 // arrivals not yet whole; events served in the second half
	for step := range steps {
		owed += sim.Offered * dt
		for ; owed >= 1; owed-- {
			backlog[shardOf[rng.IntN(sim.Entities)]]++
		}
		for r := range res {
			left[r], full[r] = res[r].capacity*dt, false
		}
		clear(served)
		serve(res, backlog, served, left, full)
		for s := range backlog {
			backlog[s] -= served[s]
			if step >= steps/2 {
				measured += served[s]
			}
		}
		if step >= steps/2 {
			for r := range res {
				if full[r] {
					fullSteps[r]++
				}
			}
		}
	}

	out := Result{Throughput: measured / (float64(steps-steps/2) * dt), Binding: LimitNone}
	for _, b := range backlog {
		out.Backlog += b
	}
	byLimit := map[Limit]int{}
	for r := range res {
		byLimit[res[r].limit] = max(byLimit[res[r].limit], fullSteps[r])
	}
	most := 0
	for lim, k := range byLimit {
		if k > most || k == most && most > 0 && lim < out.Binding {
			most, out.Binding = k, lim
		}
	}
	if 2*most < steps-steps/2 {
		out.Binding = LimitNone
		return out, nil
	}
	best := -1
	for r := range res {
		if res[r].limit == out.Binding && (best < 0 || fullSteps[r] > fullSteps[best]) {
			best = r
		}
	}
	out.Where = res[best].name
	return out, nil
}

// serve shares one step's capacity (left) among the shards' backlogs by progressive filling,
// adding each shard's events served to served and marking the resources it fills.
func serve(res []resource, backlog, served, left []float64, full []bool) {
	const tiny = 1e-9
	active := make([]int, 0, len(backlog))
	use := make([]float64, len(res)) // what one more event of every active shard costs each resource
	for s, b := range backlog {
		if b > tiny {
			active = append(active, s)
		}
	}
	for len(active) > 0 {
		// The largest equal increment for every active shard that no resource or backlog refuses.
		inc := math.Inf(1)
		for _, s := range active {
			inc = min(inc, backlog[s]-served[s])
		}
		for r := range res {
			use[r] = 0
			for _, s := range active {
				use[r] += res[r].load[s]
			}
			if use[r] > 0 {
				inc = min(inc, left[r]/use[r])
			}
		}
		for _, s := range active {
			served[s] += inc
		}
		for r := range res {
			left[r] -= inc * use[r]
			if use[r] > 0 && left[r] <= tiny*res[r].capacity {
				left[r], full[r] = 0, true
			}
		}
		active = slices.DeleteFunc(active, func(s int) bool {
			if backlog[s]-served[s] <= tiny {
				return true
			}
			for r := range res {
				if full[r] && res[r].load[s] > 0 {
					return true
				}
			}
			return false
		})
	}
}
