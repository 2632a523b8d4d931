package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/webhooks"
)

// serveAddWebhook subscribes an endpoint; the answer carries its id and its secret, which is
// never shown again.
func (d *server) serveAddWebhook(rw http.ResponseWriter, r *http.Request) {
	var ne webhooks.NewEndpoint
	if !decode(rw, r, 64<<10, &ne) {
		return
	}
	noteUnit(r, ne.BusinessUnitID)
	if ne.BusinessUnitID > 0 && !principal(r).Sees(ne.BusinessUnitID) {
		forbidUnit(rw, ne.BusinessUnitID)
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

// serveListWebhooks lists the endpoints of the principal's business units.
func (d *server) serveListWebhooks(rw http.ResponseWriter, r *http.Request) {
	all, err := d.Webhooks.List(r.Context())
	if err != nil {
		d.storageError(rw, "list webhook endpoints", err)
		return
	}
	p := principal(r)
	seen := []*tables.Endpoint{}
	for _, e := range all {
		if p.Sees(e.BusinessUnitID) {
			seen = append(seen, e)
		}
	}
	writeJSON(rw, http.StatusOK, seen)
}

// serveDisableWebhook disables an endpoint of the principal's business units; another's is
// 404, as one that does not exist.
func (d *server) serveDisableWebhook(rw http.ResponseWriter, r *http.Request) {
	id, ok := d.endpointOf(rw, r)
	if !ok {
		return
	}
	err := d.Webhooks.Disable(r.Context(), id)
	switch {
	case errors.Is(err, platform.ErrInvalidInput):
		writeError(rw, http.StatusNotFound, err.Error())
	case err != nil:
		d.storageError(rw, "disable webhook endpoint", err)
	default:
		writeJSON(rw, http.StatusOK, map[string]string{"disabled": r.PathValue("id")})
	}
}

// serveEnableWebhook enables an endpoint of the principal's business units; another's is
// 404, as one that does not exist.
func (d *server) serveEnableWebhook(rw http.ResponseWriter, r *http.Request) {
	id, ok := d.endpointOf(rw, r)
	if !ok {
		return
	}
	err := d.Webhooks.Enable(r.Context(), id)
	switch {
	case errors.Is(err, platform.ErrInvalidInput):
		writeError(rw, http.StatusNotFound, err.Error())
	case err != nil:
		d.storageError(rw, "enable webhook endpoint", err)
	default:
		writeJSON(rw, http.StatusOK, map[string]string{"enabled": r.PathValue("id")})
	}
}

// serveWebhookDeliveries answers GET /v1/webhooks/{id}/deliveries?failed=true&limit=N: the
// delivery log of an endpoint of the principal's business units, newest first; another's is
// 404, as one that does not exist.
func (d *server) serveWebhookDeliveries(rw http.ResponseWriter, r *http.Request) {
	var q webhooks.DeliveriesQuery
	params := r.URL.Query()
	if v := params.Get("failed"); v != "" {
		var err error
		if q.Failed, err = strconv.ParseBool(v); err != nil {
			writeError(rw, http.StatusBadRequest, "failed: want true or false")
			return
		}
	}
	if v := params.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > webhooks.MaxDeliveries {
			writeError(rw, http.StatusBadRequest, fmt.Sprintf("limit: want 1-%d", webhooks.MaxDeliveries))
			return
		}
		q.Limit = n
	}
	id, ok := d.endpointOf(rw, r)
	if !ok {
		return
	}
	log, err := d.Webhooks.Deliveries(r.Context(), id, q)
	switch {
	case errors.Is(err, platform.ErrInvalidInput):
		writeError(rw, http.StatusNotFound, err.Error())
	case err != nil:
		d.storageError(rw, "read the delivery log", err)
	default:
		writeJSON(rw, http.StatusOK, map[string]any{"items": log})
	}
}

// replayRequest is the body of POST /v1/webhooks/{id}/replay: times as RFC 3339 strings, so
// that a bad one is refused naming its field.
type replayRequest struct {
	Since string `json:"since"`
	Until string `json:"until,omitempty"`
	After string `json:"after,omitempty"`
	Max   int    `json:"max,omitempty"`
}

// serveReplayWebhook re-sends what an endpoint of the principal's business units subscribes to
// among the events processed in a window, a bounded batch per call (webhooks.Replayer); the
// caller posts again with "after" set to the answer's "next" until it is empty. Another unit's
// endpoint is 404, as one that does not exist.
func (d *server) serveReplayWebhook(rw http.ResponseWriter, r *http.Request) {
	id, ok := d.endpointOf(rw, r)
	if !ok {
		return
	}
	var req replayRequest
	if !decode(rw, r, 4<<10, &req) {
		return
	}
	opts := webhooks.ReplayOptions{After: req.After, Max: req.Max}
	for _, t := range []struct {
		field, value string
		to           *time.Time
	}{{"since", req.Since, &opts.Since}, {"until", req.Until, &opts.Until}} {
		if t.value == "" {
			continue
		}
		var err error
		if *t.to, err = time.Parse(time.RFC3339Nano, t.value); err != nil {
			writeError(rw, http.StatusBadRequest, t.field+": want an RFC 3339 time, e.g. 2026-11-22T10:00:00Z")
			return
		}
	}
	res, err := d.Replay.Replay(r.Context(), id, opts)
	switch {
	case errors.Is(err, platform.ErrInvalidInput):
		writeError(rw, http.StatusBadRequest, err.Error())
	case err != nil:
		d.storageError(rw, "replay webhook endpoint", err)
	default:
		writeJSON(rw, http.StatusOK, res)
	}
}

// endpointOf finds the endpoint the path's {id} names among those of the principal's business
// units and notes its unit for the audit line. Another unit's endpoint answers 404 exactly as
// one that does not exist; ok is false once an answer was written.
func (d *server) endpointOf(rw http.ResponseWriter, r *http.Request) (id string, ok bool) {
	id = r.PathValue("id")
	all, err := d.Webhooks.List(r.Context())
	if err != nil {
		d.storageError(rw, "list webhook endpoints", err)
		return "", false
	}
	i := slices.IndexFunc(all, func(e *tables.Endpoint) bool { return e.ID == id })
	if i < 0 || !principal(r).Sees(all[i].BusinessUnitID) {
		writeError(rw, http.StatusNotFound, "no webhook endpoint "+id)
		return "", false
	}
	noteUnit(r, all[i].BusinessUnitID)
	return id, true
}
