package lifecycle_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/platform/platform/internal/lifecycle"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// journal records starts and stops in the order they happen.
type journal struct {
	mu    sync.Mutex
	lines []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines = append(j.lines, s)
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.lines)
}

func piece(j *journal, name string, startErr error) lifecycle.Component {
	return lifecycle.Funcs(name,
		func(context.Context) error {
			if startErr != nil {
				return startErr
			}
			j.add("start " + name)
			return nil
		},
		func(context.Context) error { j.add("stop " + name); return nil })
}

func TestGroupStartsInOrderAndStopsInReverse(t *testing.T) {
	var j journal
	var g lifecycle.Group
	g.Add("store", piece(&j, "store", nil))
	g.Add("bus", piece(&j, "bus", nil))
	g.Add("consumers", piece(&j, "consumer", nil))
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "already started") {
		t.Fatalf("second Start: %v", err)
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	want := []string{"start store", "start bus", "start consumer", "stop consumer", "stop bus", "stop store"}
	if got := j.get(); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if err := g.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "runs once") {
		t.Fatalf("Start after Stop: %v", err)
	}
}

func TestGroupStopBeforeStartIsANoOp(t *testing.T) {
	var g lifecycle.Group
	g.Add("x", lifecycle.Go("loop", func(ctx context.Context) { <-ctx.Done() }))
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err == nil {
		t.Fatal("Start after Stop started")
	}
}

func TestFailedStartStopsWhatStartedAndLeavesNoGoroutine(t *testing.T) {
	var j journal
	var g lifecycle.Group
	loopDone := make(chan struct{})
	g.Add("store", piece(&j, "store", nil))
	g.Add("loop", lifecycle.Go("loop", func(ctx context.Context) { <-ctx.Done(); close(loopDone) }))
	g.Add("broken", piece(&j, "broken", errors.New("port in use")))
	g.Add("never", piece(&j, "never", nil))
	err := g.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "start broken: port in use") {
		t.Fatalf("Start: %v", err)
	}
	select {
	case <-loopDone:
	default:
		t.Fatal("the loop started before the failure is still running")
	}
	if got, want := j.get(), []string{"start store", "stop store"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatalf("Stop after a failed Start: %v", err)
	}
}

func TestStopWithAnExpiredContextReportsWhatItAbandoned(t *testing.T) {
	release := make(chan struct{})
	stubborn := lifecycle.Go("stubborn loop", func(ctx context.Context) { <-release })
	polite := lifecycle.Go("polite loop", func(ctx context.Context) { <-ctx.Done() })
	var g lifecycle.Group
	g.Add("loops", stubborn, polite)
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	began := time.Now()
	err := g.Stop(ctx)
	close(release) // let the stubborn loop go, so that it does not leak
	if !errors.Is(err, lifecycle.ErrAbandoned) || !strings.Contains(err.Error(), "stubborn loop") || strings.Contains(err.Error(), "polite") {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(began); d > lifecycle.CancelGrace+time.Second {
		t.Fatalf("a hard stop took %s", d)
	}
}

func TestEveryRunsAtOnceAndUntilStopped(t *testing.T) {
	runs := make(chan struct{}, 100)
	task := lifecycle.Every("tick", 5*time.Millisecond, func(context.Context) { runs <- struct{}{} })
	if err := task.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case <-runs:
		case <-time.After(5 * time.Second):
			t.Fatal("the loop did not run")
		}
	}
	// Stop joins the loop; goleak (TestMain) fails the package if it were still running.
	if err := task.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}
