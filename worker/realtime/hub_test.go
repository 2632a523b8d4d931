package realtime

import (
	"context"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
)

// A poll reads other replicas' rows fresh and leaves out its own (it has them), then sweeps
// every replica's rows once they are older than Lateness: a row that committed late, below an
// id already read, still reaches every replica, and each stream gets it once.
func TestPollReadsOthersFreshAndSweepsLateRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tc, err := tables.New(storage.Account{}, testenv.Namespace(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.CreateTables(ctx, tables.TableChanges); err != nil {
		t.Fatal(err)
	}
	store := tc.Changes()
	cfg := Config{Lateness: 2 * time.Second}
	cfg.setDefaults()
	a, b := newHub(cfg, store, logrus.New()), newHub(cfg, store, logrus.New())
	_, _, sub, err := b.Subscribe("", func(*platform.Change) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	put := func(id, key string) {
		t.Helper()
		row := tables.ChangeRow{ID: id, Writer: a.writer, Change: &platform.Change{EventKey: key, EntityTypeID: 1, EntityIdentity: "1", BusinessUnitID: 42, ChangedFields: []string{}}}
		if err := store.PutBatch(ctx, []tables.ChangeRow{row}); err != nil {
			t.Fatal(err)
		}
	}
	has := func(h *Hub, key string) bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.keys[key]
	}

	// A takes an id, B reads a newer change of A's, and only then does the first commit.
	late := platform.NewSourceKey()
	time.Sleep(5 * time.Millisecond)
	put(platform.NewSourceKey(), "newer")
	b.poll(ctx)
	a.poll(ctx)
	if !has(b, "newer") {
		t.Fatal("B did not read A's change at its next poll")
	}
	if has(a, "newer") {
		t.Fatal("A read its own change fresh: a poll must leave out the rows its replica wrote")
	}
	put(late, "late")
	b.poll(ctx)
	if has(b, "late") {
		t.Fatal("B read a row below the newest it had read fresh; the test no longer shows the late case")
	}
	// Past Lateness, the sweep reads it, on every replica.
	deadline := time.Now().Add(10 * time.Second)
	for !(has(a, "late") && has(b, "late")) {
		if time.Now().After(deadline) {
			t.Fatalf("the late row was not swept within 10s (A: %v, B: %v)", has(a, "late"), has(b, "late"))
		}
		time.Sleep(200 * time.Millisecond)
		a.poll(ctx)
		b.poll(ctx)
	}
	// B's stream got each change once, though B read "newer" fresh and again in the sweep.
	got := map[string]int{}
	for len(sub.C) > 0 {
		e := <-sub.C
		got[e.Change.EventKey]++
	}
	if got["newer"] != 1 || got["late"] != 1 || len(got) != 2 {
		t.Fatalf("B's stream got %v, want newer and late once each", got)
	}
}
