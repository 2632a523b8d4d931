//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
)

var (
	flagEvents   = flag.Int("events", 600, "occurrences to publish (besides the hostile inputs)")
	flagKills    = flag.Int("kills", 20, "SIGKILLs at least")
	flagReplicas = flag.Int("replicas", 3, "worker processes")
	flagFaults   = flag.Float64("faults", 0, "share of the workers' storage requests to fail (0 to 1)")
	flagLoad     = flag.Duration("load", 30*time.Second, "how long publishing takes")
	flagShards   = flag.Int("shards", 1, "PLATFORM_QUEUE_SHARDS of the workers and of the harness's publisher")
	flagBinary   = flag.String("platform", "../bin/platform-chaos", "the chaos build of the worker (go build -tags chaos)")
	flagSeed     = flag.Uint64("seed", 0, "random seed; 0 draws one (printed)")
	flagLogs     = flag.String("logs", "", "folder for the replicas' logs; default a new temporary folder (printed)")
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	businessUnit  = 42
	opsAddress    = "ops@example.com"
	webhookSecret = "chaos-endpoint-secret-7Kq2xW9mZ4pL"
)

// expected is what the run must leave behind, keyed as storage keys it.
type expected struct {
	mu        sync.Mutex
	history   map[string]bool   // event keys with one history row each
	jobs      map[string]bool   // job keys
	messages  map[string]string // message key → the provider that must receive it ("smtp", "webhook")
	sources   map[string]bool   // outbox SourceKeys with one PlatformEventLog row each
	hostile   map[string]string // poisoned body → case name
	rules     *rulePlan         // what the automation rules must do
	published int               // messages put on entity-events, duplicates included
}

func TestChaos(t *testing.T) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	binary, err := filepath.Abs(*flagBinary)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(binary); err != nil {
		t.Fatalf("%s: %v (make chaos builds it)", binary, err)
	}
	logs := *flagLogs
	if logs == "" {
		if logs, err = os.MkdirTemp("", "platform-chaos-"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d, logs in %s", seed, logs)

	ns := testenv.Namespace(t)
	smtp := testenv.StartPlainSMTP(t)
	hooks := testenv.StartWebhookReceiver(t, webhookSecret)
	agent := startAgent(t)
	dsn := filepath.Join(t.TempDir(), "settings.db")
	env := []string{
		"PLATFORM_NAMESPACE=" + string(ns),
		"PLATFORM_SETTINGS_DSN=" + dsn,
		"PLATFORM_SMTP_ADDR=" + smtp.Addr,
		"PLATFORM_WEBHOOK_ALLOWLIST=127.0.0.1",
		"PLATFORM_WEBHOOK_SECRET=chaos-channel-secret",
		"PLATFORM_LOG_LEVEL=warn",
		"PLATFORM_LOG_FORMAT=json",
		"PLATFORM_CHAOS_SEND_LEASE=10s",
		"PLATFORM_CHAOS_VISIBILITY=10s",
		"PLATFORM_OUTBOX_STALE_AFTER=1m",
		fmt.Sprintf("PLATFORM_QUEUE_SHARDS=%d", *flagShards),
	}
	env = append(env, agent.env()...)
	seedFile := filepath.Join(t.TempDir(), "seed.sql")
	if err := os.WriteFile(seedFile, []byte(seedSQL), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, binary, env, "seed", seedFile)
	endpoint := strings.TrimSpace(run(t, binary, env, "webhooks", "add", "--url", hooks.URL+"/hook",
		"--business-unit", fmt.Sprint(businessUnit), "--event-types", "11", "--secret", webhookSecret))
	rules := addRules(t, binary, env, endpoint)

	workerEnv := env
	if *flagFaults > 0 {
		workerEnv = append(slices.Clone(env), fmt.Sprintf("PLATFORM_CHAOS_FAULT_RATE=%g", *flagFaults))
	}
	fleet := make([]*replica, *flagReplicas)
	for i := range fleet {
		fleet[i] = &replica{name: fmt.Sprintf("replica-%d", i), binary: binary, env: workerEnv, addr: testenv.FreeAddr(t), logs: logs}
		fleet[i].start(t)
	}
	t.Cleanup(func() {
		for _, r := range fleet {
			r.kill()
		}
	})

	// The service side: a publisher (as any service would be) and a library handle for the
	// outbox calls a service makes.
	publisher, err := queues.New(storage.Account{}, ns)
	if err == nil {
		err = publisher.SetShards(*flagShards)
	}
	if err != nil {
		t.Fatal(err)
	}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	service, err := worker.New(worker.Config{Namespace: ns, Logger: quiet, SettingsDSN: dsn, QueueShards: *flagShards})
	if err != nil {
		t.Fatal(err)
	}
	want := &expected{history: map[string]bool{}, jobs: map[string]bool{}, messages: map[string]string{}, sources: map[string]bool{}, hostile: map[string]string{}, rules: rules}
	plan := buildPlan(t, rng, want, endpoint, publisher, service, fleet)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loadDone := make(chan error, 1)
	go func() { loadDone <- plan.run(ctx) }()
	kills, problems := chaosMonkey(t, rng, fleet, loadDone)
	for _, p := range problems {
		t.Error(p)
	}

	// Drain with one more worker process, then stop the fleet gently.
	drainCtx, stop := context.WithTimeout(context.Background(), 5*time.Minute)
	defer stop()
	drain := exec.CommandContext(drainCtx, binary, "worker", "--drain")
	drain.Env = append(os.Environ(), append(workerEnv, "PLATFORM_HTTP_ADDR="+testenv.FreeAddr(t))...)
	drainLog, _ := os.Create(filepath.Join(logs, "drain.log"))
	drain.Stdout, drain.Stderr = drainLog, drainLog
	start := time.Now()
	if err := drain.Run(); err != nil {
		t.Fatalf("drain: %v (see %s)", err, drainLog.Name())
	}
	t.Logf("drained in %s", time.Since(start).Round(time.Second))
	for _, r := range fleet {
		r.stop(t)
	}

	c := check(t, ns, want, smtp, hooks)
	a := checkAutomations(t, ns, rules, agent, hooks, c)
	summary := fmt.Sprintf("chaos: events=%d kills=%d lost=%d duplicated=%d unknown=%d resent=%d poison=%d %s faults=%g%% published=%d seed=%d",
		*flagEvents, kills, c.lost, c.duplicated, c.unknown, c.resent, c.poison, a, *flagFaults*100, want.published, seed)
	fmt.Println(summary)
	// The verdict stays with the logs, whatever happens to this output.
	_ = os.WriteFile(filepath.Join(logs, "verdict.txt"), []byte(summary+"\n"+strings.Join(append(problems, c.problems...), "\n")+"\n"), 0o644)
	for _, p := range c.problems {
		t.Error(p)
	}
	if kills < *flagKills {
		t.Errorf("%d kills, want at least %d", kills, *flagKills)
	}
}

const seedSQL = `
INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds)
SELECT 42, 102, TRUE, 'email', 0 WHERE NOT EXISTS (SELECT 1 FROM NotificationOption WHERE BusinessUnitId = 42 AND NotificationEventTypeId = 102);
INSERT INTO NotificationSubscriber (BusinessUnitId, NotificationEventTypeId, Channel, Address, DisplayName)
SELECT 42, 102, 'email', 'ops@example.com', 'Ops' WHERE NOT EXISTS (SELECT 1 FROM NotificationSubscriber WHERE BusinessUnitId = 42 AND NotificationEventTypeId = 102);
INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds)
SELECT 42, 201, TRUE, 'email', 0 WHERE NOT EXISTS (SELECT 1 FROM NotificationOption WHERE BusinessUnitId = 42 AND NotificationEventTypeId = 201);
`

// ---- the load -------------------------------------------------------------------------------

type step struct {
	at   time.Duration
	name string
	do   func(context.Context) error
}

type plan struct{ steps []step }

// buildPlan makes the mixed load: every occurrence is delivered 1-3 times, the copies spread
// over a few seconds; the hostile inputs are sprinkled in.
func buildPlan(t *testing.T, rng *rand.Rand, want *expected, endpoint string, publisher *queues.Client, service *worker.Worker, fleet []*replica) *plan {
	p := &plan{}
	n := *flagEvents
	load := *flagLoad
	at := func(i int) time.Duration {
		return time.Duration(float64(load) * float64(i) / float64(n))
	}
	spread := func() time.Duration { return time.Duration(rng.Int64N(int64(3 * time.Second))) }
	publish := func(name, body string) func(context.Context) error {
		return func(ctx context.Context) error {
			want.mu.Lock()
			want.published++
			want.mu.Unlock()
			shardKey := body // a hostile input has no entity: any shard
			if ev, err := platform.DecodeEvent([]byte(body)); err == nil {
				shardKey = ev.ShardKey()
			}
			return publisher.Enqueue(ctx, publisher.Route(platform.QueueEntityEvents, shardKey), body, 0)
		}
	}
	keyOf := func(body string) string {
		ev, err := platform.DecodeEvent([]byte(body))
		if err != nil {
			t.Fatalf("the harness built a bad event %s: %v", body, err)
		}
		return ev.Key()
	}
	guid := func(i int) string { return fmt.Sprintf("c4a05000-0000-4000-8000-%012d", i) }
	createdOn := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i := range n {
		copies := 1 + rng.IntN(3)
		when := createdOn.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)
		var body, kind string
		switch i % 10 {
		case 0, 1: // history only, by GUID; the run rule's filter refuses it
			kind = "history"
			body = fmt.Sprintf(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityGuid":%q,"businessUnitId":42,"createdOn":%q,"changedFields":["firstName"],"payload":{"firstName":"Ada %d"}}`, guid(i), when, i)
			want.rules.refused[keyOf(body)] = true
		case 2: // history, and an agent run by the run rule
			kind = "run"
			body = fmt.Sprintf(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityGuid":%q,"businessUnitId":42,"createdOn":%q,"changedFields":["firstName"],"payload":{"firstName":"Run %d"}}`, guid(i), when, i)
			want.rules.runEvents[keyOf(body)] = true
		case 3: // history, by id, and the webhook rule's delivery of its bucket (once per bucket)
			kind = "bucketed"
			body = fmt.Sprintf(`{"eventTypeId":22,"entityTypeId":2,"actionTypeId":2,"entityId":%d,"businessUnitId":42,"createdOn":%q,"payload":{"title":"Clerk"}}`, i+1, when)
			want.rules.bucketed(want, keyOf(body), int64(i+1))
		case 4, 5: // hinted notification: one job, one email to the subscriber
			kind = "hinted"
			body = fmt.Sprintf(`{"eventTypeId":31,"entityTypeId":3,"actionTypeId":1,"entityGuid":%q,"businessUnitId":42,"createdOn":%q,"notificationEventTypeId":102,"payload":{"summary":"Incident %d"}}`, guid(i), when, i)
			job := platform.EventJobKey(102, keyOf(body))
			want.jobs[job] = true
			want.messages[platform.MessageKey(job, platform.Recipient{Channel: platform.ChannelEmail, Address: opsAddress})] = "smtp"
		case 6: // subscribed by the webhook endpoint
			kind = "webhook"
			body = fmt.Sprintf(`{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"entityGuid":%q,"businessUnitId":42,"createdOn":%q,"payload":{"firstName":"Grace %d"}}`, guid(i), when, i)
			want.messages[platform.DeliveryKey(endpoint, keyOf(body))] = "webhook"
		case 7: // a direct job, requested 1-3 times with one Idempotency-Key
			idem := fmt.Sprintf("chaos-%d", i)
			address := fmt.Sprintf("user%d@example.com", i)
			job := platform.DirectJobKey(201, businessUnit, idem)
			want.jobs[job] = true
			want.messages[platform.MessageKey(job, platform.Recipient{Channel: platform.ChannelEmail, Address: address})] = "smtp"
			req := fmt.Sprintf(`{"notificationEventTypeId":201,"businessUnitId":42,"eventData":{"firstName":"U%d"},"recipients":[{"channel":"email","address":%q}]}`, i, address)
			for range copies {
				p.steps = append(p.steps, step{at(i) + spread(), "direct " + idem, func(ctx context.Context) error {
					return postJob(ctx, fleet, idem, req)
				}})
			}
			continue
		case 8, 9: // a guaranteed event: outbox intent, confirmed 1-3 times
			body = fmt.Sprintf(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityGuid":%q,"businessUnitId":42,"createdOn":%q,"payload":{"firstName":"Outbox %d"}}`, guid(i), when, i)
			want.history[keyOf(body)] = true
			want.rules.refused[keyOf(body)] = true // type 12, not a Run
			ev, _ := platform.DecodeEvent([]byte(body))
			p.steps = append(p.steps, step{at(i), "outbox", func(ctx context.Context) error {
				in, err := service.Outbox().AppendIntent(ctx, ev, nil)
				if err != nil {
					return err
				}
				want.mu.Lock()
				want.sources[in.SourceKey] = true
				want.mu.Unlock()
				for range copies {
					if _, err := service.Outbox().ConfirmIntent(ctx, in.SourceKey); err != nil {
						return err
					}
				}
				return nil
			}})
			continue
		}
		want.history[keyOf(body)] = true
		for range copies {
			p.steps = append(p.steps, step{at(i) + spread(), kind, publish(kind, body)})
		}
	}
	for _, h := range testenv.HostileEvents() {
		want.hostile[strings.TrimSpace(h.Body)] = h.Name
		p.steps = append(p.steps, step{time.Duration(rng.Int64N(int64(load))), "hostile " + h.Name, publish("hostile", h.Body)})
	}
	sort.SliceStable(p.steps, func(a, b int) bool { return p.steps[a].at < p.steps[b].at })
	return p
}

// run performs the steps on schedule. A step that fails (a replica died under a request) is
// retried, as a service retries: at least once is the contract on this side.
func (p *plan) run(ctx context.Context) error {
	start := time.Now()
	for _, s := range p.steps {
		if d := time.Until(start.Add(s.at)); d > 0 {
			time.Sleep(d)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			err := s.do(ctx)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func postJob(ctx context.Context, fleet []*replica, idem, body string) error {
	r := fleet[rand.IntN(len(fleet))] // any replica: the one that took the last copy may be dead
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+r.addr+"/v1/notification-jobs", strings.NewReader(body))
	req.Header.Set("Idempotency-Key", idem)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST /v1/notification-jobs: %d %s", resp.StatusCode, b)
	}
	return nil
}

// chaosMonkey kills a random replica every 0.3-1.5 s and restarts it after up to half a
// second, until the load is published and enough kills were made. It reports a replica that
// died on its own.
func chaosMonkey(t *testing.T, rng *rand.Rand, fleet []*replica, loadDone <-chan error) (kills int, problems []string) {
	loaded := false
	for !loaded || kills < *flagKills {
		select {
		case err := <-loadDone:
			loaded = true
			if err != nil {
				problems = append(problems, "load: "+err.Error())
			}
		case <-time.After(300*time.Millisecond + time.Duration(rng.Int64N(int64(1200*time.Millisecond)))):
			for _, r := range fleet {
				if r.exitedOnItsOwn() {
					problems = append(problems, r.name+" exited on its own; see "+r.logPath())
					r.start(t)
				}
			}
			r := fleet[rng.IntN(len(fleet))]
			r.kill()
			kills++
			time.Sleep(time.Duration(rng.Int64N(int64(500 * time.Millisecond))))
			r.start(t)
		}
	}
	return kills, problems
}

// ---- processes --------------------------------------------------------------------------------

type replica struct {
	name, binary, addr, logs string
	env                      []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	killed bool
}

func (r *replica) logPath() string { return filepath.Join(r.logs, r.name+".log") }

func (r *replica) start(t *testing.T) {
	f, err := os.OpenFile(r.logPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(r.binary, "worker")
	cmd.Env = append(os.Environ(), append(r.env, "PLATFORM_HTTP_ADDR="+r.addr)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	r.mu.Lock()
	r.cmd, r.done, r.killed = cmd, done, false
	r.mu.Unlock()
}

func (r *replica) exitedOnItsOwn() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.killed {
		return false
	}
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// kill is SIGKILL: no deferred function, no graceful stop, sockets torn down mid-request.
func (r *replica) kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.killed = true
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

func (r *replica) stop(t *testing.T) {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.killed = true
	r.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(45 * time.Second):
		t.Errorf("%s did not stop within 45s of SIGTERM", r.name)
		r.kill()
	}
}

func run(t *testing.T, binary string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("platform %s: %v: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// ---- what the providers received ------------------------------------------------------------

// ---- the verdict -----------------------------------------------------------------------------

type verdict struct {
	lost, duplicated, unknown, poison int
	// resent counts endpoint deliveries the receiver got more than once under their one key:
	// at least once after a kill inside the send window, one effect for a receiver that
	// deduplicates on the key.
	resent   int
	problems []string
}

func (v *verdict) problem(format string, a ...any) {
	if len(v.problems) < 40 {
		v.problems = append(v.problems, fmt.Sprintf(format, a...))
	}
}

func check(t *testing.T, ns platform.Namespace, want *expected, smtp *testenv.SMTPServer, hooks *testenv.WebhookReceiver) *verdict {
	v := &verdict{}
	ctx := context.Background()

	// History: one row per occurrence, none for anything else.
	rows := map[string]int{}
	for _, e := range listTable(t, ns.Table(platform.TableEntityHistory)) {
		rows[str(e["EventKey"])]++
	}
	for key := range want.history {
		switch n := rows[key]; {
		case n == 0:
			v.lost++
			v.problem("history row of %s missing", key)
		case n > 1:
			v.duplicated++
			v.problem("%d history rows for %s", n, key)
		}
	}
	for key := range rows {
		if !want.history[key] {
			v.duplicated++
			v.problem("a history row nobody asked for: %s", key)
		}
	}

	// Jobs and messages: each exists, each message settled Sent (or Unknown, reported).
	jobs := map[string]string{}
	for _, e := range listTable(t, ns.Table(tables.TableNotificationJobs)) {
		jobs[str(e["JobKey"])] = str(e["State"])
	}
	for key := range want.jobs {
		if _, ok := jobs[key]; !ok {
			v.lost++
			v.problem("job %s missing", key)
		}
	}
	for key, state := range jobs {
		if !want.jobs[key] {
			v.duplicated++
			v.problem("a job nobody asked for: %s (%s)", key, state)
		}
	}
	messages := map[string]string{}
	for _, e := range listTable(t, ns.Table(tables.TableOutgoingMessages)) {
		messages[str(e["MessageKey"])] = str(e["State"])
	}
	received := map[string]int{}
	for _, m := range smtp.Mails() {
		received[m.Header.Get("X-Platform-Message-Key")]++
	}
	got, forged := hooks.Received()
	for key, n := range got {
		received[key] += n
	}
	if forged > 0 {
		v.problem("%d webhook deliveries with a signature that does not verify", forged)
	}
	for key, n := range received {
		if _, _, endpoint := platform.ParseDeliveryKey(key); n > 1 && endpoint {
			// At least once by contract: a delivery cut off by a kill is sent again, same key.
			v.resent++
			t.Logf("endpoint delivery %s received %d times (resent after a kill inside the send window)", key, n)
		} else if n > 1 {
			v.duplicated++
			v.problem("%s received %d times", key, n)
		}
		if _, ok := want.messages[key]; !ok {
			v.duplicated++
			v.problem("received a message nobody asked for: %s", key)
		}
	}
	for key := range want.messages {
		state, ok := messages[key]
		switch {
		case !ok:
			v.lost++
			v.problem("message %s missing", key)
		case state == string(platform.MessageSent) && received[key] == 0:
			v.lost++
			v.problem("message %s is Sent but the provider never got it", key)
		case state == string(platform.MessageUnknown) && want.messages[key] == "webhook":
			v.lost++
			v.problem("endpoint delivery %s is Unknown: endpoint deliveries are at least once, resent after a kill", key)
		case state == string(platform.MessageUnknown):
			v.unknown++
			t.Logf("Unknown (as it must be after a crash in the send window): %s, received %d time(s)", key, received[key])
		case state != string(platform.MessageSent):
			v.lost++
			v.problem("message %s is %s", key, state)
		}
	}
	for key := range messages {
		if _, ok := want.messages[key]; !ok {
			v.duplicated++
			v.problem("a message nobody asked for: %s", key)
		}
	}

	// Event log: one row per SourceKey.
	logged := map[string]int{}
	for _, e := range listTable(t, ns.Table(tables.TablePlatformEventLog)) {
		logged[str(e["RowKey"])]++
	}
	for key := range want.sources {
		if logged[key] != 1 {
			v.lost++
			v.problem("PlatformEventLog has %d rows for SourceKey %s", logged[key], key)
		}
	}

	// Queues drained; poison holds the hostile inputs and nothing else.
	q, err := queues.New(storage.Account{}, ns)
	if err == nil {
		err = q.SetShards(*flagShards)
	}
	if err != nil {
		t.Fatal(err)
	}
	set, err := q.WorkQueues(ctx) // every shard of every work queue, and their poison twins
	if err != nil {
		t.Fatal(err)
	}
	for _, work := range platform.WorkQueues {
		for _, name := range set[work].Queues {
			if n, err := q.ApproximateCount(ctx, name); err != nil || n != 0 {
				v.lost++
				v.problem("queue %s holds %d messages (%v)", name, n, err)
			}
		}
	}
	poisoned := map[string]bool{}
	for _, work := range platform.WorkQueues {
		for _, name := range set[work].Poisoned {
			for _, rec := range drainPoison(t, ns, platform.PoisonQueue(name)) {
				body := strings.TrimSpace(rec.Body)
				if _, ok := want.hostile[body]; ok && work == platform.QueueEntityEvents {
					poisoned[body] = true
					continue
				}
				v.lost++
				v.problem("%s poisoned a message that is not hostile: %s: %.200s", name, rec.Reason, rec.Body)
			}
		}
	}
	v.poison = len(poisoned)
	for body, name := range want.hostile {
		if !poisoned[body] {
			v.problem("hostile input %q was not poisoned", name)
		}
	}
	return v
}

func listTable(t *testing.T, name string) []map[string]any {
	svc, err := aztables.NewServiceClientFromConnectionString(storage.DevelopmentConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	pager := svc.NewClient(name).NewListEntitiesPager(nil)
	var out []map[string]any
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			if strings.Contains(err.Error(), "TableNotFound") {
				return nil
			}
			t.Fatalf("list %s: %v", name, err)
		}
		for _, raw := range page.Entities {
			var e map[string]any
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
	}
	return out
}

func drainPoison(t *testing.T, ns platform.Namespace, name string) []queues.PoisonRecord {
	svc, err := azqueue.NewServiceClientFromConnectionString(storage.DevelopmentConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	qc := svc.NewQueueClient(ns.Queue(name))
	var out []queues.PoisonRecord
	for {
		resp, err := qc.DequeueMessages(context.Background(), &azqueue.DequeueMessagesOptions{
			NumberOfMessages: to.Ptr(int32(32)), VisibilityTimeout: to.Ptr(int32(600))})
		if err != nil {
			if strings.Contains(err.Error(), "QueueNotFound") {
				return nil
			}
			t.Fatalf("dequeue %s: %v", name, err)
		}
		if len(resp.Messages) == 0 {
			return out
		}
		for _, m := range resp.Messages {
			rec, ok := queues.DecodePoison(*m.MessageText)
			if !ok {
				t.Fatalf("%s holds a message that is not a poison record: %.200s", name, *m.MessageText)
			}
			out = append(out, rec)
		}
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
