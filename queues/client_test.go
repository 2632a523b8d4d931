package queues_test

import (
	"context"
	"testing"
	"time"
)

// OldestAge is 0 for a missing queue and an empty one, and the first visible message's age
// otherwise (to the second the service gives: never less than the truth, at most a second more).
func TestOldestAgeIsTheFirstVisibleMessages(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := context.Background()
	if age, err := c.OldestAge(ctx, "missing"); err != nil || age != 0 {
		t.Fatalf("a missing queue: %s, %v", age, err)
	}
	if err := c.Create(ctx, work); err != nil {
		t.Fatal(err)
	}
	if age, err := c.OldestAge(ctx, work); err != nil || age != 0 {
		t.Fatalf("an empty queue: %s, %v", age, err)
	}
	if err := c.Enqueue(ctx, work, "later", time.Hour); err != nil { // invisible: not counted
		t.Fatal(err)
	}
	if age, err := c.OldestAge(ctx, work); err != nil || age != 0 {
		t.Fatalf("a queue with only a hidden message: %s, %v", age, err)
	}
	began := time.Now()
	enqueue(t, c, "first")
	time.Sleep(1500 * time.Millisecond) // the age must show time passing, at the service's one-second grain
	age, err := c.OldestAge(ctx, work)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(began); age < time.Second || age > waited+time.Second {
		t.Fatalf("age %s after %s", age, waited)
	}
}
