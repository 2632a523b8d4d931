package tables_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
)

// gets counts the GET requests a client makes.
type gets struct{ n atomic.Int32 }

func (g *gets) Do(req *policy.Request) (*http.Response, error) {
	if req.Raw().Method == http.MethodGet {
		g.n.Add(1)
	}
	return req.Next()
}

// A job's cancellation is the later of its key's cancellation in every business unit and in
// the job's own, read in one request; another unit's cancellation is not the job's.
func TestCancellationsAreScopedToABusinessUnit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	counted := &gets{}
	tc, err := tables.New(storage.Account{Policies: []policy.Policy{counted}}, testenv.Namespace(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.CreateTables(ctx, tables.TableCancellations); err != nil {
		t.Fatal(err)
	}
	c := tc.Cancellations()
	key := "booking/9#reminder'"
	cancel := func(bu int64) {
		t.Helper()
		if _, err := c.Cancel(ctx, key, bu); err != nil {
			t.Fatal(err)
		}
	}
	check := func(bu int64, want time.Time) {
		t.Helper()
		counted.n.Store(0)
		at, err := c.CancelledAt(ctx, key, bu)
		if err != nil {
			t.Fatal(err)
		}
		if !at.Equal(want) || counted.n.Load() != 1 {
			t.Errorf("unit %d: cancelled at %v in %d requests, want %v in 1", bu, at, counted.n.Load(), want)
		}
	}
	var zero time.Time
	check(5, zero)
	cancel(5)
	five, _ := c.CancelledAt(ctx, key, 5)
	check(6, zero)
	cancel(0)
	every, _ := c.CancelledAt(ctx, key, 0)
	if !every.After(five) {
		t.Fatalf("the cancellation in every unit (%v) is not after unit 5's (%v)", every, five)
	}
	check(5, every)
	check(6, every)
	cancel(5)
	later, _ := c.CancelledAt(ctx, key, 5)
	if !later.After(every) {
		t.Fatalf("unit 5's second cancellation (%v) is not after the one in every unit (%v)", later, every)
	}
	check(6, every)
	if _, err := c.Cancel(ctx, key, -1); !errors.Is(err, platform.ErrInvalidInput) {
		t.Errorf("cancel in unit -1: %v, want invalid input", err)
	}
}
