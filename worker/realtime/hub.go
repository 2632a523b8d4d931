package realtime

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// Hub is a replica's view of the change stream: a bounded buffer ordered by change id, fed by
// this replica's own changes at once and by every replica's through the Changes table, and
// the stream clients subscribed to it.
type Hub struct {
	cfg   Config
	store *tables.Changes
	log   logrus.FieldLogger

	mu      sync.Mutex
	buf     []Entry
	ids     map[string]bool
	keys    map[string]bool // event keys in the buffer: a redelivered event is one change
	evicted string          // the largest id dropped from the buffer
	subs    map[*Subscription]struct{}
	closed  bool   // the worker is stopping: streams ended, none taken
	writer  string // this replica's name on the rows it writes (tables.ChangeRow.Writer)
	polled  string // the largest id read from the table
	swept   string // every replica's rows up to this id have been read (poll's sweep)

	signalled map[string]bool                        // signal ids acted on (a signal is read fresh, then swept)
	listeners map[string][]func(ctx context.Context) // by topic (OnSignal)
}

// Entry is one change and its id (a ULID: ids order changes by when they were made).
type Entry struct {
	ID     string
	Change platform.Change
}

// Subscription is one stream client's feed. C closes when the client is too slow (it
// resumes with Last-Event-ID) or the worker stops.
type Subscription struct {
	C    <-chan Entry
	c    chan Entry
	want func(*platform.Change) bool
}

// ErrClosed: the worker is stopping and takes no new stream.
var ErrClosed = errors.New("realtime: the worker is stopping")

// ErrDisabled: the change stream is off (Config.Disabled).
var ErrDisabled = errors.New("realtime: the change stream is off in this deployment")

func newHub(cfg Config, store *tables.Changes, log logrus.FieldLogger) *Hub {
	start := platform.SourceKeyAt(time.Now().Add(-time.Minute)) // the last minute fills the buffer
	return &Hub{cfg: cfg, store: store, log: log, ids: map[string]bool{}, keys: map[string]bool{}, subs: map[*Subscription]struct{}{},
		writer: platform.NewSourceKey(), polled: start, swept: start,
		signalled: map[string]bool{}, listeners: map[string][]func(context.Context){}}
}

// add puts a change in the buffer and hands it to the subscribers that want it. A
// subscriber too slow to take it is dropped: it reconnects with Last-Event-ID.
func (h *Hub) add(id string, ch platform.Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ids[id] || h.keys[ch.EventKey] || (h.evicted != "" && id <= h.evicted) {
		return
	}
	i, _ := slices.BinarySearchFunc(h.buf, id, func(e Entry, id string) int { return cmp.Compare(e.ID, id) })
	h.buf = slices.Insert(h.buf, i, Entry{ID: id, Change: ch})
	h.ids[id], h.keys[ch.EventKey] = true, true
	for len(h.buf) > h.cfg.BufferSize {
		old := h.buf[0]
		h.buf = h.buf[1:]
		delete(h.ids, old.ID)
		delete(h.keys, old.Change.EventKey)
		h.evicted = max(h.evicted, old.ID)
	}
	for s := range h.subs {
		if !s.want(&ch) {
			continue
		}
		select {
		case s.c <- Entry{ID: id, Change: ch}:
		default:
			delete(h.subs, s)
			close(s.c)
		}
	}
}

// Subscribe returns the buffered changes after lastID that want accepts, whether changes
// after lastID were already dropped from the buffer (a gap), and the live feed. It is
// ErrClosed once the worker is stopping.
func (h *Hub) Subscribe(lastID string, want func(*platform.Change) bool) (backlog []Entry, gap bool, s *Subscription, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.cfg.Disabled:
		return nil, false, nil, ErrDisabled
	case h.closed:
		return nil, false, nil, ErrClosed
	}
	c := make(chan Entry, 256)
	s = &Subscription{C: c, c: c, want: want}
	h.subs[s] = struct{}{}
	if lastID == "" {
		return nil, false, s, nil
	}
	gap = h.evicted != "" && lastID < h.evicted
	for _, e := range h.buf {
		if e.ID > lastID && want(&e.Change) {
			backlog = append(backlog, e)
		}
	}
	return backlog, gap, s, nil
}

// Close ends every stream (their feeds close; clients resume elsewhere with Last-Event-ID)
// and refuses new ones: the first thing a stopping worker does, so that no open stream holds
// up its HTTP server's shutdown.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.c)
	}
}

// Unsubscribe ends s's feed.
func (h *Hub) Unsubscribe(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.c)
	}
}

// poll reads the changes other replicas wrote and the signals any wrote. A change commits a
// little after its id was taken, so a row can appear below ids already read: each poll reads
// the rows of other replicas above the newest it read (fresh, streamed within a poll), and
// sweeps once, for every replica's rows, the ids that have since become older than
// Config.Lateness, which catches a row that committed late. So each row is read at most twice
// (once by its own replica), whatever the poll interval: the bus costs its readers a request
// per poll and a few entities per change, not Lateness/PollInterval times every change.
func (h *Hub) poll(ctx context.Context) {
	h.mu.Lock()
	fresh, swept := h.polled, h.swept
	h.mu.Unlock()
	horizon := platform.SourceKeyAt(time.Now().Add(-h.cfg.Lateness))
	fresh = max(fresh, horizon) // below the horizon is the sweep's
	rows, err := h.store.Poll(ctx, tables.PollRange{Fresh: fresh, Writer: h.writer, SweepFrom: swept, SweepTo: horizon})
	if err != nil {
		if ctx.Err() == nil {
			h.log.WithError(err).Warn("realtime: reading the change bus failed; next poll retries")
		}
		return
	}
	topics := map[string]bool{}
	for _, r := range rows {
		if r.Signal != "" {
			h.mu.Lock()
			if !h.signalled[r.ID] {
				h.signalled[r.ID], topics[r.Signal] = true, true
			}
			h.mu.Unlock()
		} else {
			h.add(r.ID, *r.Change)
		}
		h.mu.Lock()
		h.polled = max(h.polled, r.ID)
		h.mu.Unlock()
	}
	h.mu.Lock()
	h.swept = max(h.swept, horizon)
	h.mu.Unlock()
	h.forgetSignals(horizon)
	for topic := range topics { // each topic once per poll, however many signals it got
		h.mu.Lock()
		fns := h.listeners[topic]
		h.mu.Unlock()
		for _, fn := range fns {
			fn(ctx)
		}
	}
}

// OnSignal calls fn, from the poller, once per poll that read one or more signals on topic
// (tables.Changes.PutSignal), whichever replica wrote them.
func (h *Hub) OnSignal(topic string, fn func(ctx context.Context)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.listeners[topic] = append(h.listeners[topic], fn)
}

// forgetSignals drops the signal ids up to from, which the sweep has read: they are not read
// again.
func (h *Hub) forgetSignals(from string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := range h.signalled {
		if id <= from {
			delete(h.signalled, id)
		}
	}
}
