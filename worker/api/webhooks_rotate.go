package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/platform/platform"
)

// serveRotateWebhookSecret gives an endpoint of the principal's business units a new secret
// (another unit's is 404, as one that does not exist). The body {"expireOldAfter":"24h"} is
// optional: how long the old secret keeps signing, 24h by default. The answer carries the new
// secret, which is never shown again.
func (d *server) serveRotateWebhookSecret(rw http.ResponseWriter, r *http.Request) {
	var req struct {
		ExpireOldAfter *string `json:"expireOldAfter"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, 4<<10))
	if err != nil {
		writeError(rw, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(rw, http.StatusBadRequest, "body: "+err.Error())
			return
		}
	}
	expire := 24 * time.Hour
	if req.ExpireOldAfter != nil {
		if expire, err = time.ParseDuration(*req.ExpireOldAfter); err != nil {
			writeError(rw, http.StatusBadRequest, `expireOldAfter: want a duration such as "24h", "90m" or "0"`)
			return
		}
	}
	id, ok := d.endpointOf(rw, r)
	if !ok {
		return
	}
	rot, err := d.Webhooks.RotateSecret(r.Context(), id, expire)
	switch {
	case errors.Is(err, platform.ErrInvalidInput):
		writeError(rw, http.StatusBadRequest, err.Error())
	case errors.Is(err, platform.ErrNotFound): // removed since the list was read
		writeError(rw, http.StatusNotFound, "no webhook endpoint "+id)
	case err != nil:
		d.storageError(rw, "rotate webhook endpoint secret", err)
	default:
		writeJSON(rw, http.StatusOK, rot)
	}
}
