package api

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/history"
	"github.com/platform/platform/worker/notify"
)

// TimelinePage is the JSON body of GET /v1/timeline/...: a page of an entity's timeline, each
// row with what the same occurrence caused. Next, when set, is the after= of the next page
// (the same tokens as GET /v1/history's).
type TimelinePage struct {
	Items []TimelineRow `json:"items"`
	Next  string        `json:"next,omitempty"`
}

// TimelineRow is one history row, without its snapshot, and the effects of its event: the
// answer of its trace, its notification jobs with their messages, and its webhook deliveries.
// No body: no snapshot, no event data, no subject or text.
type TimelineRow struct {
	platform.HistoryRecord
	Answer     *notify.Answer    `json:"answer,omitempty"`
	Jobs       []TimelineJob     `json:"jobs,omitempty"`
	Deliveries []TimelineMessage `json:"deliveries,omitempty"`
}

// TimelineJob is one job an occurrence caused, and its messages.
type TimelineJob struct {
	JobKey                  string            `json:"jobKey"`
	NotificationEventTypeID int               `json:"notificationEventTypeId,omitempty"`
	Type                    string            `json:"type"` // the type named: "IncidentSubmitted (102)"
	State                   string            `json:"state"`
	Reason                  string            `json:"reason,omitempty"`
	Answer                  *notify.Answer    `json:"answer,omitempty"`
	Messages                []TimelineMessage `json:"messages,omitempty"`
}

// TimelineMessage is one message, or one webhook delivery (channel endpoint, recipient the
// endpoint's id), as a trace shows it (a webhook recipient's URL redacted).
type TimelineMessage struct {
	Key       string `json:"key"`
	Channel   string `json:"channel"`
	Recipient string `json:"recipient"`
	State     string `json:"state"`
	Attempts  int    `json:"attempts"`
}

// Timeline pages are smaller than history's: each row costs a trace.
const (
	timelineDefaultLimit = 20
	timelineMaxLimit     = 50
	timelineTraces       = 8 // traces of one page read at once
)

// serveTimeline answers one page of an entity's timeline, for support: the rows as GET
// /v1/history pages them (newest first, the caller's business units only, 404 for a first
// page with none, the same sealed tokens), without snapshots, each with the effects its
// event caused, read by tracing the row's event key as GET /v1/trace would (bodies withheld,
// and dropped here).
//
// Cost, in storage requests: the page's table read (one request, more when many rows of other
// units are skipped), then per row its event's trace: 2 (the rules' decisions, the history
// row) + per notification job 1 + 1 per message + 1 per webhook endpoint subscribed to the
// event type + 1 per job cancelled (when its key was cancelled). A page of 20 rows each with
// one job of one message is about 81 requests, read 8 traces at a time. All of it is bounded by
// Limits.SupportReadTimeout (504 past it).
func (d *server) serveTimeline(rw http.ResponseWriter, asked *http.Request) {
	r, cancel := d.supportRead(asked)
	defer cancel()
	q, ok := d.timelineQuery(rw, r, timelineMaxLimit)
	if !ok {
		return
	}
	if q.opts.Limit == 0 {
		q.opts.Limit = timelineDefaultLimit
	}
	// The table read is bounded as history's is: the snapshots are read, then dropped.
	q.opts.MaxBytes = history.PagePayloads * d.Blobs.MaxPayloadBytes()
	rows, next, err := d.History.Timeline(r.Context(), q.entityTypeID, q.identity, &q.opts)
	if d.timedOut(rw, asked, "read the timeline", err) {
		return
	}
	if rows, next, ok = d.timelineEnd(rw, r, q, rows, next, err); !ok {
		return
	}
	items, err := d.effects(r.Context(), rows, principal(r).Visible())
	if err != nil {
		if !d.timedOut(rw, asked, "trace the timeline's events", err) {
			d.storageError(rw, "trace the timeline's events", err)
		}
		return
	}
	writeJSON(rw, http.StatusOK, TimelinePage{Items: items, Next: next})
}

// effects traces each row's event, timelineTraces at a time. A row whose trace is not found
// (its event's own history row is not the reader's, or is on no timeline) has no effects; any
// other failure fails the page.
func (d *server) effects(ctx context.Context, rows []platform.HistoryRecord, visible func(int64) bool) ([]TimelineRow, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	items := make([]TimelineRow, len(rows))
	errs := make([]error, len(rows))
	slots := make(chan struct{}, timelineTraces)
	var wg sync.WaitGroup
	for i := range rows {
		rec := rows[i]
		rec.Snapshot, rec.SnapshotBlob, rec.SnapshotError = nil, "", ""
		items[i].HistoryRecord = rec
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			t, err := d.Notify.Trace(ctx, rec.EventKey, &notify.TraceOptions{Visible: visible})
			switch {
			case errors.Is(err, platform.ErrNotFound), errors.Is(err, platform.ErrInvalidInput):
				return
			case err != nil:
				errs[i] = err
				cancel()
				return
			}
			items[i].fill(t)
		})
	}
	wg.Wait()
	return items, errors.Join(errs...)
}

// fill copies what a row shows of trace t: states, keys and recipients as the trace shows
// them; never a body.
func (row *TimelineRow) fill(t *notify.Trace) {
	row.Answer = t.Answer
	for _, tj := range t.Jobs {
		j := TimelineJob{JobKey: tj.JobKey, Type: tj.Type, State: "not created", Answer: tj.Answer}
		if tj.Job != nil {
			j.NotificationEventTypeID, j.State, j.Reason = tj.Job.NotificationEventTypeID, string(tj.Job.State), tj.Job.Reason
		}
		for _, m := range tj.Messages {
			j.Messages = append(j.Messages, timelineMessage(m))
		}
		row.Jobs = append(row.Jobs, j)
	}
	for _, m := range t.Deliveries {
		row.Deliveries = append(row.Deliveries, timelineMessage(m))
	}
}

func timelineMessage(m *platform.OutgoingMessage) TimelineMessage {
	r := m.Recipient.Shown()
	return TimelineMessage{Key: platform.ShownKey(m.Key), Channel: r.Channel, Recipient: r.Address, State: string(m.State), Attempts: m.Attempts}
}
