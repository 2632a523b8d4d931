package api

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/realtime"
)

// serveChanges streams changes as Server-Sent Events: GET /v1/changes?businessUnitId=N&
// entityTypeId=M, resuming after the Last-Event-ID header (or lastEventId=) from the buffer.
// The stream ends when the client is too slow or the worker stops; the client resumes with
// Last-Event-ID, on this replica or another.
func (d Deps) serveChanges(rw http.ResponseWriter, r *http.Request) {
	flusher, ok := rw.(http.Flusher)
	if !ok {
		writeError(rw, http.StatusInternalServerError, "streaming unsupported")
		return
	}
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
	want := func(c *platform.Change) bool {
		return (bu == 0 || c.BusinessUnitID == bu) && (et == 0 || c.EntityTypeID == et)
	}
	last := cmp.Or(r.Header.Get("Last-Event-ID"), q.Get("lastEventId"))
	backlog, gap, sub, err := d.Changes.Subscribe(last, want)
	if err != nil {
		rw.Header().Set("Retry-After", "1")
		writeJSON(rw, http.StatusServiceUnavailable, map[string]string{"error": "the worker is stopping: reconnect, to another replica, with Last-Event-ID",
			"requestId": rw.Header().Get(requestIDHeader)})
		return
	}
	defer d.Changes.Unsubscribe(sub)

	rw.Header().Set("Content-Type", "text/event-stream")
	rw.Header().Set("Cache-Control", "no-cache")
	rw.Header().Set("X-Accel-Buffering", "no")
	rw.WriteHeader(http.StatusOK)
	if gap {
		fmt.Fprint(rw, "event: gap\ndata: {\"reason\":\"the resume point is older than this replica's buffer; some changes were missed\"}\n\n")
	}
	sent := newRecent(1024)
	send := func(e realtime.Entry) bool {
		if (last != "" && e.ID <= last) || !sent.add(e.ID) {
			return true
		}
		b, _ := json.Marshal(e.Change)
		_, err := fmt.Fprintf(rw, "id: %s\nevent: change\ndata: %s\n\n", e.ID, b)
		return err == nil
	}
	for _, e := range backlog {
		if !send(e) {
			return
		}
	}
	flusher.Flush()
	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-sub.C:
			if !ok {
				return // too slow, or the worker stops: the client resumes with Last-Event-ID
			}
			if !send(e) {
				return
			}
			flusher.Flush()
		case <-heartbeat.C:
			if _, err := fmt.Fprint(rw, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

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
