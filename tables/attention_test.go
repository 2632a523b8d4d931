package tables_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
)

// A state scan finds the rows in the asked states, created in the window, of the asked units
// (in the filter, or in memory past the service's 15 comparisons), newest first, with no body;
// More says when the limit cut it.
func TestStateScansFindWhatNeedsAPerson(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tc, err := tables.New(storage.Account{}, testenv.Namespace(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.CreateTables(ctx, tables.TableNotificationJobs, tables.TableOutgoingMessages); err != nil {
		t.Fatal(err)
	}
	jobs, messages := tc.Jobs(), tc.Messages()
	now := time.Now().UTC()
	put := func(key string, unit int64, state platform.JobState, created time.Time) {
		t.Helper()
		j := &platform.NotificationJob{Key: key, NotificationEventTypeID: 201, BusinessUnitID: unit, State: state, Reason: "r'" + key,
			EventData: json.RawMessage(`{"secret":"s"}`), CreatedAt: created}
		if _, _, _, err := jobs.Ensure(ctx, j); err != nil {
			t.Fatal(err)
		}
		m := &platform.OutgoingMessage{Key: key + "|email|a@example.com", JobKey: key, BusinessUnitID: unit, State: platform.MessageState(state),
			Recipient: platform.Recipient{Channel: "email", Address: "a@example.com"}, Subject: "secret", Text: "secret", CreatedAt: created, Attempts: 2}
		if _, _, _, err := messages.Ensure(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	put("j-1", 1, platform.JobConflict, now.Add(-time.Hour))
	put("j-2", 2, platform.JobFailed, now.Add(-2*time.Hour))
	put("j-3", 1, platform.JobFailed, now.Add(-30*time.Minute))
	put("j-old", 1, platform.JobFailed, now.Add(-48*time.Hour))
	put("j-fine", 1, platform.JobGenerated, now)

	keys := func(js []*platform.NotificationJob) []string {
		var out []string
		for _, j := range js {
			out = append(out, j.Key)
		}
		return out
	}
	since := now.Add(-24 * time.Hour)
	states := []string{string(platform.JobConflict), string(platform.JobFailed)}
	manyUnits := []int64{1}
	for u := int64(100); u < 120; u++ {
		manyUnits = append(manyUnits, u)
	}
	for _, c := range []struct {
		name  string
		units []int64
		limit int
		want  []string
		more  bool
	}{
		{"every unit", nil, 0, []string{"j-3", "j-1", "j-2"}, false},
		{"unit 1", []int64{1}, 0, []string{"j-3", "j-1"}, false},
		{"units past the filter's comparisons", manyUnits, 0, []string{"j-3", "j-1"}, false},
		{"no unit", []int64{}, 0, nil, false},
		{"cut by the limit", nil, 2, nil, true},
	} {
		got, end, err := jobs.ListStates(ctx, tables.StateScan{States: states, Since: since, Units: c.units, Limit: c.limit})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		more := end.More
		if end.Incomplete {
			t.Errorf("%s: incomplete after %d pages, want the whole table read", c.name, end.Pages)
		}
		if c.limit != 0 {
			if len(got) != c.limit || more != c.more {
				t.Errorf("%s: %v (more %v), want %d and more", c.name, keys(got), more, c.limit)
			}
			continue
		}
		if !slices.Equal(keys(got), c.want) || more != c.more {
			t.Errorf("%s: %v (more %v), want %v", c.name, keys(got), more, c.want)
		}
		for _, j := range got {
			if len(j.EventData) != 0 || j.Reason != "r'"+j.Key || j.NotificationEventTypeID != 201 || j.CreatedAt.IsZero() {
				t.Errorf("%s: job %+v: want its summary without event data", c.name, j)
			}
		}
	}
	// A state that needs quoting is a literal, not a piece of the filter.
	if got, _, err := jobs.ListStates(ctx, tables.StateScan{States: []string{"Failed' or State eq 'Generated"}, Since: since}); err != nil || len(got) != 0 {
		t.Fatalf("a quoted state: %v (%v), want nothing", keys(got), err)
	}

	ms, end, err := messages.ListStates(ctx, tables.StateScan{States: []string{string(platform.MessageFailed)}, Since: since, Units: []int64{1}})
	if err != nil || end.More || end.Incomplete || len(ms) != 1 {
		t.Fatalf("messages: %d (%+v): %v", len(ms), end, err)
	}
	m := ms[0]
	if m.Key != "j-3|email|a@example.com" || m.JobKey != "j-3" || m.Recipient.Address != "a@example.com" || m.Attempts != 2 ||
		m.Subject != "" || m.Text != "" || m.BusinessUnitID != 1 {
		t.Fatalf("message %+v: want its summary without a body", m)
	}
	if _, _, err := messages.ListStates(ctx, tables.StateScan{Since: since}); err == nil {
		t.Fatal("a scan of no state: want an error")
	}
}

// A scan keeps the newest matches by creation time, wherever they lie in the table: the rows
// are in key order, and here the newest have the last keys, on the last pages. More says that
// more matched than are returned; Incomplete, apart, that the page bound stopped the scan
// before the table's end (what is returned is then the newest of what was read).
func TestStateScanKeepsTheNewestWhereverTheyLie(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tc, err := tables.New(storage.Account{}, testenv.Namespace(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.CreateTables(ctx, tables.TableNotificationJobs); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var all []string // newest first
	for i := range 7 {
		key := "j-" + strconv.Itoa(i) // key order is creation order: the newest come last
		j := &platform.NotificationJob{Key: key, NotificationEventTypeID: 201, BusinessUnitID: 1, State: platform.JobFailed,
			CreatedAt: now.Add(time.Duration(i-10) * time.Minute)}
		if _, _, _, err := tc.Jobs().Ensure(ctx, j); err != nil {
			t.Fatal(err)
		}
		all = append([]string{key}, all...)
	}
	o := tables.StateScan{States: []string{string(platform.JobFailed)}, Since: now.Add(-time.Hour)}
	for _, c := range []struct {
		limit, pageSize int
	}{{3, 0}, {3, 2}, {1, 1}, {7, 3}} {
		o.Limit = c.limit
		got, end, err := tc.Jobs().ListStates(ctx, tables.WithPageSize(o, c.pageSize))
		if err != nil {
			t.Fatal(err)
		}
		if want := all[:c.limit]; !slices.Equal(jobKeys(got), want) || end.More != (c.limit < len(all)) || end.Incomplete {
			t.Errorf("limit %d, pages of %d: %v (%+v), want the newest %v, complete", c.limit, c.pageSize, jobKeys(got), end, want)
		}
	}

	o.Limit, o.MaxPages = 3, 2
	got, end, err := tc.Jobs().ListStates(ctx, tables.WithPageSize(o, 1))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"j-1", "j-0"}; !slices.Equal(jobKeys(got), want) || end.More || !end.Incomplete || end.Pages != 2 {
		t.Errorf("two pages of one: %v (%+v), want %v (all it read), incomplete after 2 pages, not more", jobKeys(got), end, want)
	}
	o.Limit = 1
	if got, end, err = tc.Jobs().ListStates(ctx, tables.WithPageSize(o, 1)); err != nil || !slices.Equal(jobKeys(got), []string{"j-1"}) || !end.More || !end.Incomplete {
		t.Errorf("two pages of one, limit 1: %v (%+v, %v), want [j-1], more and incomplete", jobKeys(got), end, err)
	}
}

func jobKeys(js []*platform.NotificationJob) []string {
	var out []string
	for _, j := range js {
		out = append(out, j.Key)
	}
	return out
}
