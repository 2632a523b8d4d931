package history_test

import (
	"context"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/history"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Timeline hands the caller's Visible to the table read: a row of a business unit the reader
// may not see never reaches the page.
func TestTimelineKeepsVisible(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := testenv.Namespace(t)
	tc, err := tables.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	b, err := blobs.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.CreateTables(ctx, platform.TableEntityHistory); err != nil {
		t.Fatal(err)
	}
	h := tc.History()
	for i, bu := range []int64{1, 2, 1} {
		r := platform.HistoryRecord{HistoryEventKey: "k" + string(rune('a'+i)), EventTypeID: 41, EntityTypeID: 4, EntityIdentity: "9",
			ActionTypeID: 2, BusinessUnitID: bu, CreatedOn: time.Date(2026, 11, 22, 10, 0, i, 0, time.UTC)}
		if err := h.Put(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	rows, next, err := history.Timeline(ctx, h, b, 4, "9", &tables.TimelineOptions{Limit: 10, Visible: func(bu int64) bool { return bu == 2 }})
	if err != nil || len(rows) != 1 || rows[0].BusinessUnitID != 2 || next != "" {
		t.Fatalf("%d rows %+v, token %q, %v; want business unit 2's one row", len(rows), rows, next, err)
	}
}
