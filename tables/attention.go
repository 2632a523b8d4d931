package tables

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// StateScan selects the rows of NotificationJobs or OutgoingMessages that need a person: in
// one of States, created at or after Since, of the business units Units accepts.
//
// Both tables are keyed by the row's own key, one partition per row, with no index by state
// or time: a StateScan is a scan. The table service reads every row of the table to answer
// it (it filters on its side, so only the rows that match, and only their selected columns,
// come back), and it answers in pages of at most 1000 matches: one request each, at most
// MaxPages of them. It is for a support page that someone opens, not for a hot path.
type StateScan struct {
	States []string
	Since  time.Time
	// Units, when not nil, are the only business units whose rows are read (a principal scoped
	// to units); nil: every unit.
	Units []int64
	// Limit is the most rows returned, the newest by creation time (1-100, default 100).
	Limit int
	// MaxPages bounds the requests a scan makes (default 20): a table too large to be read in
	// that many ends Incomplete.
	MaxPages int

	pageSize int // matches per page; 0: the service's most (tests make it small)
}

// ScanEnd says how a StateScan ended.
type ScanEnd struct {
	// More: more rows matched than were returned (the newest are).
	More bool
	// Incomplete: the scan stopped at MaxPages before the end of the table. More rows may
	// match, and those returned are the newest of the rows read, not of the table. CreatedAt is
	// not a key: a later Since does not make the scan read less.
	Incomplete bool
	// Pages is how many requests the scan made.
	Pages int
}

// MaxStateScan is the most rows a StateScan returns.
const MaxStateScan = 100

// maxComparisons is the table service's limit of comparisons in one $filter.
const maxComparisons = 15

func (o *StateScan) check() error {
	if o.Limit == 0 {
		o.Limit = MaxStateScan
	}
	if o.MaxPages == 0 {
		o.MaxPages = 20
	}
	switch {
	case len(o.States) == 0:
		return fmt.Errorf("%w: states: want at least one", platform.ErrInvalidInput)
	case o.Limit < 1 || o.Limit > MaxStateScan:
		return fmt.Errorf("%w: limit: want 1-%d, got %d", platform.ErrInvalidInput, MaxStateScan, o.Limit)
	case o.MaxPages < 1:
		return fmt.Errorf("%w: maxPages: want at least 1, got %d", platform.ErrInvalidInput, o.MaxPages)
	}
	return nil
}

// filter is the scan's OData filter: state, creation time and, when they fit within the
// service's limit of comparisons, the business units. units reports whether the units are in
// it; when not, the caller keeps only the rows of Units itself.
func (o *StateScan) filter() (filter string, units bool) {
	states := make([]string, len(o.States))
	for i, s := range o.States {
		states[i] = "State eq " + odataQuote(s)
	}
	filter = "(" + strings.Join(states, " or ") + ") and CreatedAt ge datetime" + odataQuote(o.Since.UTC().Format(timeLayout))
	if o.Units == nil || len(o.States)+1+len(o.Units) > maxComparisons {
		return filter, false
	}
	if len(o.Units) == 0 {
		return filter + " and BusinessUnitId eq -1L", true // sees none: nothing matches (units are > 0)
	}
	ids := make([]string, len(o.Units))
	for i, u := range o.Units {
		ids[i] = "BusinessUnitId eq " + strconv.FormatInt(u, 10) + "L"
	}
	return filter + " and (" + strings.Join(ids, " or ") + ")", true
}

// scan runs o over t, selecting columns, and decodes each row that matches with decode, which
// returns the row's business unit and creation time. It reads every page the table service
// gives, up to o.MaxPages, and returns the newest o.Limit matches, newest first: the table is
// in key order, not creation order, so stopping at the first o.Limit matches would miss newer
// ones further on.
func scan[T any](ctx context.Context, t *aztables.Client, what string, o StateScan, columns []string, decode func([]byte) (*T, int64, time.Time, error)) ([]*T, ScanEnd, error) {
	var end ScanEnd
	if err := o.check(); err != nil {
		return nil, end, err
	}
	filter, unitsFiltered := o.filter()
	pager := t.NewListEntitiesPager(&aztables.ListEntitiesOptions{
		Filter: &filter, Select: to.Ptr(strings.Join(columns, ",")), Top: to.Ptr(int32(cmp.Or(o.pageSize, maxPageEntities))),
	})
	type row struct {
		v  *T
		at time.Time
	}
	var rows []row
	// newest keeps the newest o.Limit rows, newest first; among rows of one time, the first
	// read (key order), so that the answer is stable.
	newest := func() {
		slices.SortStableFunc(rows, func(a, b row) int { return b.at.Compare(a.at) })
		rows = rows[:min(len(rows), o.Limit)]
	}
	matched := 0
	for pager.More() {
		if end.Pages == o.MaxPages {
			end.Incomplete = true
			break
		}
		end.Pages++
		page, err := pager.NextPage(ctx)
		if err != nil {
			if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
				return nil, ScanEnd{Pages: end.Pages}, nil // no table yet: no row
			}
			return nil, end, fmt.Errorf("scan %s by state: %w", what, err)
		}
		for _, raw := range page.Entities {
			v, unit, at, err := decode(raw)
			if err != nil {
				return nil, end, fmt.Errorf("scan %s by state: %w", what, err)
			}
			if !unitsFiltered && o.Units != nil && !slices.Contains(o.Units, unit) {
				continue
			}
			matched++
			if rows = append(rows, row{v, at}); len(rows) >= 4*o.Limit {
				newest() // memory stays a few times Limit, however many match
			}
		}
	}
	newest()
	out := make([]*T, len(rows))
	for i, r := range rows {
		out[i] = r.v
	}
	end.More = matched > o.Limit
	return out, end, nil
}

// maxPageEntities is the most entities the table service returns in one page.
const maxPageEntities = 1000

// ListStates reads the jobs o selects (see StateScan: a scan of the table), newest first, and
// how the scan ended. Only the key, type, business unit, state, reason and creation
// time are read: no event data, recipients or trail.
func (s *Jobs) ListStates(ctx context.Context, o StateScan) ([]*platform.NotificationJob, ScanEnd, error) {
	columns := []string{"JobKey", "NotificationEventTypeId", "BusinessUnitId", "State", "Reason", "CreatedAt"}
	return scan(ctx, s.t, "notification jobs", o, columns, func(raw []byte) (*platform.NotificationJob, int64, time.Time, error) {
		var e jobEntity
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, 0, time.Time{}, err
		}
		j, err := e.job()
		if err != nil {
			return nil, 0, time.Time{}, err
		}
		return j, j.BusinessUnitID, j.CreatedAt, nil
	})
}

// ListStates reads the outgoing messages o selects (see StateScan: a scan of the table),
// newest first, and how the scan ended. Only the key, job key, type, business unit,
// recipient's channel and address, state, attempts, last error and creation time are read: no
// subject, body or trail. A message stored without a creation time (by a version before it was
// kept) is not found.
func (s *Messages) ListStates(ctx context.Context, o StateScan) ([]*platform.OutgoingMessage, ScanEnd, error) {
	columns := []string{"MessageKey", "JobKey", "NotificationEventTypeId", "BusinessUnitId", "Channel", "Address", "State", "Attempts", "LastError", "CreatedAt"}
	return scan(ctx, s.t, "outgoing messages", o, columns, func(raw []byte) (*platform.OutgoingMessage, int64, time.Time, error) {
		var e messageEntity
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, 0, time.Time{}, err
		}
		m, err := e.message()
		if err != nil {
			return nil, 0, time.Time{}, err
		}
		return m, m.BusinessUnitID, m.CreatedAt, nil
	})
}
