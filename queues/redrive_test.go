package queues_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
)

func TestRedriveMovesPoisonBackUnchanged(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	var fixed atomic.Bool
	var ok calls
	cons := start(t, c, queues.ConsumerConfig{Handler: func(_ context.Context, m *queues.Message) error {
		if !fixed.Load() {
			return platform.Permanent(errors.New("no handler for this yet"))
		}
		ok.add(string(m.Body))
		return nil
	}})
	bodies := []string{`{"a":"<&>"}`, "second\nline"}
	enqueue(t, c, bodies...)
	testenv.Eventually(t, 20*time.Second, "both poisoned", func() bool { return len(poisoned(t, c)) == 2 })

	fixed.Store(true)
	n, err := c.Redrive(context.Background(), work+platform.PoisonSuffix)
	if err != nil || n != 2 {
		t.Fatalf("redrive moved %d: %v", n, err)
	}
	testenv.Eventually(t, 20*time.Second, "both handled after redrive", func() bool {
		return ok.get(bodies[0]) == 1 && ok.get(bodies[1]) == 1
	})
	if count(t, c, platform.PoisonQueue(work)) != 0 {
		t.Fatal("poison queue not empty after redrive")
	}
	_ = cons
}

// Anyone who can enqueue can write a poison queue: a record whose bodyBlob names another blob
// (a tenant's payload) is not redriven into the work queue, and Redrive says so.
func TestRedriveRefusesAPoisonRecordNamingAnotherBlob(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	if err := c.Blobs().Put(context.Background(), platform.ContainerEventPayloads, "bu-1/secret.json", []byte(`{"ssn":"SECRET"}`)); err != nil {
		t.Fatal(err)
	}
	for _, rec := range []string{`{"reason":"x","queue":"entity-events","bodyBlob":"bu-1/secret.json"}`, `{"reason":"x","queue":"entity-events","body":"fine"}`} {
		if err := c.Enqueue(context.Background(), platform.PoisonQueue(work), rec, 0); err != nil {
			t.Fatal(err)
		}
	}
	n, err := c.Redrive(context.Background(), work)
	if n != 1 || err == nil || !strings.Contains(err.Error(), "bu-1/secret.json") {
		t.Fatalf("redrive moved %d: %v; want 1 moved and the other named", n, err)
	}
	texts, err := c.Peek(context.Background(), work)
	if err != nil || len(texts) != 1 || texts[0] != "fine" {
		t.Fatalf("work queue %q (%v), want only the record written like the worker's", texts, err)
	}
}

func TestPoisonRecordKeepsAnOversizedBodyInABlob(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	start(t, c, queues.ConsumerConfig{Handler: func(context.Context, *queues.Message) error {
		return platform.Permanent(errors.New("too weird"))
	}})
	// Quotes double in the poison record's JSON: a body that fits a message alone no longer
	// fits inside the record.
	body := strings.Repeat(`"`, 40_000)
	enqueue(t, c, body)
	testenv.Eventually(t, 20*time.Second, "poisoned", func() bool { return len(poisoned(t, c)) == 1 })
	rec := poisoned(t, c)[0]
	if rec.Body != "" || rec.BodyBlob == "" {
		t.Fatalf("record %+v", rec)
	}
	n, err := c.Redrive(context.Background(), work)
	if err != nil || n != 1 {
		t.Fatalf("redrive: %d, %v", n, err)
	}
	texts, err := c.Peek(context.Background(), work)
	if err != nil {
		t.Fatal(err)
	}
	// The consumer may already hold it; if it is visible, it is the original.
	for _, text := range texts {
		if text != body {
			t.Fatalf("redriven body differs: %d bytes", len(text))
		}
	}
}
