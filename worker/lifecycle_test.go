package worker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.uber.org/goleak"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/lifecycle"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker"
)

// These tests are not parallel: goleak looks at every goroutine of the process, so nothing
// else may start one while they run. (Parallel tests of the package wait, paused, until the
// sequential ones are done; their goroutines are in the snapshot IgnoreCurrent takes.)

// refuse answers 403 to the requests it matches, as storage does to a caller it will not
// serve: not retried, so the failure is immediate.
type refuse struct {
	method, path string // the request's method, and a substring of its path
	hits         atomic.Int32
}

func (f *refuse) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if r.Method != f.method || !strings.Contains(r.URL.Path, f.path) {
		return req.Next()
	}
	f.hits.Add(1)
	return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Request: r,
		Header: http.Header{"X-Ms-Error-Code": {"AuthorizationFailure"}, "Content-Type": {"application/json"}},
		Body:   io.NopCloser(strings.NewReader(`{"odata.error":{"code":"AuthorizationFailure","message":{"value":"injected"}}}`)),
	}, nil
}

// lifecycleConfig is a worker with every piece on: the HTTP server, the outbox, the buses.
func lifecycleConfig(t *testing.T, policies ...policy.Policy) worker.Config {
	return worker.Config{
		Namespace: testenv.Namespace(t), Logger: testenv.Logger(t),
		Account:     storage.Account{Policies: policies},
		SettingsDSN: filepath.Join(t.TempDir(), "settings.db"),
		HTTPAddr:    "127.0.0.1:0",
	}
}

// leaks ignores what outlives any test by design: the goroutines already there, and the
// storage clients' idle keep-alive connections.
func leaks() []goleak.Option {
	return []goleak.Option{goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop")}
}

// queued is how many messages a peek sees on entity-events: visible ones, that no consumer
// has taken.
func queued(t *testing.T, w *worker.Worker) int {
	t.Helper()
	texts, err := w.Queues().Peek(context.Background(), platform.QueueEntityEvents)
	if err != nil && !errors.Is(err, platform.ErrNotFound) {
		t.Fatal(err)
	}
	return len(texts)
}

func TestAStartThatFailsHalfWayLeavesNothingRunningAndConsumesNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault *refuse
	}{
		// Setting up storage fails (a queue cannot be created): nothing has started yet.
		{"queue setup", &refuse{method: http.MethodPut, path: "-" + platform.QueueNotificationDistributor}},
		// Reading the webhook endpoints fails: the settings database, the HTTP server and the
		// change writer and poller have started, and must be stopped.
		{"endpoint cache", &refuse{method: http.MethodGet, path: "WebhookEndpoints()"}},
		// A component of the deployment's own fails: everything but the work has started.
		{"component", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := leaks()
			var cfg worker.Config
			failing := lifecycle.Funcs("failing component", func(context.Context) error { return errors.New("no licence") }, nil)
			if tc.fault != nil {
				cfg = lifecycleConfig(t, tc.fault)
			} else {
				cfg = lifecycleConfig(t)
				cfg.Components = []lifecycle.Component{failing}
			}
			w, err := worker.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := w.Queues().Create(ctx, platform.QueueEntityEvents); err != nil {
				t.Fatal(err)
			}
			send(t, w, event(11, 1, 1, attendee, "2026-11-22T10:00:00Z", `{}`))
			err = w.Start(ctx)
			if err == nil || (tc.fault != nil && tc.fault.hits.Load() == 0) {
				t.Fatalf("Start: %v", err)
			}
			t.Logf("Start failed as it should: %v", err)
			goleak.VerifyNone(t, opts...)
			if n := queued(t, w); n != 1 {
				t.Fatalf("the event is not on the queue untouched (peek sees %d): a consumer took it", n)
			}
			if rows := timeline(t, w, 1, attendee); len(rows) != 0 {
				t.Fatalf("a failed start wrote %d history rows", len(rows))
			}
			if err := w.Stop(ctx); err != nil {
				t.Fatalf("Stop after a failed Start: %v", err)
			}
			if err := w.Start(ctx); err == nil {
				t.Fatal("a worker whose Start failed started again")
			}
		})
	}
}

func TestASecondStartStartsNothingAndStopLeavesNothing(t *testing.T) {
	opts := leaks()
	w, err := worker.New(lifecycleConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	w, err = worker.New(lifecycleConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	addr := w.HTTPAddr()
	if err := w.Start(ctx); err == nil || !strings.Contains(err.Error(), "already started") {
		t.Fatalf("second Start: %v", err)
	}
	if w.HTTPAddr() != addr {
		t.Fatal("the second Start started a second HTTP server")
	}
	if resp, err := http.Get("http://" + addr + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := w.Start(ctx); err == nil || !strings.Contains(err.Error(), "runs once") {
		t.Fatalf("Start after Stop: %v", err)
	}
	goleak.VerifyNone(t, opts...)
}

// stuck is a concern whose work never finishes by itself.
type stuck struct{ entered atomic.Int32 }

func (*stuck) Name() string                       { return "stuck" }
func (*stuck) Accepts(*platform.EntityEvent) bool { return true }
func (s *stuck) Process(ctx context.Context, _ *platform.EntityEvent) error {
	s.entered.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

func TestStopWithAnExpiredContextReportsWhatItAbandoned(t *testing.T) {
	opts := leaks()
	concern := &stuck{}
	cfg := lifecycleConfig(t)
	cfg.PostProcessors = []worker.PostProcessor{concern}
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	send(t, w, event(11, 1, 1, attendee, "2026-11-22T10:00:00Z", `{}`),
		event(11, 1, 1, attendee, "2026-11-22T10:00:01Z", `{}`),
		event(11, 1, 1, attendee, "2026-11-22T10:00:02Z", `{}`))
	testenv.Eventually(t, 20*time.Second, "three handlers in the stuck concern", func() bool { return concern.entered.Load() == 3 })

	expired, cancelExpired := context.WithCancel(context.Background())
	cancelExpired()
	began := time.Now()
	err = w.Stop(expired)
	if !errors.Is(err, lifecycle.ErrAbandoned) || !strings.Contains(err.Error(), "consumer entity-events: 3 in-flight handler(s) cancelled") {
		t.Fatalf("Stop with an expired context: %v", err)
	}
	if d := time.Since(began); d > lifecycle.CancelGrace+5*time.Second {
		t.Fatalf("a hard stop took %s", d)
	}
	// Abandoned, not deleted: the three messages are still on the queue (hidden until their
	// visibility timeout, when another replica redoes them).
	n, err := w.Queues().ApproximateCount(ctx, platform.QueueEntityEvents)
	if err != nil || n != 3 {
		t.Fatalf("entity-events holds %d messages (%v), want the 3 abandoned", n, err)
	}
	goleak.VerifyNone(t, opts...)
}
