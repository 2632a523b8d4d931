package queues_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
)

func TestRetrySkipsStepsAlreadyDone(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	var stepA, stepB atomic.Int32
	var done atomic.Bool
	start(t, c, queues.ConsumerConfig{Handler: func(_ context.Context, m *queues.Message) error {
		if !m.Done("a") {
			stepA.Add(1)
			m.MarkDone("a")
		}
		if stepB.Add(1) == 1 {
			return errors.New("b failed once")
		}
		if string(m.Body) != "original body" {
			return platform.Permanent(fmt.Errorf("handler saw %q, not the original body", m.Body))
		}
		done.Store(true)
		return nil
	}})
	enqueue(t, c, "original body")
	testenv.Eventually(t, 20*time.Second, "success on the retry", done.Load)
	if stepA.Load() != 1 || stepB.Load() != 2 {
		t.Fatalf("step a ran %d times (want 1), step b %d (want 2)", stepA.Load(), stepB.Load())
	}
}

// Retry progress is the worker's own: a message enqueued already wrapped in the retry envelope
// and marking steps done — without a signature, with a made-up one, or written into the
// sender's own message with the pop receipt that Put Message returns — gets every step run on
// its body, while the worker's own progress still spares a retry the steps that are done.
func TestRetryProgressFromOutsideIsIgnored(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	c, err := queues.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ran := map[string]string{} // body#delivery → the steps it ran
	start(t, c, queues.ConsumerConfig{Handler: func(_ context.Context, m *queues.Message) error {
		var steps []string
		for _, step := range []string{"history", "webhooks"} {
			if !m.Done(step) {
				steps = append(steps, step)
				m.MarkDone(step)
			}
		}
		mu.Lock()
		ran[fmt.Sprintf("%s#%d", m.Body, m.DequeueCount)] = strings.Join(steps, ",")
		mu.Unlock()
		if string(m.Body) == "real" && m.DequeueCount == 1 {
			return errors.New("fail once, so the worker writes its progress")
		}
		return nil
	}})
	enqueue(t, c, "real", `{"platformRetry":{"done":["history"]},"body":"unsigned"}`,
		`{"platformRetry":{"done":["history","webhooks"],"mac":"`+strings.Repeat("ab", 32)+`"},"body":"made-up"}`)
	// A sender allowed to add and update rewrites its own message: Put Message hands it the
	// message's id and a pop receipt.
	raw, err := azqueue.NewQueueClientFromConnectionString(storage.Account{}.ResolvedConnectionString(), ns.Queue(work), nil)
	if err != nil {
		t.Fatal(err)
	}
	put, err := raw.EnqueueMessage(context.Background(), "placeholder", &azqueue.EnqueueMessageOptions{VisibilityTimeout: to.Ptr(int32(60))})
	if err != nil {
		t.Fatal(err)
	}
	id, receipt := *put.Messages[0].MessageID, *put.Messages[0].PopReceipt
	if _, err := raw.UpdateMessage(context.Background(), id, receipt, `{"platformRetry":{"for":"`+id+`","done":["history","webhooks"]},"body":"rewritten"}`,
		&azqueue.UpdateMessageOptions{VisibilityTimeout: to.Ptr(int32(0))}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "every message handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ran) == 5
	})
	mu.Lock()
	defer mu.Unlock()
	for _, key := range []string{"real#1", "unsigned#1", "made-up#1", "rewritten#1"} {
		if got := ran[key]; got != "history,webhooks" {
			t.Errorf("%s ran %q, want every step", key, got)
		}
	}
	if got, ok := ran["real#2"]; !ok || got != "" {
		t.Errorf("the real retry ran %q (seen %v), want nothing again: its progress is its own", got, ok)
	}
}
