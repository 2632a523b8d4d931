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

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// AddressQuery selects the outgoing messages to one recipient created in a window.
type AddressQuery struct {
	Channel, Address string // as message rows hold them (Recipient.Normalize)
	// Since and Until bound CreatedAt: [Since, Until). Both required.
	Since, Until time.Time
	// Units, when not nil, are the only business units whose messages are read (filtered by
	// the table service when there are few; always checked again here).
	Units []int64
	// Limit is how many messages are returned, newest first (1-1000).
	Limit int
	// MaxPages bounds the scan: at most this many requests (default 100). A scan cut short
	// says so (AddressResult.Incomplete).
	MaxPages int
}

// AddressResult is what a scan found.
type AddressResult struct {
	// Messages are the newest Limit matches, newest first: only the columns that say where a
	// message is (key, job, type, unit, recipient, state, attempts, provider id, created,
	// causing rule), never what it says.
	Messages []*platform.OutgoingMessage
	// More: more than Limit messages matched.
	More bool
	// Incomplete: the scan stopped at MaxPages before the end of the table; more messages may
	// match.
	Incomplete bool
	// Pages is how many requests the scan made.
	Pages int
}

// maxUnitsInFilter is how many business units a scan names in its filter: the table service
// takes at most 15 comparisons in one, and the query spends 4 of them.
const maxUnitsInFilter = 10

// addressColumns are the columns a scan reads: never a body.
var addressColumns = strings.Join([]string{"MessageKey", "JobKey", "NotificationEventTypeId", "BusinessUnitId", "Channel", "Address", "Name",
	"State", "Attempts", "ProviderId", "CreatedAt", "CausedByRule"}, ",")

// ToAddress scans the table for the messages of q: a filter on the Channel, Address and
// CreatedAt columns (and BusinessUnitId), which the table service applies to every row (the
// table is keyed by message key, so no key range narrows it). The cost is the table's size,
// not the answer's: pages of at most 1000 matches, and as many (possibly empty) pages as the
// service needs to go through the table. Messages stored before rows kept CreatedAt are never
// found.
func (s *Messages) ToAddress(ctx context.Context, q AddressQuery) (*AddressResult, error) {
	switch {
	case q.Limit < 1 || q.Limit > 1000:
		return nil, fmt.Errorf("%w: limit: want 1-1000, got %d", platform.ErrInvalidInput, q.Limit)
	case q.Address == "" || q.Channel == "":
		return nil, fmt.Errorf("%w: want a channel and an address", platform.ErrInvalidInput)
	case q.Since.IsZero() || !q.Until.After(q.Since):
		return nil, fmt.Errorf("%w: want a window, since before until", platform.ErrInvalidInput)
	}
	q.MaxPages = cmp.Or(q.MaxPages, 100)
	filter := "Channel eq " + odataQuote(q.Channel) + " and Address eq " + odataQuote(q.Address) +
		" and CreatedAt ge " + odataTime(q.Since) + " and CreatedAt lt " + odataTime(q.Until)
	if q.Units != nil && len(q.Units) <= maxUnitsInFilter {
		if len(q.Units) == 0 {
			return &AddressResult{Messages: []*platform.OutgoingMessage{}}, nil
		}
		units := make([]string, len(q.Units))
		for i, u := range q.Units {
			units[i] = "BusinessUnitId eq " + strconv.FormatInt(u, 10) + "L"
		}
		filter += " and (" + strings.Join(units, " or ") + ")"
	}
	columns := addressColumns
	pager := s.t.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Select: &columns, Top: to32(1000)})
	res := &AddressResult{Messages: []*platform.OutgoingMessage{}}
	matched := 0
	for pager.More() {
		if res.Pages == q.MaxPages {
			res.Incomplete = true
			break
		}
		page, err := pager.NextPage(ctx)
		res.Pages++
		if err != nil {
			if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
				break // no table yet: no message
			}
			return nil, fmt.Errorf("messages to an address: %w", err)
		}
		for _, raw := range page.Entities {
			var e messageEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, fmt.Errorf("messages to an address: %w", err)
			}
			m, err := e.message()
			if err != nil {
				return nil, fmt.Errorf("messages to an address: message %s: %w", e.MessageKey, err)
			}
			if q.Units != nil && !slices.Contains(q.Units, m.BusinessUnitID) {
				continue
			}
			matched++
			res.Messages = append(res.Messages, m)
			if len(res.Messages) >= 4*q.Limit {
				res.Messages = newestFirst(res.Messages)[:q.Limit]
			}
		}
	}
	res.Messages = newestFirst(res.Messages)
	if len(res.Messages) > q.Limit {
		res.Messages = res.Messages[:q.Limit]
	}
	res.More = matched > q.Limit
	return res, nil
}

// newestFirst sorts ms by creation, newest first (by key among equals: a stable answer).
func newestFirst(ms []*platform.OutgoingMessage) []*platform.OutgoingMessage {
	slices.SortFunc(ms, func(a, b *platform.OutgoingMessage) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(a.Key, b.Key))
	})
	return ms
}

// odataTime is t as an OData datetime literal.
func odataTime(t time.Time) string { return "datetime'" + t.UTC().Format(timeLayout) + "'" }
