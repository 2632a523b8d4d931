package settings_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platform/platform/settings"
)

// countingDB is the real database, its reads counted.
type countingDB struct {
	*settings.DB
	reads atomic.Int32
}

func (c *countingDB) Option(ctx context.Context, unit int64, typ int) (settings.Option, error) {
	c.reads.Add(1)
	return c.DB.Option(ctx, unit, typ)
}

func (c *countingDB) Subscribers(ctx context.Context, unit int64, typ int) ([]settings.Subscriber, error) {
	c.reads.Add(1)
	return c.DB.Subscribers(ctx, unit, typ)
}

// The cache answers from what it read for TTL, an option not seeded included; a change in the
// database shows after TTL, or at once after Invalidate; a caller that changes what it got
// changes nothing cached.
func TestCacheKeepsReadsForItsTTLUntilInvalidated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := settings.Open(ctx, filepath.Join(t.TempDir(), "settings.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Exec(ctx, `INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds) VALUES (42, 101, TRUE, 'email', 0);
		INSERT INTO NotificationSubscriber (BusinessUnitId, NotificationEventTypeId, Channel, Address) VALUES (42, 101, 'email', 'a@example.com');`); err != nil {
		t.Fatal(err)
	}
	src := &countingDB{DB: db}
	const ttl = 300 * time.Millisecond
	c := settings.NewCache(src, ttl)
	read := func() (settings.Option, []settings.Subscriber) {
		t.Helper()
		o, err := c.Option(ctx, 42, 101)
		if err != nil {
			t.Fatal(err)
		}
		subs, err := c.Subscribers(ctx, 42, 101)
		if err != nil {
			t.Fatal(err)
		}
		return o, subs
	}
	o, subs := read()
	o.Channels[0], subs[0].Address = "changed-by-caller", "changed-by-caller"
	o, subs = read()
	if src.reads.Load() != 2 || o.Channels[0] != "email" || subs[0].Address != "a@example.com" {
		t.Fatalf("%d reads, option %+v, subscribers %+v: want 2 reads and the database's values", src.reads.Load(), o, subs)
	}
	for range 3 {
		if _, err := c.Option(ctx, 7, 101); !errors.Is(err, settings.ErrNotSeeded) {
			t.Fatalf("unit 7: %v, want ErrNotSeeded", err)
		}
	}
	if src.reads.Load() != 3 {
		t.Fatalf("%d reads after asking three times for an option not seeded, want 3", src.reads.Load())
	}

	if err := db.Exec(ctx, `UPDATE NotificationOption SET IsEnabled = FALSE WHERE BusinessUnitId = 42`); err != nil {
		t.Fatal(err)
	}
	if o, _ := read(); !o.IsEnabled {
		t.Fatal("the change was seen before TTL without Invalidate")
	}
	c.Invalidate()
	if o, _ := read(); o.IsEnabled {
		t.Fatal("the change was not seen after Invalidate")
	}
	if err := db.Exec(ctx, `UPDATE NotificationOption SET IsEnabled = TRUE WHERE BusinessUnitId = 42`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl)
	if o, _ := read(); !o.IsEnabled {
		t.Fatal("the change was not seen after TTL")
	}
	// TTL <= 0 keeps nothing.
	before := src.reads.Load()
	off := settings.NewCache(src, 0)
	for range 2 {
		if _, err := off.Option(ctx, 42, 101); err != nil {
			t.Fatal(err)
		}
	}
	if src.reads.Load() != before+2 {
		t.Fatalf("a cache with TTL 0 read %d times for 2 asks", src.reads.Load()-before)
	}
}
