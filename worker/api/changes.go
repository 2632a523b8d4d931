package api

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/worker/realtime"
)

// serveChanges streams changes as Server-Sent Events: GET /v1/changes?businessUnitId=N&
// entityTypeId=M, resuming after the Last-Event-ID header (or lastEventId=) from the buffer.
// The stream ends when the client is too slow or the worker stops; the client resumes with
// Last-Event-ID, on this replica or another. A principal scoped to business units gets only
// theirs, whatever it asks (a unit not its own is 404); it holds at most
// Limits.StreamsPerPrincipal streams, and a replica Limits.Streams in all (429).
func (d *server) serveChanges(rw http.ResponseWriter, r *http.Request) {
	p := principal(r)
	q := r.URL.Query()
	var bu int64
	var et int
	var err error
	if s := q.Get("businessUnitId"); s != "" {
		if bu, err = strconv.ParseInt(s, 10, 64); err != nil || bu <= 0 {
			writeError(rw, http.StatusBadRequest, "businessUnitId: want a positive integer")
			return
		}
	}
	if s := q.Get("entityTypeId"); s != "" {
		if et, err = strconv.Atoi(s); err != nil || et <= 0 {
			writeError(rw, http.StatusBadRequest, "entityTypeId: want a positive integer")
			return
		}
	}
	if bu != 0 && !p.Sees(bu) {
		writeError(rw, http.StatusNotFound, fmt.Sprintf("businessUnitId %d: no such business unit", bu))
		return
	}
	want := func(c *platform.Change) bool {
		return (bu == 0 || c.BusinessUnitID == bu) && (et == 0 || c.EntityTypeID == et) && p.Sees(c.BusinessUnitID)
	}
	release, full := d.streams.acquire(p.ID)
	if release == nil {
		tooMany(rw, 5*time.Second, full)
		return
	}
	defer release()
	last := cmp.Or(r.Header.Get("Last-Event-ID"), q.Get("lastEventId"))
	backlog, gap, sub, err := d.Changes.Subscribe(last, want)
	if errors.Is(err, realtime.ErrDisabled) {
		writeError(rw, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		rw.Header().Set("Retry-After", "1")
		writeJSON(rw, http.StatusServiceUnavailable, map[string]string{"error": "the worker is stopping: reconnect, to another replica, with Last-Event-ID",
			"requestId": rw.Header().Get(requestIDHeader)})
		return
	}
	defer d.Changes.Unsubscribe(sub)

	// A stream outlives the server's read and write timeouts, which are for requests that
	// end: it has none to read, and each write gets a deadline of its own (a client that stops
	// reading is cut off after streamWriteTimeout, not held forever).
	rc := http.NewResponseController(rw)
	_ = rc.SetReadDeadline(time.Time{})
	write := func(format string, a ...any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		_, err := fmt.Fprintf(rw, format, a...)
		return err == nil
	}
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		return rc.Flush() == nil
	}
	rw.Header().Set("Content-Type", "text/event-stream")
	rw.Header().Set("Cache-Control", "no-cache")
	rw.Header().Set("X-Accel-Buffering", "no")
	rw.WriteHeader(http.StatusOK)
	if gap {
		write("event: gap\ndata: {\"reason\":\"the resume point is older than this replica's buffer; some changes were missed\"}\n\n")
	}
	sent := newRecent(1024)
	send := func(e realtime.Entry) bool {
		if (last != "" && e.ID <= last) || !sent.add(e.ID) {
			return true
		}
		b, _ := json.Marshal(e.Change)
		return write("id: %s\nevent: change\ndata: %s\n\n", e.ID, b)
	}
	for _, e := range backlog {
		if !send(e) {
			return
		}
	}
	if !flush() {
		return
	}
	heartbeat := time.NewTicker(d.Limits.StreamHeartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-sub.C:
			if !ok {
				return // too slow, or the worker stops: the client resumes with Last-Event-ID
			}
			if !send(e) || !flush() {
				return
			}
		case <-heartbeat.C:
			// The credentials are checked again: a revoked key or an expired token ends the
			// stream within a heartbeat (the client reconnects and is refused).
			if _, err := d.Auth.Authenticate(r.Context(), r.Header.Get("Authorization")); errors.Is(err, auth.ErrUnauthenticated) {
				write("event: unauthorized\ndata: {\"reason\":\"the credentials of this stream are no longer valid\"}\n\n")
				flush()
				return
			}
			if !write(": keep-alive\n\n") || !flush() {
				return
			}
		}
	}
}

// streamWriteTimeout is how long one write to a change stream may take.
const streamWriteTimeout = 30 * time.Second

// recent remembers the last n ids a stream sent, so that a change met in the backlog and again
// in the live feed goes out once, without a set that grows for as long as the client stays.
type recent struct {
	ids  map[string]struct{}
	ring []string
	next int
}

func newRecent(n int) *recent {
	return &recent{ids: make(map[string]struct{}, n), ring: make([]string, n)}
}

// add records id and reports whether it is new.
func (r *recent) add(id string) bool {
	if _, seen := r.ids[id]; seen {
		return false
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.ids, old)
	}
	r.ring[r.next], r.ids[id] = id, struct{}{}
	r.next = (r.next + 1) % len(r.ring)
	return true
}
