package tables_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// timeline writes one attendee's timeline with a row per entry of units, newest first (the
// business unit of each row), and returns the store and the rows' keys, newest first.
func timeline(t *testing.T, units []int64) (*tables.History, string, []string) {
	t.Helper()
	ctx := context.Background()
	tc, err := tables.New(storage.Account{}, testenv.Namespace(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.CreateTables(ctx, platform.TableEntityHistory); err != nil {
		t.Fatal(err)
	}
	h, identity := tc.History(), "6f1c1e4a-0b1d-4c55-9d8e-1f2a3b4c5d6e"
	newest := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	keys := make([]string, len(units))
	errs := make([]error, len(units))
	var wg sync.WaitGroup
	for i, bu := range units {
		r := platform.HistoryRecord{EventTypeID: 12, EntityTypeID: 1, EntityIdentity: identity, ActionTypeID: 2,
			Action: "Update", BusinessUnitID: bu, CreatedOn: newest.Add(-time.Duration(i) * time.Second)}
		r.HistoryEventKey = fmt.Sprintf("entity-history:12:1:%s:%s:2", identity, platform.FormatCreatedOn(r.CreatedOn))
		keys[i] = r.HistoryEventKey
		wg.Go(func() { errs[i] = h.Put(ctx, &r) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return h, identity, keys
}

// walk follows a timeline's tokens to the end and returns every row's key and unit, in order,
// and the number of pages read.
func walk(t *testing.T, h *tables.History, identity string, o tables.TimelineOptions) (keys []string, units []int64, pages int) {
	t.Helper()
	for {
		rows, next, err := h.Timeline(context.Background(), 1, identity, &o)
		if err != nil {
			t.Fatal(err)
		}
		if o.Limit > 0 && len(rows) > o.Limit {
			t.Fatalf("a page of %d rows, limit %d", len(rows), o.Limit)
		}
		for _, r := range rows {
			keys, units = append(keys, r.HistoryEventKey), append(units, r.BusinessUnitID)
		}
		if pages++; next == "" {
			return keys, units, pages
		}
		if pages > 1000 {
			t.Fatal("the timeline's tokens never end")
		}
		o.After = next
	}
}

func only(bu int64) func(int64) bool { return func(b int64) bool { return b == bu } }

// A timeline read for a reader who may see one business unit returns that unit's rows only,
// each once, in order, whatever the page size; a byte bound still ends pages without losing
// or repeating a row; a reader who may see no unit gets nothing.
func TestTimelineShowsOnlyVisibleBusinessUnits(t *testing.T) {
	t.Parallel()
	units := []int64{1, 2, 2, 1, 1, 2, 1, 2, 2, 2, 1, 2}
	h, identity, keys := timeline(t, units)
	var want []string
	for i, bu := range units {
		if bu == 1 {
			want = append(want, keys[i])
		}
	}
	for _, o := range []tables.TimelineOptions{
		{Limit: 1}, {Limit: 2}, {Limit: 3}, {Limit: 50}, {Limit: 1, MaxBytes: 1}, {Limit: 3, MaxBytes: 1},
	} {
		o.Visible = only(1)
		got, gotUnits, pages := walk(t, h, identity, o)
		if !slices.Equal(got, want) || slices.Contains(gotUnits, 2) {
			t.Errorf("limit %d, max bytes %d: %d pages of %v (units %v), want %v", o.Limit, o.MaxBytes, pages, got, gotUnits, want)
		}
	}
	if got, _, _ := walk(t, h, identity, tables.TimelineOptions{Limit: 2}); !slices.Equal(got, keys) {
		t.Errorf("without Visible: %v, want every row %v", got, keys)
	}
	rows, next, err := h.Timeline(context.Background(), 1, identity, &tables.TimelineOptions{Limit: 3, Visible: func(int64) bool { return false }})
	if err != nil || len(rows) != 0 || next != "" {
		t.Errorf("a reader who may see nothing: %d rows, token %q, %v; want none, no token", len(rows), next, err)
	}
}

// A page reads at most max(4×Limit, 200) rows it may not show: then it ends, with a token that
// continues after them, and a later page finds the visible rows further on.
func TestTimelineBoundsTheRowsItSkips(t *testing.T) {
	t.Parallel()
	units := make([]int64, 452)
	for i := range units {
		units[i] = 2
	}
	first, last := 0, len(units)-1
	units[first], units[last] = 1, 1
	h, identity, keys := timeline(t, units)
	o := &tables.TimelineOptions{Limit: 1, Visible: only(1)}
	for i, want := range [][]string{{keys[first]}, nil, {keys[last]}} {
		rows, next, err := h.Timeline(context.Background(), 1, identity, o)
		var got []string
		for _, r := range rows {
			got = append(got, r.HistoryEventKey)
		}
		// Pages 1 and 2 each spend the budget (200 refused rows) and end with a token; page 3
		// reads the last 50 and the oldest row.
		if err != nil || !slices.Equal(got, want) || (next == "") != (i == 2) {
			t.Fatalf("page %d: %v, token %q, %v; want %v", i+1, got, next, err, want)
		}
		o.After = next
	}
}
