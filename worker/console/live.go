package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

func init() {
	pages = append(pages,
		page{"GET /console/live", (*console).serveLive},
		page{"GET /console/live/stream", (*console).serveLiveStream})
}

// liveRows is how many changes the Live page keeps on screen, newest on top.
const liveRows = 200

// liveView is what the Live page shows: the filters, and (once a unit is chosen) the table
// the script fills from the stream.
type liveView struct {
	BU, Type string
	Units    []int64
	Error    string
	Watching bool
	Rows     int
}

// serveLive shows the realtime change stream of a business unit (optionally one entity type):
// what changed — entity, action, event type and the names of the changed fields, never their
// values — newest on top. The page's script (static/console.js) reads /console/live/stream.
func (c *console) serveLive(rw http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	v := liveView{BU: strings.TrimSpace(q.Get("bu")), Type: strings.TrimSpace(q.Get("type")), Rows: liveRows}
	if !s.principal.AllUnits() {
		v.Units = s.principal.Units.IDs
		if v.BU == "" && len(v.Units) == 1 {
			v.BU = strconv.FormatInt(v.Units[0], 10)
		}
	}
	status := http.StatusOK
	switch {
	case v.BU == "":
	case !positive(v.BU):
		v.Error, status = "business unit: want a positive integer", http.StatusBadRequest
	case v.Type != "" && !positive(v.Type):
		v.Error, status = "entity type: want a positive integer, or nothing for every type", http.StatusBadRequest
	default:
		v.Watching = true
	}
	title := "Live"
	if v.Watching {
		title = "Live: business unit " + v.BU
	}
	c.render(rw, r, s, status, "live", view{Title: title, Nav: "live", Data: &v})
}

func positive(s string) bool {
	n, err := strconv.ParseInt(s, 10, 64)
	return err == nil && n > 0
}

// serveLiveStream serves GET /console/live/stream?businessUnitId=N&entityTypeId=M: the API's
// change stream (GET /v1/changes), served in process for the session's principal, so its
// scoping, limits, heartbeats and resumption (Last-Event-ID) are the API's own. The API's
// changes carry ids and field names only, never values: they are passed on as they are. A
// refusal (a unit not the principal's, too many streams, a stopping worker) becomes one
// "refused" event, which the page can read: an EventSource cannot read the body of an error.
func (c *console) serveLiveStream(rw http.ResponseWriter, r *http.Request, s *session) {
	in, out := r.URL.Query(), url.Values{}
	for _, k := range []string{"businessUnitId", "entityTypeId"} {
		if v := in.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	req, err := apiRequest(r, s, http.MethodGet, "/v1/changes?"+out.Encode(), http.NoBody)
	if err != nil {
		c.fail(rw, r, s, err)
		return
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		req.Header.Set("Last-Event-ID", id)
	}
	sw := &streamWriter{rw: rw}
	c.API.ServeHTTP(sw, req)
	if sw.status == 0 || sw.status == http.StatusOK {
		return
	}
	var e struct {
		Error     string `json:"error"`
		RequestID string `json:"requestId"`
	}
	_ = json.Unmarshal(sw.refusal.Bytes(), &e)
	data, _ := json.Marshal(map[string]any{"status": sw.status, "error": e.Error, "requestId": e.RequestID})
	h := rw.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "text/event-stream")
	rw.WriteHeader(http.StatusOK)
	// A stopping worker (503) or too many streams (429) is worth another try, in 5 s: the
	// browser reconnects by itself once this answer ends. Anything else the page stops on.
	_, _ = rw.Write([]byte("retry: 5000\nevent: refused\ndata: " + string(data) + "\n\n"))
}

// streamWriter passes a 200 stream through as it is written, flushed as the API flushes it,
// and keeps any other answer (a refusal, a few hundred bytes of JSON) for serveLiveStream.
type streamWriter struct {
	rw      http.ResponseWriter
	status  int
	refusal bytes.Buffer
}

func (w *streamWriter) Header() http.Header { return w.rw.Header() }

func (w *streamWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	if code == http.StatusOK {
		w.rw.WriteHeader(code)
	}
}

func (w *streamWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.status != http.StatusOK {
		if w.refusal.Len() > 64<<10 {
			return len(b), nil
		}
		return w.refusal.Write(b)
	}
	return w.rw.Write(b)
}

func (w *streamWriter) Flush() {
	if w.status == http.StatusOK {
		_ = http.NewResponseController(w.rw).Flush()
	}
}

// Unwrap lets the API's handler set the connection's deadlines (a stream outlives the
// server's write timeout).
func (w *streamWriter) Unwrap() http.ResponseWriter { return w.rw }
