//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
)

var (
	flagScenario       = flag.String("scenario", "history,history-only,notify,automations", "scenarios to run, comma-separated (history-only: the history scenario with the change stream off, against a floor without change rows)")
	flagHistory        = flag.Int("history", 5000, "events in the history scenario")
	flagNotify         = flag.Int("notify", 1000, "events in the notify scenario")
	flagRounds         = flag.Int("rounds", 1, "measure each scenario this many times (worker, floor, worker, ...) and report the round with the median ratio")
	flagPublishers     = flag.Int("publishers", 16, "concurrent publishers")
	flagBinary         = flag.String("platform", "../bin/platform-chaos", "the worker binary (the chaos build: it reports its request counts)")
	flagProfile        = flag.String("worker-cpuprofile", "", "write the worker's CPU profile of each scenario's measured window to DIR/SCENARIO.pprof")
	flagAzuriteProfile = flag.String("azurite-cpuprofile", "", "write each phase's Azurite CPU profile (V8 .cpuprofile: Chrome DevTools, speedscope) to DIR")
)

// nonWork are request kinds that are not work per event: creating queues and tables, and the
// empty dequeues of idle polling (a function of time, not of events).
var nonWork = map[string]bool{storage.KindQueueAdmin: true, storage.KindTableAdmin: true, storage.KindDequeueEmpty: true}

type result struct {
	scenario              string
	events                int
	throughput, floor     float64 // events/s
	perEvent              map[string]float64
	meanMS                map[string]float64 // mean time of a request, by kind
	publisherCounts       map[string]int64
	txPerEvent            float64
	workerCPU, azuriteCPU float64 // seconds
	floorAzuriteMS        float64 // the floor's Azurite CPU per request, ms
	floorCPUMS            float64 // the floor's own CPU per event (the same requests, no logic), ms
	changeStream          bool    // the worker wrote the change stream; the floor writes change rows too
	startCPU              float64 // seconds a fresh worker takes to be ready, with nothing to do
	p50, p99              time.Duration
	paced                 float64 // events/s of the latency phase
	rssMB                 float64
	emptyPolls            int64
	idle                  map[string]float64 // requests/s by kind of the idle worker
	drainRequests         int64              // the worker's requests that are work, publishes left out
	publishSpan           time.Duration
	drainSpan             time.Duration
	bodies                []string                                       // the backlog, for the floor
	keys                  func(ev *platform.EntityEvent) (pk, rk string) // the worker's row keys, for the floor
}

func TestBench(t *testing.T) {
	binary, err := filepath.Abs(*flagBinary)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(binary); err != nil {
		t.Fatalf("%s: %v (make bench builds it)", binary, err)
	}
	if *flagRounds < 1 {
		t.Fatalf("-rounds=%d: want at least 1", *flagRounds)
	}
	var lines []string
	for _, name := range strings.Split(*flagScenario, ",") {
		var sc scenario
		switch name {
		case "history":
			sc = historyScenario(*flagHistory)
		case "history-only":
			sc = historyScenario(*flagHistory)
			sc.name, sc.changeStream, sc.env = name, false, []string{"PLATFORM_CHAOS_NO_CHANGE_STREAM=1"}
		case "notify":
			sc = notifyScenario(*flagNotify)
		case "automations":
			// Measured against its own history-only phase, not the floor (automations.go).
			lines = append(lines, runAutomations(t, binary, *flagAutomations))
			continue
		default:
			t.Fatalf("scenario %q: want history, history-only, notify or automations", name)
		}
		// Rounds alternate worker and floor, so each ratio compares two runs minutes apart
		// on a noisy machine; the round with the median ratio is the one reported.
		var rounds []*result
		for round := range *flagRounds {
			// Each phase is a subtest so that its Azurite and worker are gone before the next starts.
			var r *result
			if !t.Run(fmt.Sprintf("%s-worker-%d", name, round+1), func(t *testing.T) { r = run(t, binary, sc) }) {
				t.FailNow()
			}
			var floorMS map[string]float64
			if !t.Run(fmt.Sprintf("%s-floor-%d", name, round+1), func(t *testing.T) { r.floor, floorMS, r.floorAzuriteMS, r.floorCPUMS = runFloor(t, r) }) {
				t.FailNow()
			}
			r.log(t, floorMS)
			rounds = append(rounds, r)
		}
		slices.SortFunc(rounds, func(a, b *result) int { return cmp.Compare(a.ratio(), b.ratio()) })
		if len(rounds) > 1 {
			var ratios []string
			for _, r := range rounds {
				ratios = append(ratios, fmt.Sprintf("%.2f", r.ratio()))
			}
			t.Logf("%s: ratios of %d rounds: %s; reporting the median", name, len(rounds), strings.Join(ratios, " "))
		}
		lines = append(lines, rounds[len(rounds)/2].line())
	}
	for _, l := range lines {
		fmt.Println(l)
	}
}

func (r *result) ratio() float64 { return r.throughput / r.floor }

// line is the scenario's summary, in the form the issue fixed.
func (r *result) line() string {
	return fmt.Sprintf("bench scenario=%s events=%d throughput=%.0f/s floor=%.0f/s ratio=%.2f tx_per_event=%.2f cpu_ratio=%.2f worker_cpu_ms_per_event=%.2f/%.2f azurite_ms_per_req=%.2f/%.2f p50_ms=%.0f p99_ms=%.0f rss_mb=%.0f",
		r.scenario, r.events, r.throughput, r.floor, r.ratio(), r.txPerEvent, r.workerCPU/r.azuriteCPU, 1000*(r.workerCPU-r.startCPU)/float64(r.events), r.floorCPUMS,
		1000*r.azuriteCPU/float64(r.drainRequests), r.floorAzuriteMS, ms(r.p50), ms(r.p99), r.rssMB)
}

// log writes the detail behind the summary: requests by kind and their mean times, the idle
// rate left out, the phases' spans and CPU.
func (r *result) log(t *testing.T, floorMS map[string]float64) {
	var kinds, took []string
	for _, k := range slices.Sorted(maps.Keys(r.perEvent)) {
		kinds = append(kinds, fmt.Sprintf("%s=%.3f", k, r.perEvent[k]))
		took = append(took, fmt.Sprintf("%s=%.1f/%.1f", k, r.meanMS[k], floorMS[k]))
	}
	t.Logf("%s: mean ms per request, worker/floor: %s", r.scenario, strings.Join(took, " "))
	var idle []string
	for _, k := range slices.Sorted(maps.Keys(r.idle)) {
		idle = append(idle, fmt.Sprintf("%s=%.2f", k, r.idle[k]))
	}
	t.Logf("%s: the idle worker's requests per second, left out of the work per event: %s", r.scenario, strings.Join(idle, " "))
	t.Logf("%s: published %d events in %s, drained in %s; per event: %s; empty polls %d; worker CPU %.2fs, Azurite CPU %.2fs (%.2f ms per request); latency at %.0f events/s",
		r.scenario, r.events, r.publishSpan.Round(time.Millisecond), r.drainSpan.Round(time.Millisecond), strings.Join(kinds, " "), r.emptyPolls,
		r.workerCPU, r.azuriteCPU, 1000*r.azuriteCPU/float64(r.drainRequests), r.paced)
	t.Log(r.line())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ---- the scenarios --------------------------------------------------------------------------

// A scenario is what history and notify do differently: their events, the worker's settings,
// and where their effects are seen.
type scenario struct {
	name   string
	events int
	body   func(i int) string
	env    []string // the worker's environment, besides the bench's
	// changeStream: the worker writes the change stream (every scenario but history-only), so
	// the floor writes change rows too.
	changeStream bool
	seed         []string // SQL for the worker's settings
	// prepare, when set, finishes the worker's settings before it first starts.
	prepare func(t *testing.T, w *workerProc)
	smtp    bool
	// keys are the keys of the rows the worker writes for an event. The floor writes rows
	// keyed the same way: Azurite finds a row by a binary index on RowKey and then scans, so
	// what a write costs it depends on the keys' shape.
	keys func(ev *platform.EntityEvent) (pk, rk string)
	// effects starts watching a namespace's effects; done reports, for the event keys given,
	// when each one's effect happened (false while any is missing).
	effects func(t *testing.T, az *azurite, ns platform.Namespace, smtp *testenv.SMTPServer) (done func(keys map[string]time.Time) (map[string]time.Time, bool))
}

func historyScenario(n int) scenario {
	return scenario{
		name: "history", events: n, changeStream: true,
		body: func(i int) string {
			return fmt.Sprintf(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityGuid":"b0000000-0000-4000-8000-%012d","businessUnitId":42,`+
				`"createdOn":%q,"changedFields":["firstName"],"payload":{"firstName":"Ada","lastName":"Lovelace"}}`, i, createdOn(i))
		},
		keys: func(ev *platform.EntityEvent) (string, string) {
			return platform.HistoryPartitionKey(ev.EntityTypeID, ev.Identity()), platform.HistoryRowKey(ev.CreatedOn, ev.EventTypeID, ev.ActionTypeID)
		},
		// The effect's time is the history row's own: Azure's Timestamp, set when it was
		// written. The table is read once the queues are drained, not while the worker works.
		effects: func(t *testing.T, az *azurite, ns platform.Namespace, _ *testenv.SMTPServer) func(map[string]time.Time) (map[string]time.Time, bool) {
			hist := tableClient(t, az.acct, ns.Table(platform.TableEntityHistory))
			return func(keys map[string]time.Time) (map[string]time.Time, bool) {
				if !drained(t, az, ns) {
					return nil, false
				}
				return pick(rowTimes(t, hist), keys)
			}
		},
	}
}

func notifyScenario(n int) scenario {
	return scenario{
		name: "notify", events: n, smtp: true, changeStream: true,
		body: func(i int) string {
			return fmt.Sprintf(`{"eventTypeId":31,"entityTypeId":3,"actionTypeId":1,"entityGuid":"c0000000-0000-4000-8000-%012d","businessUnitId":42,`+
				`"createdOn":%q,"notificationEventTypeId":102,"payload":{"summary":"Incident %d"}}`, i, createdOn(i), i)
		},
		// Job and message rows: the job key (or the message key, which starts with it), one
		// row per partition with an empty RowKey.
		keys: func(ev *platform.EntityEvent) (string, string) {
			return platform.EscapeKey("notification-job:102:" + ev.Key()), ""
		},
		seed: []string{`INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds) SELECT 42, 102, TRUE, 'email', 0 WHERE NOT EXISTS (SELECT 1 FROM NotificationOption);
INSERT INTO NotificationSubscriber (BusinessUnitId, NotificationEventTypeId, Channel, Address, DisplayName) SELECT 42, 102, 'email', 'ops@example.com', 'Ops' WHERE NOT EXISTS (SELECT 1 FROM NotificationSubscriber);`},
		// The effect is the mail's arrival at the SMTP server.
		effects: func(t *testing.T, az *azurite, ns platform.Namespace, smtp *testenv.SMTPServer) func(map[string]time.Time) (map[string]time.Time, bool) {
			var mu sync.Mutex
			received := map[string]time.Time{}
			smtp.OnMail = func(m testenv.Mail) {
				key := m.Header.Get("X-Platform-Message-Key")
				key = strings.TrimPrefix(key[:strings.Index(key, "|")], "notification-job:102:")
				mu.Lock()
				received[key] = time.Now()
				mu.Unlock()
			}
			return func(keys map[string]time.Time) (map[string]time.Time, bool) {
				mu.Lock()
				defer mu.Unlock()
				return pick(received, keys)
			}
		},
	}
}

// run measures a scenario as the issue words it: the events are published, then drained by
// the worker. The worker is stopped while they are published, so the drain starts from the
// whole backlog and its span is the worker's alone; the floor drains the same backlog. Then,
// with the worker still running, a latency phase publishes at half the drain's throughput
// and times each event from its publish to its effect.
func run(t *testing.T, binary string, sc scenario) *result {
	az, ns := startAzurite(t), testenv.NewNamespace()
	var smtp *testenv.SMTPServer
	if sc.smtp {
		smtp = testenv.StartPlainSMTP(t)
	}
	w := newWorker(t, binary, az, ns, smtp, sc.seed...)
	w.env = append(w.env, sc.env...)
	if sc.prepare != nil {
		sc.prepare(t, w)
	}
	done := sc.effects(t, az, ns, smtp)
	// Every effect carries its own time, so looking twice a second is enough, and asks
	// little of the Azurite being measured.
	until := func(within time.Duration, what string, keys map[string]time.Time) map[string]time.Time {
		deadline := time.Now().Add(within)
		for {
			if at, ok := done(keys); ok {
				return at
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s", within, what)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	// Warm up: the queues and tables exist. Measure what the worker asks of storage when it
	// has nothing to do. Then stop it and publish the backlog.
	w.start(t)
	startCPU := cpuSeconds(t, w.cmd.Process.Pid)
	until(30*time.Second, "the warm-up event", publishAll(t, az, ns, []string{sc.body(sc.events + 1)}, nil))
	r := &result{scenario: sc.name, events: sc.events, bodies: seq(sc.events, sc.body), keys: sc.keys, startCPU: startCPU, changeStream: sc.changeStream}
	r.idle = w.idleRate(t, 5*time.Second)
	w.stop(t)
	backlog := publishAll(t, az, ns, r.bodies, r)

	m := w.measure(t)
	last := maxOf(until(10*time.Minute, "the backlog drained", backlog))
	r.drainSpan = last.Sub(m.start)
	r.throughput = float64(r.events) / r.drainSpan.Seconds()
	m.stop(t, r)

	// Latency at a steady half of that throughput, for about 10 s.
	r.paced = r.throughput / 2
	n := min(max(int(r.paced*10), 20), 1000)
	published := publishPaced(t, az, ns, seq(n, func(i int) string { return sc.body(sc.events + 2 + i) }), r.paced)
	effects := until(5*time.Minute, "the paced events' effects", published)
	var lat []time.Duration
	for k, at := range published {
		lat = append(lat, effects[k].Sub(at))
	}
	slices.Sort(lat)
	r.p50 = lat[len(lat)/2]
	r.p99 = lat[int(math.Ceil(0.99*float64(len(lat))))-1]
	return r
}

// pick is at's entries for keys, and false if any is missing.
func pick(at, keys map[string]time.Time) (map[string]time.Time, bool) {
	out := make(map[string]time.Time, len(keys))
	for k := range keys {
		got, ok := at[k]
		if !ok {
			return nil, false
		}
		out[k] = got
	}
	return out, true
}

// createdOn is event i's time: a second apart, as occurrences on distinct entities would be.
func createdOn(i int) string {
	return time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second).Format(time.RFC3339)
}

func maxOf(at map[string]time.Time) time.Time {
	var last time.Time
	for _, v := range at {
		if v.After(last) {
			last = v
		}
	}
	return last
}

// rowTimes is each history row's Timestamp by its event key.
func rowTimes(t *testing.T, hist *aztables.Client) map[string]time.Time {
	return timestamps(t, hist, "", "EventKey")
}

// timestamps is the Timestamp of each row filter selects ("": every row), by the value of its
// property key.
func timestamps(t *testing.T, c *aztables.Client, filter, key string) map[string]time.Time {
	out := map[string]time.Time{}
	opts := &aztables.ListEntitiesOptions{Select: to.Ptr(key + ",Timestamp")}
	if filter != "" {
		opts.Filter = &filter
	}
	pager := c.NewListEntitiesPager(opts)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range page.Entities {
			var e map[string]any
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(e["Timestamp"]))
			if err != nil {
				t.Fatalf("row Timestamp %v: %v", e["Timestamp"], err)
			}
			out[fmt.Sprint(e[key])] = at
		}
	}
	return out
}

// ---- publishing -------------------------------------------------------------------------------

func seq(n int, body func(int) string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = body(i)
	}
	return out
}

// publishAll enqueues the bodies with the configured concurrency, as services would, and
// returns when each event was published. With r, the publisher's requests are added to r's
// counts.
func publishAll(t *testing.T, az *azurite, ns platform.Namespace, bodies []string, r *result) map[string]time.Time {
	at := publishTo(t, az, ns, platform.QueueEntityEvents, bodies, r)
	out := make(map[string]time.Time, len(bodies))
	for i, b := range bodies {
		ev, err := platform.DecodeEvent([]byte(b))
		if err != nil {
			t.Fatal(err)
		}
		out[ev.Key()] = at[i]
	}
	return out
}

// publishTo enqueues bodies to queue name (each to its entity's shard of it, with -shards)
// and returns when each was published.
func publishTo(t *testing.T, az *azurite, ns platform.Namespace, name string, bodies []string, r *result) []time.Time {
	counter := &storage.Counter{}
	q, err := queues.New(az.counted(counter), ns)
	if err != nil {
		t.Fatal(err)
	}
	dest := make([]string, len(bodies))
	for i, b := range bodies {
		dest[i] = shardOf(t, name, b)
	}
	at := make([]time.Time, len(bodies))
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range *flagPublishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(bodies); i = int(next.Add(1)) - 1 {
				at[i] = time.Now()
				body := bodies[i]
				if name == platform.QueueEntityEvents {
					body = traced(body) // -tracing: as a traced service publishes
				}
				if err := q.Enqueue(context.Background(), dest[i], body, 0); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if r != nil {
		r.publishSpan = time.Since(start)
		r.publisherCounts = counter.Snapshot()
	}
	return at
}

// publishPaced enqueues the bodies one by one at rate per second and returns when each event
// was published.
func publishPaced(t *testing.T, az *azurite, ns platform.Namespace, bodies []string, rate float64) map[string]time.Time {
	q, err := queues.New(az.acct, ns)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]time.Time, len(bodies))
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i, b := range bodies {
		time.Sleep(time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))))
		ev, err := platform.DecodeEvent([]byte(b))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { // a slow enqueue must not delay the next one's turn
			defer wg.Done()
			at := time.Now()
			if err := q.Enqueue(context.Background(), shardOf(t, platform.QueueEntityEvents, b), traced(b), 0); err != nil {
				t.Error(err)
			}
			mu.Lock()
			out[ev.Key()] = at
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// drained tells whether the work queues are empty: every shard of each.
func drained(t *testing.T, az *azurite, ns platform.Namespace) bool {
	q := shardedClient(t, az.acct, ns)
	set, err := q.WorkQueues(context.Background())
	if err != nil {
		return false
	}
	for _, work := range platform.WorkQueues {
		for _, name := range set[work].Queues {
			if n, err := q.ApproximateCount(context.Background(), name); err != nil || n > 0 {
				return false
			}
		}
	}
	return true
}

// ---- the worker process -----------------------------------------------------------------------

type workerProc struct {
	az      *azurite
	binary  string
	env     []string
	dir     string
	cmd     *exec.Cmd // the running process, if any
	counts  string
	profile string // where the worker writes its CPU profile, when asked for one
}

// newWorker prepares a worker's configuration and seeds its settings; start runs it.
func newWorker(t *testing.T, binary string, az *azurite, ns platform.Namespace, smtp *testenv.SMTPServer, seed ...string) *workerProc {
	dir := t.TempDir()
	w := &workerProc{az: az, binary: binary, dir: dir, counts: filepath.Join(dir, "counts.json")}
	w.env = append(os.Environ(), "PLATFORM_STORAGE_CONNECTION_STRING="+az.acct.ConnectionString,
		"PLATFORM_NAMESPACE="+string(ns), "PLATFORM_SETTINGS_DSN="+filepath.Join(dir, "settings.db"),
		"PLATFORM_LOG_LEVEL=warn", "PLATFORM_LOG_FORMAT=json", "PLATFORM_CHAOS_COUNT_FILE="+w.counts)
	w.env = append(w.env, shardsEnv()...)   // -shards
	w.env = append(w.env, tracingEnv(t)...) // -tracing
	if smtp != nil {
		w.env = append(w.env, "PLATFORM_SMTP_ADDR="+smtp.Addr)
	}
	if *flagProfile != "" {
		w.profile = filepath.Join(dir, "cpu.pprof")
		w.env = append(w.env, "PLATFORM_CHAOS_CPU_PROFILE="+w.profile)
	}
	for i, s := range seed {
		f := filepath.Join(dir, fmt.Sprintf("seed%d.sql", i))
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary, "seed", f)
		cmd.Env = w.env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("seed: %v: %s", err, out)
		}
	}
	t.Cleanup(func() { w.stop(t) })
	return w
}

// start runs the worker and returns when it is ready.
func (w *workerProc) start(t *testing.T) {
	_ = os.Remove(w.counts) // the new process writes its own
	addr := testenv.FreeAddr(t)
	w.cmd = exec.Command(w.binary, "worker")
	w.cmd.Env = append(w.env, "PLATFORM_HTTP_ADDR="+addr)
	log, err := os.OpenFile(filepath.Join(w.dir, "worker.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	w.cmd.Stdout, w.cmd.Stderr = log, log
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the worker ready", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// stop stops the worker gracefully, if it runs.
func (w *workerProc) stop(t *testing.T) {
	if w.cmd == nil {
		return
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	if err := w.cmd.Wait(); err != nil {
		t.Errorf("the worker: %v (log in %s)", err, w.dir)
	}
	w.cmd = nil
}

// measurement covers a fresh worker process from its start: its CPU, its request counts and
// its peak memory are its own, and Azurite's CPU is read from the same moment.
type measurement struct {
	w       *workerProc
	start   time.Time
	azurite float64
}

// measure starts the worker and its measurement.
func (w *workerProc) measure(t *testing.T) *measurement {
	m := &measurement{w: w, start: time.Now(), azurite: cpuSeconds(t, w.az.pid())}
	w.start(t)
	w.toggleProfile(t)
	return m
}

// toggleProfile starts the worker's CPU profile, or stops and writes it.
func (w *workerProc) toggleProfile(t *testing.T) {
	if w.profile != "" {
		if err := w.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
	}
}

func (m *measurement) stop(t *testing.T, r *result) {
	r.workerCPU = cpuSeconds(t, m.w.cmd.Process.Pid)
	r.azuriteCPU = cpuSeconds(t, m.w.az.pid()) - m.azurite
	r.rssMB = peakRSSMB(t, m.w.cmd.Process.Pid)
	m.w.toggleProfile(t)
	time.Sleep(time.Second) // the profile written, and a fresh counts file (every 500 ms)
	if m.w.profile != "" {
		if err := os.MkdirAll(*flagProfile, 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(m.w.profile)
		if err != nil {
			t.Fatalf("the worker's CPU profile: %v", err)
		}
		out := filepath.Join(*flagProfile, r.scenario+".pprof")
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: CPU profile of the drain in %s (go tool pprof -top %s %s)", r.scenario, out, *flagBinary, out)
	}
	after := readCounts(t, m.w.counts)
	span := time.Since(m.start).Seconds()
	r.meanMS = meanMS(after.Counts, after.ElapsedNS)
	r.emptyPolls = after.Counts[storage.KindDequeueEmpty]
	// Work is what the events cost: the worker's requests and the publisher's, less what the
	// worker asks of storage when it has nothing to do (the change bus and the outbox read
	// once a second, whatever the load) over the same span, and less empty polls.
	r.perEvent = map[string]float64{}
	var work float64
	kinds := map[string]bool{}
	for k := range after.Counts {
		kinds[k] = true
	}
	for k := range r.publisherCounts {
		kinds[k] = true
	}
	for k := range kinds {
		if nonWork[k] {
			continue
		}
		r.drainRequests += after.Counts[k]
		d := max(0, float64(after.Counts[k])-r.idle[k]*span) + float64(r.publisherCounts[k])
		if d > 0 {
			r.perEvent[k] = d / float64(r.events)
			work += d
		}
	}
	r.txPerEvent = work / float64(r.events)
}

// idleRate is the worker's requests per second by kind over a while in which it has nothing
// to do.
func (w *workerProc) idleRate(t *testing.T, over time.Duration) map[string]float64 {
	time.Sleep(time.Second) // the counts of the work just done written
	before, start := readCounts(t, w.counts), time.Now()
	time.Sleep(over)
	after := readCounts(t, w.counts)
	secs := time.Since(start).Seconds()
	rate := map[string]float64{}
	for k, n := range after.Counts {
		if d := n - before.Counts[k]; d > 0 {
			rate[k] = float64(d) / secs
		}
	}
	return rate
}

// requestCounts is what the chaos build writes to PLATFORM_CHAOS_COUNT_FILE.
type requestCounts struct {
	Counts    map[string]int64 `json:"counts"`
	ElapsedNS map[string]int64 `json:"elapsed_ns"`
}

func readCounts(t *testing.T, path string) requestCounts {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the worker's request counts: %v (is it the chaos build?)", err)
	}
	var c requestCounts
	if err := json.Unmarshal(b, &c); err != nil || c.Counts == nil {
		t.Fatalf("the worker's request counts %s: %v (is the binary older than the bench?)", b, err)
	}
	return c
}

// meanMS is the mean time of a request by kind.
func meanMS[D int64 | time.Duration](counts map[string]int64, elapsed map[string]D) map[string]float64 {
	out := map[string]float64{}
	for k, n := range counts {
		if n > 0 {
			out[k] = float64(elapsed[k]) / float64(n) / 1e6
		}
	}
	return out
}

// cpuSeconds is a process's user+system CPU time so far, from /proc/PID/stat.
func cpuSeconds(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

func peakRSSMB(t *testing.T, pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// ---- storage clients for the measurements and the floor --------------------------------------

func tableClient(t *testing.T, acct storage.Account, name string) *aztables.Client {
	svc, err := aztables.NewServiceClientFromConnectionString(acct.ResolvedConnectionString(), &aztables.ClientOptions{ClientOptions: acct.ClientOptions(storage.Table)})
	if err != nil {
		t.Fatal(err)
	}
	return svc.NewClient(name)
}

func queueClient(t *testing.T, acct storage.Account, name string) *azqueue.QueueClient {
	svc, err := azqueue.NewServiceClientFromConnectionString(acct.ResolvedConnectionString(), &azqueue.ClientOptions{ClientOptions: acct.ClientOptions(storage.Queue)})
	if err != nil {
		t.Fatal(err)
	}
	return svc.NewQueueClient(name)
}
