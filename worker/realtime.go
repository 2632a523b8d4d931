package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// RealtimeConfig tunes the realtime change stream. Zero fields take the defaults their
// comments give.
type RealtimeConfig struct {
	// BufferSize is how many recent changes each replica keeps for Last-Event-ID resume.
	// Default 10,000.
	BufferSize int
	// PollInterval is how often a replica reads the changes other replicas wrote. Default 1s.
	PollInterval time.Duration
	// Linger is how long the change writer waits for more changes to put in one transaction
	// (group commit: handlers that finish together share one). Each event's handler waits at
	// most this long for its change to be durable. Default 10ms.
	Linger time.Duration
}

func (c *RealtimeConfig) setDefaults() {
	c.BufferSize = cmp.Or(c.BufferSize, 10_000)
	c.PollInterval = cmp.Or(c.PollInterval, time.Second)
	c.Linger = cmp.Or(c.Linger, 10*time.Millisecond)
}

// hub is a replica's view of the change stream: a bounded buffer ordered by change id, fed by
// this replica's own changes at once and by every replica's through the Changes table, and
// the SSE clients subscribed to it.
type hub struct {
	cfg   RealtimeConfig
	store *tables.Changes
	log   logrus.FieldLogger

	mu      sync.Mutex
	buf     []entry
	ids     map[string]bool
	keys    map[string]bool // event keys in the buffer: a redelivered event is one change
	evicted string          // the largest id dropped from the buffer
	subs    map[*subscriber]struct{}
	polled  string // the largest id read from the table
}

type entry struct {
	id string
	ch platform.Change
}

type subscriber struct {
	want func(*platform.Change) bool
	c    chan entry
}

func newHub(cfg RealtimeConfig, store *tables.Changes, log logrus.FieldLogger) *hub {
	return &hub{cfg: cfg, store: store, log: log, ids: map[string]bool{}, keys: map[string]bool{}, subs: map[*subscriber]struct{}{},
		polled: platform.SourceKeyAt(time.Now().Add(-time.Minute))}
}

// add puts a change in the buffer and hands it to the subscribers that want it. A
// subscriber too slow to take it is dropped: it reconnects with Last-Event-ID.
func (h *hub) add(id string, ch platform.Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ids[id] || h.keys[ch.EventKey] || (h.evicted != "" && id <= h.evicted) {
		return
	}
	i, _ := slices.BinarySearchFunc(h.buf, id, func(e entry, id string) int { return cmp.Compare(e.id, id) })
	h.buf = slices.Insert(h.buf, i, entry{id: id, ch: ch})
	h.ids[id], h.keys[ch.EventKey] = true, true
	for len(h.buf) > h.cfg.BufferSize {
		old := h.buf[0]
		h.buf = h.buf[1:]
		delete(h.ids, old.id)
		delete(h.keys, old.ch.EventKey)
		h.evicted = max(h.evicted, old.id)
	}
	for s := range h.subs {
		if !s.want(&ch) {
			continue
		}
		select {
		case s.c <- entry{id: id, ch: ch}:
		default:
			delete(h.subs, s)
			close(s.c)
		}
	}
}

// subscribe returns the buffered changes after lastID that want accepts, whether changes
// after lastID were already dropped from the buffer (a gap), and the live feed.
func (h *hub) subscribe(lastID string, want func(*platform.Change) bool) (backlog []entry, gap bool, s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s = &subscriber{want: want, c: make(chan entry, 256)}
	h.subs[s] = struct{}{}
	if lastID == "" {
		return nil, false, s
	}
	gap = h.evicted != "" && lastID < h.evicted
	for _, e := range h.buf {
		if e.id > lastID && want(&e.ch) {
			backlog = append(backlog, e)
		}
	}
	return backlog, gap, s
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.c)
	}
}

// poll reads the changes other replicas wrote. It rereads the last 5 s each time, so a row
// that committed late (its id older than one already seen) is still picked up; the buffer
// drops what it has.
func (h *hub) poll(ctx context.Context) {
	h.mu.Lock()
	after := h.polled
	h.mu.Unlock()
	at, _ := platform.SourceKeyTime(after)
	from := platform.SourceKeyAt(at.Add(-5 * time.Second))
	changes, ids, err := h.store.Since(ctx, at.Add(-5*time.Second), from)
	if err != nil {
		if ctx.Err() == nil {
			h.log.WithError(err).Warn("realtime: reading the change bus failed; next poll retries")
		}
		return
	}
	for i := range changes {
		h.add(ids[i], changes[i])
		h.mu.Lock()
		h.polled = max(h.polled, ids[i])
		h.mu.Unlock()
	}
}

// changeWriter commits changes in groups: handlers running at the same time share one
// entity group transaction per partition, so the change bus costs a fraction of a request
// per event, and no handler returns before its change is durable.
type changeWriter struct {
	store  *tables.Changes
	linger time.Duration
	in     chan changeReq
}

type changeReq struct {
	row  tables.ChangeRow
	done chan error
}

func (w *changeWriter) run(ctx context.Context) {
	for {
		var batch []changeReq
		select {
		case <-ctx.Done():
			return
		case r := <-w.in:
			batch = append(batch, r)
		}
		var deadline <-chan time.Time
		if w.linger > 0 {
			deadline = time.After(w.linger)
		}
	collect:
		for len(batch) < tables.MaxBatchOperations {
			select {
			case r := <-w.in:
				batch = append(batch, r)
			case <-deadline:
				break collect
			default:
				if deadline == nil {
					break collect
				}
				select {
				case r := <-w.in:
					batch = append(batch, r)
				case <-deadline:
					break collect
				}
			}
		}
		byPartition := map[string][]changeReq{}
		for _, r := range batch {
			pk := tables.ChangePartition(r.row.ID)
			byPartition[pk] = append(byPartition[pk], r)
		}
		for _, reqs := range byPartition {
			rows := make([]tables.ChangeRow, len(reqs))
			for i, r := range reqs {
				rows[i] = r.row
			}
			err := w.store.PutBatch(context.WithoutCancel(ctx), rows)
			for _, r := range reqs {
				r.done <- err
			}
		}
	}
}

func (w *changeWriter) write(ctx context.Context, row tables.ChangeRow) error {
	r := changeReq{row: row, done: make(chan error, 1)}
	select {
	case w.in <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ChangeBus is the realtime post-processor: it projects every event it sees to a Change
// (field names, never values) and puts it on the change bus.
type ChangeBus struct {
	hub    *hub
	writer *changeWriter
}

// Name implements PostProcessor.
func (*ChangeBus) Name() string { return "realtime" }

// Accepts implements PostProcessor: every event another concern knows.
func (*ChangeBus) Accepts(*platform.EntityEvent) bool { return true }

// Observer marks a concern that sees every event but does not make an event type known.
func (*ChangeBus) Observer() bool { return true }

// Process implements PostProcessor.
func (b *ChangeBus) Process(ctx context.Context, ev *platform.EntityEvent) error {
	id := platform.NewSourceKey()
	ch := ev.Change()
	if err := b.writer.write(ctx, tables.ChangeRow{ID: id, Change: ch}); err != nil {
		return err
	}
	b.hub.add(id, *ch)
	return nil
}

// serveChanges streams changes as Server-Sent Events: GET /v1/changes?businessUnitId=N&
// entityTypeId=M, resuming after the Last-Event-ID header (or lastEventId=) from the buffer.
func (w *Worker) serveChanges(rw http.ResponseWriter, r *http.Request) {
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
	backlog, gap, sub := w.hub.subscribe(last, want)
	defer w.hub.unsubscribe(sub)

	rw.Header().Set("Content-Type", "text/event-stream")
	rw.Header().Set("Cache-Control", "no-cache")
	rw.Header().Set("X-Accel-Buffering", "no")
	rw.WriteHeader(http.StatusOK)
	if gap {
		fmt.Fprint(rw, "event: gap\ndata: {\"reason\":\"the resume point is older than this replica's buffer; some changes were missed\"}\n\n")
	}
	sent := map[string]bool{}
	send := func(e entry) bool {
		if sent[e.id] || (last != "" && e.id <= last) {
			return true
		}
		sent[e.id] = true
		b, _ := json.Marshal(e.ch)
		_, err := fmt.Fprintf(rw, "id: %s\nevent: change\ndata: %s\n\n", e.id, b)
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
		case e, ok := <-sub.c:
			if !ok {
				return // too slow: the client resumes with Last-Event-ID
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
