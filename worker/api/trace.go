package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/notify"
)

// serveTrace answers GET /v1/trace?key=K[&showBody=true]. Bodies are withheld unless showBody
// asks for them; the trace logs who did.
func (d *server) serveTrace(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := &notify.TraceOptions{Requester: principal(r).ID + " from " + r.RemoteAddr}
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
	case err != nil:
		d.storageError(rw, "trace", err)
	default:
		writeJSON(rw, http.StatusOK, t)
	}
}
