//go:build bench

package bench

import (
	"bufio"
	"bytes"
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
	flagScenario   = flag.String("scenario", "history,notify", "scenarios to run, comma-separated")
	flagHistory    = flag.Int("history", 5000, "events in the history scenario")
	flagNotify     = flag.Int("notify", 1000, "events in the notify scenario")
	flagPublishers = flag.Int("publishers", 16, "concurrent publishers")
	flagBinary     = flag.String("platform", "../bin/platform-chaos", "the worker binary (the chaos build: it reports its request counts)")
)

func TestMain(m *testing.M) { testenv.Main(m) }

// nonWork are request kinds that are not work per event: creating queues and tables, and the
// empty dequeues of idle polling (a function of time, not of events).
var nonWork = map[string]bool{storage.KindQueueAdmin: true, storage.KindTableAdmin: true, storage.KindDequeueEmpty: true}

type result struct {
	scenario              string
	events                int
	start                 time.Time // the first publish
	throughput, floor     float64   // events/s
	perEvent              map[string]float64
	publisherCounts       map[string]int64
	txPerEvent            float64
	workerCPU, azuriteCPU float64 // seconds
	p50, p99              time.Duration
	rssMB                 float64
	emptyPolls            int64
	publishSpan           time.Duration
	effectSpan            time.Duration
	body                  string // a typical message, for the floor
}

func TestBench(t *testing.T) {
	binary, err := filepath.Abs(*flagBinary)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(binary); err != nil {
		t.Fatalf("%s: %v (make bench builds it)", binary, err)
	}
	var lines []string
	for _, sc := range strings.Split(*flagScenario, ",") {
		var r *result
		switch sc {
		case "history":
			r = runHistory(t, binary, *flagHistory)
		case "notify":
			r = runNotify(t, binary, *flagNotify)
		default:
			t.Fatalf("scenario %q: want history or notify", sc)
		}
		r.floor = runFloor(t, r)
		var kinds []string
		for _, k := range slices.Sorted(maps.Keys(r.perEvent)) {
			kinds = append(kinds, fmt.Sprintf("%s=%.3f", k, r.perEvent[k]))
		}
		t.Logf("%s: published %d events in %s, effects done %s after the first publish; per event: %s; idle empty polls %d; worker CPU %.2fs, Azurite CPU %.2fs",
			r.scenario, r.events, r.publishSpan.Round(time.Millisecond), r.effectSpan.Round(time.Millisecond), strings.Join(kinds, " "), r.emptyPolls, r.workerCPU, r.azuriteCPU)
		lines = append(lines, fmt.Sprintf("bench scenario=%s events=%d throughput=%.0f/s floor=%.0f/s ratio=%.2f tx_per_event=%.2f cpu_ratio=%.2f p50_ms=%.0f p99_ms=%.0f rss_mb=%.0f",
			r.scenario, r.events, r.throughput, r.floor, r.throughput/r.floor, r.txPerEvent, r.workerCPU/r.azuriteCPU,
			ms(r.p50), ms(r.p99), r.rssMB))
	}
	for _, l := range lines {
		fmt.Println(l)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ---- the scenarios --------------------------------------------------------------------------

func runHistory(t *testing.T, binary string, n int) *result {
	ns := testenv.Namespace(t)
	w := startWorker(t, binary, ns, nil)
	body := func(i int) string {
		return fmt.Sprintf(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityGuid":"b0000000-0000-4000-8000-%012d","businessUnitId":42,`+
			`"createdOn":"2026-11-22T10:00:00Z","changedFields":["firstName"],"payload":{"firstName":"Ada","lastName":"Lovelace"}}`, i)
	}
	hist := tableClient(t, ns.Table(platform.TableEntityHistory))
	// Warm up: the queues and tables exist, the worker's pipeline is hot.
	r := &result{scenario: "history", events: n, body: body(0)}
	publishAll(t, ns, []string{body(n)}, nil)
	testenv.Eventually(t, 30*time.Second, "the warm-up event", func() bool { return countRows(t, hist) == 1 })

	m := w.measure(t)
	published := publishAll(t, ns, seq(n, body), r)
	waitDrained(t, ns, 5*time.Minute)
	m.stop(t, r)

	// The effect's time is the row's own: Azure's Timestamp, set when it was written.
	var lat []time.Duration
	var last time.Time
	pager := hist.NewListEntitiesPager(&aztables.ListEntitiesOptions{Select: to.Ptr("EventKey,Timestamp")})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range page.Entities {
			var e struct {
				EventKey  string
				Timestamp time.Time
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			if at, ok := published[e.EventKey]; ok {
				lat = append(lat, e.Timestamp.Sub(at))
				last = maxTime(last, e.Timestamp)
			}
		}
	}
	if len(lat) != n {
		t.Fatalf("%d history rows for %d events", len(lat), n)
	}
	r.finish(lat, last)
	return r
}

func runNotify(t *testing.T, binary string, n int) *result {
	ns := testenv.Namespace(t)
	smtp := testenv.StartPlainSMTP(t)
	var mu sync.Mutex
	received := map[string]time.Time{} // event key → when its mail arrived
	smtp.OnMail = func(m testenv.Mail) {
		key := m.Header.Get("X-Platform-Message-Key")
		key = strings.TrimPrefix(key[:strings.Index(key, "|")], "notification-job:102:")
		mu.Lock()
		received[key] = time.Now()
		mu.Unlock()
	}
	w := startWorker(t, binary, ns, smtp, `INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds) SELECT 42, 102, TRUE, 'email', 0 WHERE NOT EXISTS (SELECT 1 FROM NotificationOption);
INSERT INTO NotificationSubscriber (BusinessUnitId, NotificationEventTypeId, Channel, Address, DisplayName) SELECT 42, 102, 'email', 'ops@example.com', 'Ops' WHERE NOT EXISTS (SELECT 1 FROM NotificationSubscriber);`)
	body := func(i int) string {
		return fmt.Sprintf(`{"eventTypeId":31,"entityTypeId":3,"actionTypeId":1,"entityGuid":"c0000000-0000-4000-8000-%012d","businessUnitId":42,`+
			`"createdOn":"2026-11-22T10:00:00Z","notificationEventTypeId":102,"payload":{"summary":"Incident %d"}}`, i, i)
	}
	r := &result{scenario: "notify", events: n, body: body(0)}
	publishAll(t, ns, []string{body(n)}, nil)
	got := func() int { mu.Lock(); defer mu.Unlock(); return len(received) }
	testenv.Eventually(t, 30*time.Second, "the warm-up mail", func() bool { return got() == 1 })

	m := w.measure(t)
	published := publishAll(t, ns, seq(n, body), r)
	testenv.Eventually(t, 5*time.Minute, "every mail", func() bool { return got() == n+1 })
	waitDrained(t, ns, time.Minute)
	m.stop(t, r)

	mu.Lock()
	defer mu.Unlock()
	var lat []time.Duration
	var last time.Time
	for key, at := range published {
		got, ok := received[key]
		if !ok {
			t.Fatalf("no mail for %s", key)
		}
		lat = append(lat, got.Sub(at))
		last = maxTime(last, got)
	}
	r.finish(lat, last)
	return r
}

func (r *result) finish(lat []time.Duration, last time.Time) {
	slices.Sort(lat)
	r.p50 = lat[len(lat)/2]
	r.p99 = lat[int(math.Ceil(0.99*float64(len(lat))))-1]
	r.effectSpan = last.Sub(r.start)
	r.throughput = float64(r.events) / r.effectSpan.Seconds()
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
// counts and the first publish starts r's clock.
func publishAll(t *testing.T, ns platform.Namespace, bodies []string, r *result) map[string]time.Time {
	at := publishTo(t, ns, platform.QueueEntityEvents, bodies, r)
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

// publishTo enqueues bodies to queue name and returns when each was published.
func publishTo(t *testing.T, ns platform.Namespace, name string, bodies []string, r *result) []time.Time {
	counter := &storage.Counter{}
	q, err := queues.New(storage.Account{Counter: counter}, ns)
	if err != nil {
		t.Fatal(err)
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
				if err := q.Enqueue(context.Background(), name, bodies[i], 0); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if r != nil {
		r.start, r.publishSpan = start, time.Since(start)
		r.publisherCounts = counter.Snapshot()
	}
	return at
}

func waitDrained(t *testing.T, ns platform.Namespace, within time.Duration) {
	q, err := queues.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, within, "the work queues drained", func() bool {
		for _, name := range platform.WorkQueues {
			if n, err := q.ApproximateCount(context.Background(), name); err != nil || n > 0 {
				return false
			}
		}
		return true
	})
}

// ---- the worker process -----------------------------------------------------------------------

type workerProc struct {
	cmd    *exec.Cmd
	counts string
}

func startWorker(t *testing.T, binary string, ns platform.Namespace, smtp *testenv.SMTPServer, seed ...string) *workerProc {
	dir := t.TempDir()
	env := append(os.Environ(), "PLATFORM_NAMESPACE="+string(ns), "PLATFORM_SETTINGS_DSN="+filepath.Join(dir, "settings.db"),
		"PLATFORM_LOG_LEVEL=warn", "PLATFORM_LOG_FORMAT=json")
	if smtp != nil {
		env = append(env, "PLATFORM_SMTP_ADDR="+smtp.Addr)
	}
	for i, s := range seed {
		f := filepath.Join(dir, fmt.Sprintf("seed%d.sql", i))
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary, "seed", f)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("seed: %v: %s", err, out)
		}
	}
	addr := testenv.FreeAddr(t)
	w := &workerProc{counts: filepath.Join(dir, "counts.json")}
	w.cmd = exec.Command(binary, "worker")
	w.cmd.Env = append(env, "PLATFORM_HTTP_ADDR="+addr, "PLATFORM_CHAOS_COUNT_FILE="+w.counts)
	log, err := os.Create(filepath.Join(dir, "worker.log"))
	if err != nil {
		t.Fatal(err)
	}
	w.cmd.Stdout, w.cmd.Stderr = log, log
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		_ = w.cmd.Wait()
	})
	testenv.Eventually(t, 30*time.Second, "the worker ready", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return w
}

type measurement struct {
	w            *workerProc
	counts       map[string]int64
	cpu, azurite float64
	azuritePID   int
}

func (w *workerProc) measure(t *testing.T) *measurement {
	time.Sleep(300 * time.Millisecond) // a fresh counts file
	pid := azuritePID(t)
	return &measurement{w: w, counts: readCounts(t, w.counts), cpu: cpuSeconds(t, w.cmd.Process.Pid), azurite: cpuSeconds(t, pid), azuritePID: pid}
}

func (m *measurement) stop(t *testing.T, r *result) {
	r.workerCPU = cpuSeconds(t, m.w.cmd.Process.Pid) - m.cpu
	r.azuriteCPU = cpuSeconds(t, m.azuritePID) - m.azurite
	time.Sleep(300 * time.Millisecond)
	after := readCounts(t, m.w.counts)
	r.perEvent = map[string]float64{}
	var work float64
	for k, v := range after {
		d := v - m.counts[k] + r.publisherCounts[k]
		if k == storage.KindDequeueEmpty {
			r.emptyPolls = d
		}
		if nonWork[k] || d == 0 {
			continue
		}
		r.perEvent[k] = float64(d) / float64(r.events)
		work += float64(d)
	}
	for k, v := range r.publisherCounts {
		if _, ok := after[k]; !ok && !nonWork[k] {
			r.perEvent[k] = float64(v) / float64(r.events)
			work += float64(v)
		}
	}
	r.txPerEvent = work / float64(r.events)
	r.rssMB = peakRSSMB(t, m.w.cmd.Process.Pid)
}

func readCounts(t *testing.T, path string) map[string]int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the worker's request counts: %v (is it the chaos build?)", err)
	}
	var c map[string]int64
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
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

// azuritePID finds the Azurite process serving 127.0.0.1 (make azurite/up's, or any other).
func azuritePID(t *testing.T) int {
	if b, err := os.ReadFile("../azurite/.pid"); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				return pid
			}
		}
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, _ := os.ReadFile(d)
		if bytes.Contains(b, []byte("azurite")) && !bytes.Contains(b, []byte("bench")) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
			return pid
		}
	}
	t.Fatal("cannot find the Azurite process to measure its CPU")
	return 0
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// ---- storage clients for the measurements and the floor --------------------------------------

func tableClient(t *testing.T, name string) *aztables.Client {
	acct := storage.Account{}
	svc, err := aztables.NewServiceClientFromConnectionString(acct.ResolvedConnectionString(), &aztables.ClientOptions{ClientOptions: acct.ClientOptions(storage.Table)})
	if err != nil {
		t.Fatal(err)
	}
	return svc.NewClient(name)
}

func queueClient(t *testing.T, name string) *azqueue.QueueClient {
	acct := storage.Account{}
	svc, err := azqueue.NewServiceClientFromConnectionString(acct.ResolvedConnectionString(), &azqueue.ClientOptions{ClientOptions: acct.ClientOptions(storage.Queue)})
	if err != nil {
		t.Fatal(err)
	}
	return svc.NewQueueClient(name)
}

func countRows(t *testing.T, c *aztables.Client) int {
	n := 0
	pager := c.NewListEntitiesPager(&aztables.ListEntitiesOptions{Select: to.Ptr("RowKey")})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			return 0
		}
		n += len(page.Entities)
	}
	return n
}
