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
	q, ok := d.timelineQuery(rw, r, 1000)
	if !ok {
		return
	}
	rows, next, err := history.Timeline(r.Context(), d.History, d.Blobs, q.entityTypeID, q.identity, &q.opts)
	if rows, next, ok = d.timelineEnd(rw, r, q, rows, next, err); !ok {
		return
	}
	writeJSON(rw, http.StatusOK, HistoryPage{Items: rows, Next: next})
}

// timelinePage is a request for one page of a timeline: the entity, and the table's options.
type timelinePage struct {
	entityTypeID int
	identity     string
	scope        string // what its page tokens are sealed for
	opts         tables.TimelineOptions
}

// timelineQuery reads a timeline route's request: the entity in its path, after= (a token
// sealed for this timeline) and limit= (1 to maxLimit). On bad input it answers and reports
// false.
func (d *server) timelineQuery(rw http.ResponseWriter, r *http.Request, maxLimit int) (*timelinePage, bool) {
	entityTypeID, err := strconv.Atoi(r.PathValue("entityTypeId"))
	if err != nil || entityTypeID <= 0 {
		writeError(rw, http.StatusBadRequest, "entityTypeId: want a positive integer")
		return nil, false
	}
	identity, err := platform.ParseIdentity(r.PathValue("identity"))
	if err != nil {
		writeError(rw, http.StatusBadRequest, err.Error())
		return nil, false
	}
	q := &timelinePage{entityTypeID: entityTypeID, identity: identity, scope: "history:" + strconv.Itoa(entityTypeID) + ":" + identity}
	after, err := d.pages.open(r.Context(), q.scope, r.URL.Query().Get("after"))
	switch {
	case errors.Is(err, errBadToken):
		writeError(rw, http.StatusBadRequest, "after: "+err.Error())
		return nil, false
	case err != nil:
		d.storageError(rw, "read the page token key", err)
		return nil, false
	}
	q.opts = tables.TimelineOptions{After: after, Visible: principal(r).Visible()}
	if s := r.URL.Query().Get("limit"); s != "" {
		if q.opts.Limit, err = strconv.Atoi(s); err != nil || q.opts.Limit < 1 || q.opts.Limit > maxLimit {
			writeError(rw, http.StatusBadRequest, "limit: want 1-"+strconv.Itoa(maxLimit))
			return nil, false
		}
	}
	return q, true
}

// timelineEnd finishes a page read for q (rows, the table's next token, the read's error): a
// first page with no row the reader may see is 404, and the next token is sealed. On failure
// it answers and reports false.
func (d *server) timelineEnd(rw http.ResponseWriter, r *http.Request, q *timelinePage, rows []platform.HistoryRecord, next string, err error) ([]platform.HistoryRecord, string, bool) {
	switch {
	case errors.Is(err, tables.ErrInvalidToken):
		writeError(rw, http.StatusBadRequest, "after: "+err.Error())
		return nil, "", false
	case err != nil:
		d.storageError(rw, "read timeline", err)
		return nil, "", false
	}
	if len(rows) == 0 && q.opts.After == "" && q.opts.Visible != nil {
		// Another unit's timeline, or none at all: the same answer, so that it tells nothing.
		// A later page may be empty (a long run of another unit's rows spent its budget): its
		// reader came by a token, so it saw rows of this timeline already.
		writeError(rw, http.StatusNotFound, "no timeline")
		return nil, "", false
	}
	if rows == nil {
		rows = []platform.HistoryRecord{}
	}
	if next, err = d.pages.seal(r.Context(), q.scope, next); err != nil {
		d.storageError(rw, "read the page token key", err)
		return nil, "", false
	}
	return rows, next, true
}
