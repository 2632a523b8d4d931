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
	var left *queues.LeftError
	if n != 1 || !errors.As(err, &left) || len(left.Why) != 1 || !strings.Contains(err.Error(), "bu-1/secret.json") {
		t.Fatalf("redrive moved %d: %v; want 1 moved and the other named (a LeftError)", n, err)
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

// RedriveOne moves exactly the message it names, and the others it looked at are visible
// again at once (a peek right after sees them); an id not there is ErrNotFound, and a record
// not written like the consumer's stays where it is.
func TestRedriveOneMovesThatMessageAndShowsTheOthersAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClient(t)
	texts := []string{
		`{"reason":"bad","queue":"entity-events","attempts":1,"body":"first"}`,
		`{"reason":"bad","queue":"entity-events","attempts":5,"body":"second","host":"h-1"}`,
		`not a record at all`,
		`{"reason":"x","queue":"entity-events","bodyBlob":"bu-1/secret.json"}`,
	}
	for _, text := range texts {
		if err := c.Enqueue(ctx, platform.PoisonQueue(work), text, 0); err != nil {
			t.Fatal(err)
		}
	}
	peeked, err := c.PeekPoison(ctx, work)
	if err != nil || len(peeked) != 4 {
		t.Fatalf("peeked %+v (%v), want 4", peeked, err)
	}
	if p := peeked[1]; p.ID == "" || !p.IsRecord || p.Record.Body != "second" || p.Record.Attempts != 5 || p.Record.Host != "h-1" || p.InsertedAt.IsZero() {
		t.Fatalf("second peeked as %+v", p)
	}
	if p := peeked[2]; p.IsRecord || p.Record.Body != "not a record at all" {
		t.Fatalf("a message that is no record peeked as %+v", p)
	}

	if err := c.RedriveOne(ctx, work+platform.PoisonSuffix, peeked[1].ID); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Peek(ctx, work); err != nil || len(got) != 1 || got[0] != "second" {
		t.Fatalf("work queue %q (%v), want only the one redriven", got, err)
	}
	left, err := c.PeekPoison(ctx, work)
	if err != nil || len(left) != 3 {
		t.Fatalf("poison visible right after: %d (%v), want the other 3 at once", len(left), err)
	}
	if err := c.RedriveOne(ctx, work, "no-such-id"); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("an id not there: %v, want ErrNotFound", err)
	}
	var refused *queues.LeftError
	if err := c.RedriveOne(ctx, work, peeked[3].ID); !errors.As(err, &refused) || !strings.Contains(err.Error(), "bu-1/secret.json") ||
		!strings.Contains(err.Error(), peeked[3].ID) {
		t.Fatalf("a record naming another blob: %v, want it refused by id and name (a LeftError)", err)
	}
	if left, err := c.PeekPoison(ctx, work); err != nil || len(left) != 3 {
		t.Fatalf("poison visible after the refusals: %d (%v), want 3", len(left), err)
	}
	if got, _ := c.Peek(ctx, work); len(got) != 1 {
		t.Fatalf("work queue %q, want still one", got)
	}
}
