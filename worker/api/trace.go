package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/notify"
)

// serveTrace answers GET /v1/trace?key=K[&showBody=true]. Bodies are withheld unless showBody
// asks for them; the trace logs who did. A principal scoped to business units traces only
// keys of its units: any other, or one with nothing recorded, is 404.
func (d *server) serveTrace(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := principal(r)
	opts := &notify.TraceOptions{Requester: p.ID + " from " + r.RemoteAddr, Visible: p.Visible()}
	if v := q.Get("showBody"); v != "" {
		var err error
		if opts.ShowBody, err = strconv.ParseBool(v); err != nil {
			writeError(rw, http.StatusBadRequest, "showBody: want true or false")
			return
		}
	}
	t, err := d.Notify.Trace(r.Context(), q.Get("key"), opts)
	switch {
	case errors.Is(err, platform.ErrInvalidInput):
		writeError(rw, http.StatusBadRequest, err.Error())
	case errors.Is(err, platform.ErrNotFound):
		writeError(rw, http.StatusNotFound, err.Error()) // another unit's, or nothing recorded: the same words
	case err != nil:
		d.storageError(rw, "trace", err)
	default:
		writeJSON(rw, http.StatusOK, t)
	}
}
