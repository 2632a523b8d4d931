package faults_test

import (
	"context"
	"errors"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/faults"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// enqueueThrough sends one message through an injector that fails every request in kind k
// (no retries), and returns the error and how many messages the queue then holds.
func enqueueThrough(t *testing.T, k faults.Kind) (int, error) {
	t.Helper()
	ns := testenv.Namespace(t)
	clean, err := queues.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := clean.Enqueue(ctx, platform.QueueEntityEvents, "warm-up", 0); err != nil { // creates the queue
		t.Fatal(err)
	}
	inj, err := faults.New(1, 1, k)
	if err != nil {
		t.Fatal(err)
	}
	faulty, err := queues.New(storage.Account{Policies: []policy.Policy{inj}, Retry: &policy.RetryOptions{MaxRetries: -1}}, ns)
	if err != nil {
		t.Fatal(err)
	}
	sendErr := faulty.Enqueue(ctx, platform.QueueEntityEvents, "the message", 0)
	texts, err := clean.Peek(ctx, platform.QueueEntityEvents)
	if err != nil {
		t.Fatal(err)
	}
	if _, failed := inj.Counts(); failed[k.String()] != 1 {
		t.Fatalf("injected %v, want one %s", failed, k)
	}
	return len(texts) - 1, sendErr
}

func TestFaultsBeforeTheServiceDoNothing(t *testing.T) {
	t.Parallel()
	for _, k := range []faults.Kind{faults.Busy, faults.Internal, faults.Timeout} {
		n, err := enqueueThrough(t, k)
		if err == nil || n != 0 {
			t.Fatalf("%s: error %v and %d messages, want an error and none", k, err, n)
		}
	}
}

func TestLostRepliesHideWorkThatWasDone(t *testing.T) {
	t.Parallel()
	for _, k := range []faults.Kind{faults.ReplyLost, faults.LateError} {
		n, err := enqueueThrough(t, k)
		if err == nil || n != 1 {
			t.Fatalf("%s: error %v and %d messages, want an error and the message enqueued", k, err, n)
		}
		var se *storage.Error
		if k == faults.LateError && !errors.As(err, &se) {
			t.Fatalf("%s: %T %v, want a storage error", k, err, err)
		}
	}
}

func TestRateOutsideZeroToOneIsRefused(t *testing.T) {
	if _, err := faults.New(1.5, 1); err == nil {
		t.Fatal("a rate above 1 was accepted")
	}
}
