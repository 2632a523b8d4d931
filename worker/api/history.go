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
// the rows of its units, and 404 for a first page with none (another unit's timeline and no
// timeline answer alike). Its next token is sealed (pagetoken.go): it tells nothing of the
// rows the reader was not shown, and after= takes only such a token, of this timeline.
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
	scope := "history:" + strconv.Itoa(entityTypeID) + ":" + identity
	after, err := d.pages.open(r.Context(), scope, r.URL.Query().Get("after"))
	switch {
	case errors.Is(err, errBadToken):
		writeError(rw, http.StatusBadRequest, "after: "+err.Error())
		return
	case err != nil:
		d.storageError(rw, "read the page token key", err)
		return
	}
	opts := &tables.TimelineOptions{After: after, Visible: p.Visible()}
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
	if len(rows) == 0 && opts.After == "" && opts.Visible != nil {
		// Another unit's timeline, or none at all: the same answer, so that it tells nothing.
		// A later page may be empty (a long run of another unit's rows spent its budget): its
		// reader came by a token, so it saw rows of this timeline already.
		writeError(rw, http.StatusNotFound, "no timeline")
		return
	}
	if rows == nil {
		rows = []platform.HistoryRecord{}
	}
	if next, err = d.pages.seal(r.Context(), scope, next); err != nil {
		d.storageError(rw, "read the page token key", err)
		return
	}
	writeJSON(rw, http.StatusOK, HistoryPage{Items: rows, Next: next})
}
