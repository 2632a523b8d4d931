package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/notify"
)

// serveMessages answers GET /v1/messages?address=A&since=T&until=T: the messages to an email
// address created in [since, until) (RFC 3339; until defaults to now, since to 7 days before
// it, at most 31 days apart), newest first, at most 200, and the groups of two or more of one
// notification type with why there are two (notify.WhyTwo). A principal scoped to business
// units gets only its units' messages. Never a body.
func (d *server) serveMessages(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := principal(r)
	opts := &notify.MessagesOptions{}
	for _, f := range []struct {
		name string
		into *time.Time
	}{{"since", &opts.Since}, {"until", &opts.Until}} {
		if v := q.Get(f.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeError(rw, http.StatusBadRequest, f.name+": want an RFC 3339 time (2026-11-22T09:00:00Z)")
				return
			}
			*f.into = t
		}
	}
	if !p.AllUnits() {
		opts.Visible, opts.Units = p.Sees, p.Units.IDs
	}
	bounded, cancel := d.supportRead(r)
	defer cancel()
	out, err := d.Notify.MessagesTo(bounded.Context(), q.Get("address"), opts)
	switch {
	case errors.Is(err, platform.ErrInvalidInput):
		writeError(rw, http.StatusBadRequest, err.Error())
	case d.timedOut(rw, r, "scan the message table for messages to an address", err): // answered 504
	case err != nil:
		d.storageError(rw, "messages to an address", err)
	default:
		writeJSON(rw, http.StatusOK, out)
	}
}
