package api

import (
	"errors"
	"net/http"

	"github.com/platform/platform"
)

func (d Deps) serveTrace(rw http.ResponseWriter, r *http.Request) {
	t, err := d.Notify.Trace(r.Context(), r.URL.Query().Get("key"))
	switch {
	case errors.Is(err, platform.ErrInvalidInput):
		writeError(rw, http.StatusBadRequest, err.Error())
	case err != nil:
		d.storageError(rw, "trace", err)
	default:
		writeJSON(rw, http.StatusOK, t)
	}
}
