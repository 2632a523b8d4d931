package api

import (
	"errors"
	"net/http"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/webhooks"
)

// serveAddWebhook subscribes an endpoint; the answer carries its id and its secret, which is
// never shown again.
func (d Deps) serveAddWebhook(rw http.ResponseWriter, r *http.Request) {
	var ne webhooks.NewEndpoint
	if !decode(rw, r, 64<<10, &ne) {
		return
	}
	e, err := d.Webhooks.Add(r.Context(), ne)
	switch {
	case errors.Is(err, platform.ErrInvalidInput):
		writeError(rw, http.StatusBadRequest, err.Error())
	case err != nil:
		d.storageError(rw, "add webhook endpoint", err)
	default:
		writeJSON(rw, http.StatusCreated, map[string]any{"id": e.ID, "secret": e.Secret})
	}
}

func (d Deps) serveListWebhooks(rw http.ResponseWriter, r *http.Request) {
	all, err := d.Webhooks.List(r.Context())
	if err != nil {
		d.storageError(rw, "list webhook endpoints", err)
		return
	}
	if all == nil {
		all = []*tables.Endpoint{}
	}
	writeJSON(rw, http.StatusOK, all)
}

func (d Deps) serveDisableWebhook(rw http.ResponseWriter, r *http.Request) {
	err := d.Webhooks.Disable(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, platform.ErrInvalidInput):
		writeError(rw, http.StatusNotFound, err.Error())
	case err != nil:
		d.storageError(rw, "disable webhook endpoint", err)
	default:
		writeJSON(rw, http.StatusOK, map[string]string{"disabled": r.PathValue("id")})
	}
}
