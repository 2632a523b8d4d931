package api

import (
	"fmt"
	"net/http"
	"strconv"
)

// serveSettings answers GET /v1/settings/{businessUnitId}: the unit's NotificationOption and
// NotificationSubscriber rows (webhook addresses redacted), and every registered notification
// type with its kind (direct, hint or mapping: the dual-path guardrail's sets) and whether the
// unit has an option for it. A unit the caller does not see is 404, as if it had none.
func (d *server) serveSettings(rw http.ResponseWriter, r *http.Request) {
	bu, err := strconv.ParseInt(r.PathValue("businessUnitId"), 10, 64)
	if err != nil || bu <= 0 {
		writeError(rw, http.StatusBadRequest, "businessUnitId: want a positive integer")
		return
	}
	if !principal(r).Sees(bu) {
		writeError(rw, http.StatusNotFound, fmt.Sprintf("businessUnitId %d: no such business unit", bu))
		return
	}
	s, err := d.Notify.UnitSettings(r.Context(), bu)
	if err != nil {
		d.serverError(rw, "read notification settings", err, http.StatusBadGateway, "settings database unavailable")
		return
	}
	writeJSON(rw, http.StatusOK, s)
}
