package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/history"
)

// HistoryPage is the JSON body of GET /v1/history/...: Next, when set, is the after= of the
// next page.
type HistoryPage struct {
	Items []platform.HistoryRecord `json:"items"`
	Next  string                   `json:"next,omitempty"`
}

// serveHistory answers one page of a timeline: for a principal scoped to business units, only
// the rows of its units, and 404 for a page with none (another unit's timeline and no timeline
// answer alike).
func (d *server) serveHistory(rw http.ResponseWriter, r *http.Request) {
	entityTypeID, err := strconv.Atoi(r.PathValue("entityTypeId"))
	if err != nil || entityTypeID <= 0 {
		writeError(rw, http.StatusBadRequest, "entityTypeId: want a positive integer")
		return
	}
	identity, err := platform.ParseIdentity(r.PathValue("identity"))
	if err != nil {
		writeError(rw, http.StatusBadRequest, err.Error())
		return
	}
	p := principal(r)
	opts := &tables.TimelineOptions{After: r.URL.Query().Get("after"), Visible: p.Visible()}
	if s := r.URL.Query().Get("limit"); s != "" {
		if opts.Limit, err = strconv.Atoi(s); err != nil || opts.Limit < 1 || opts.Limit > 1000 {
			writeError(rw, http.StatusBadRequest, "limit: want 1-1000")
			return
		}
	}
	rows, next, err := history.Timeline(r.Context(), d.History, d.Blobs, entityTypeID, identity, opts)
	switch {
	case errors.Is(err, tables.ErrInvalidToken):
		writeError(rw, http.StatusBadRequest, "after: "+err.Error())
		return
	case err != nil:
		d.storageError(rw, "read timeline", err)
		return
	}
	if len(rows) == 0 && opts.Visible != nil {
		// Another unit's timeline, or none at all: the same answer, so that it tells nothing,
		// from any after= (a page of refused rows only would still carry a next token).
		writeError(rw, http.StatusNotFound, "no timeline")
		return
	}
	if rows == nil {
		rows = []platform.HistoryRecord{}
	}
	writeJSON(rw, http.StatusOK, HistoryPage{Items: rows, Next: next})
}
