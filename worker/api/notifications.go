package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/notify"
)

// serveCreateJob creates a direct notification job. An Idempotency-Key header makes its key
// deterministic: the same request again returns the same job (200), not a second one. Each
// principal may create Limits.JobsPerSecond jobs a second (429 past it), in its business
// units only (403).
func (d *server) serveCreateJob(rw http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if ok, wait := d.jobs.take(p.ID); !ok {
		tooMany(rw, wait, fmt.Sprintf("job creation is limited to %g a second per principal", d.Limits.JobsPerSecond))
		return
	}
	var dj notify.DirectJob
	if !decode(rw, r, 1<<20, &dj) {
		return
	}
	noteUnit(r, dj.BusinessUnitID)
	if dj.BusinessUnitID > 0 && !p.Sees(dj.BusinessUnitID) {
		forbidUnit(rw, dj.BusinessUnitID)
		return
	}
	job, created, err := d.Notify.CreateJob(r.Context(), dj, r.Header.Get("Idempotency-Key"))
	switch {
	case errors.Is(err, platform.ErrInvalidInput):
		writeError(rw, http.StatusBadRequest, err.Error())
	case errors.Is(err, notify.ErrJobConflict):
		writeError(rw, http.StatusConflict, err.Error())
	case err != nil:
		d.storageError(rw, "create notification job", err)
	case created:
		writeJSON(rw, http.StatusCreated, map[string]string{"jobKey": job.Key, "state": string(job.State)})
	default:
		writeJSON(rw, http.StatusOK, map[string]string{"jobKey": job.Key, "state": string(job.State)})
	}
}

// serveCancel cancels the jobs carrying a cancellation key, in one business unit or, without
// one, in every unit: only a principal that sees every unit may do that.
func (d *server) serveCancel(rw http.ResponseWriter, r *http.Request) {
	var body struct {
		CancellationKey string `json:"cancellationKey"`
		BusinessUnitID  int64  `json:"businessUnitId"`
	}
	// Unknown fields are refused: a misspelt businessUnitId would otherwise read as 0, every unit.
	if !decode(rw, r, 64<<10, &body) {
		return
	}
	if body.CancellationKey == "" {
		writeError(rw, http.StatusBadRequest, `body: want {"cancellationKey":"…", "businessUnitId":N}`)
		return
	}
	noteUnit(r, body.BusinessUnitID)
	p := principal(r)
	switch {
	case body.BusinessUnitID < 0:
		writeError(rw, http.StatusBadRequest, "businessUnitId: want a positive integer")
		return
	case body.BusinessUnitID == 0 && !p.AllUnits():
		writeError(rw, http.StatusForbidden, "businessUnitId: required (this principal sees some business units only; a cancellation without one would reach every unit)")
		return
	case body.BusinessUnitID > 0 && !p.Sees(body.BusinessUnitID):
		forbidUnit(rw, body.BusinessUnitID)
		return
	}
	err := d.Notify.Cancel(r.Context(), body.CancellationKey, body.BusinessUnitID)
	switch {
	case errors.Is(err, platform.ErrInvalidInput):
		writeError(rw, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		d.storageError(rw, "cancel notifications", err)
		return
	}
	out := map[string]any{"cancelled": body.CancellationKey}
	if body.BusinessUnitID != 0 {
		out["businessUnitId"] = body.BusinessUnitID
	}
	writeJSON(rw, http.StatusOK, out)
}
