package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/platform/platform"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
)

// Attention is what needs a person: jobs and messages stopped where no stage will move them,
// created in the window, and what lies in the poison queues. GET /v1/attention answers it.
type Attention struct {
	Since    time.Time         `json:"since"`
	Jobs     AttentionJobs     `json:"jobs"`
	Messages AttentionMessages `json:"messages"`
	// Poison is each work queue's poison twin, for a caller that sees every business unit
	// only (Notes says so to another).
	Poison []AttentionPoison `json:"poison,omitempty"`
	Notes  []string          `json:"notes,omitempty"`
}

// AttentionJobs are the newest jobs in Conflict or Failed. More: more matched than Items
// holds. Incomplete: the scan stopped at its bound of requests before the end of the table, so
// more may match, and Items are the newest of the rows it read.
type AttentionJobs struct {
	Items      []AttentionJob `json:"items"`
	More       bool           `json:"more"`
	Incomplete bool           `json:"incomplete,omitempty"`
}

// AttentionJob is a job's summary: no event data, no trail (the trace has them).
type AttentionJob struct {
	JobKey                  string    `json:"jobKey"`
	NotificationEventTypeID int       `json:"notificationEventTypeId"`
	BusinessUnitID          int64     `json:"businessUnitId"`
	State                   string    `json:"state"`
	Reason                  string    `json:"reason,omitempty"`
	CreatedAt               time.Time `json:"createdAt"`
}

// AttentionMessages are the newest messages Unknown, Failed or Conflict; More and Incomplete
// as for jobs.
type AttentionMessages struct {
	Items      []AttentionMessage `json:"items"`
	More       bool               `json:"more"`
	Incomplete bool               `json:"incomplete,omitempty"`
}

// AttentionMessage is a message's summary: no subject or body. The key and recipient are
// shown as a trace shows them (a webhook URL redacted).
type AttentionMessage struct {
	MessageKey     string    `json:"messageKey"`
	JobKey         string    `json:"jobKey"`
	BusinessUnitID int64     `json:"businessUnitId"`
	Channel        string    `json:"channel"`
	Recipient      string    `json:"recipient"`
	State          string    `json:"state"`
	Attempts       int       `json:"attempts"`
	LastError      string    `json:"lastError,omitempty"`
	CreatedAt      time.Time `json:"createdAt"`
}

// AttentionPoison is one work queue's poison twins (one per shard, and those of another shard
// count that still exist): their approximate count, summed (invisible messages included), and
// the first visible ones.
type AttentionPoison struct {
	Queue string          `json:"queue"`
	Count int             `json:"count"`
	Items []PoisonSummary `json:"items"`
}

// PoisonSummary is one poison message: never its whole body, only what identifies it.
type PoisonSummary struct {
	ID string `json:"id"` // its id in the poison queue: redrive one by it
	// Queue is the physical queue whose poison twin holds it, when that is not the work queue
	// itself: a shard ("entity-events-3"). Redrive it by this name.
	Queue      string    `json:"queue,omitempty"`
	InsertedAt time.Time `json:"insertedAt"`
	FailedAt   time.Time `json:"failedAt,omitzero"`
	Attempts   int64     `json:"attempts"`
	Reason     string    `json:"reason"`
	Host       string    `json:"host,omitempty"`
	About      string    `json:"about"`
}

// maxPoisonItems is the most poison messages a work queue's section lists: one peek's worth,
// whatever its shards hold.
const maxPoisonItems = 32

// The window GET /v1/attention reads: 7 days unless asked, at most 31.
const (
	attentionWindow    = 7 * 24 * time.Hour
	maxAttentionWindow = 31 * 24 * time.Hour
)

// serveAttention answers GET /v1/attention?since=DURATION|RFC3339: the jobs in Conflict or
// Failed and the messages Unknown, Failed or Conflict created since then (of the caller's
// business units), and, for a caller that sees every unit, the poison queues.
//
// Each list is the newest 100 of what matched, by creation time.
//
// Cost: the jobs and messages are two scans — the table service reads every row of each table
// (they are keyed by job and message key, with no index by state), and answers in pages of at
// most 1000 matches, 20 pages at most each; the poison section is one listing of the queues,
// then a count per poison queue and a peek per one that is not empty (with one shard, two
// requests per work queue). A page support opens, not a hot path; bounded by
// Limits.SupportReadTimeout (504 past it).
func (d *server) serveAttention(rw http.ResponseWriter, r *http.Request) {
	since, ok := attentionSince(r.URL.Query().Get("since"), time.Now())
	if !ok {
		writeError(rw, http.StatusBadRequest, `since: want a duration such as "24h" or "7d", or an RFC 3339 time, within the last 31 days`)
		return
	}
	p := principal(r)
	bounded, cancel := d.supportRead(r)
	defer cancel()
	ctx := bounded.Context()
	fail := func(what string, err error) {
		if !d.timedOut(rw, r, what, err) {
			d.storageError(rw, what, err)
		}
	}
	var units []int64
	if !p.AllUnits() {
		units = append([]int64{}, p.Units.IDs...)
	}
	out := Attention{Since: since, Jobs: AttentionJobs{Items: []AttentionJob{}}, Messages: AttentionMessages{Items: []AttentionMessage{}}}

	jobs, end, err := d.Jobs.ListStates(ctx, tables.StateScan{States: []string{string(platform.JobConflict), string(platform.JobFailed)}, Since: since, Units: units})
	if err != nil {
		fail("scan the jobs that need attention", err)
		return
	}
	out.Jobs.More, out.Jobs.Incomplete = end.More, end.Incomplete
	out.Notes = append(out.Notes, scanNotes("jobs", tables.TableNotificationJobs, len(jobs), end)...)
	for _, j := range jobs {
		out.Jobs.Items = append(out.Jobs.Items, AttentionJob{JobKey: j.Key, NotificationEventTypeID: j.NotificationEventTypeID,
			BusinessUnitID: j.BusinessUnitID, State: string(j.State), Reason: j.Reason, CreatedAt: j.CreatedAt})
	}
	msgs, end, err := d.Messages.ListStates(ctx, tables.StateScan{Since: since, Units: units,
		States: []string{string(platform.MessageUnknown), string(platform.MessageFailed), string(platform.MessageConflict)}})
	if err != nil {
		fail("scan the messages that need attention", err)
		return
	}
	out.Messages.More, out.Messages.Incomplete = end.More, end.Incomplete
	out.Notes = append(out.Notes, scanNotes("messages", tables.TableOutgoingMessages, len(msgs), end)...)
	for _, m := range msgs {
		shown := m.Recipient.Shown()
		out.Messages.Items = append(out.Messages.Items, AttentionMessage{MessageKey: platform.ShownKey(m.Key), JobKey: m.JobKey,
			BusinessUnitID: m.BusinessUnitID, Channel: shown.Channel, Recipient: shown.Address, State: string(m.State),
			Attempts: m.Attempts, LastError: clip(m.LastError, 500), CreatedAt: m.CreatedAt})
	}

	if !p.AllUnits() {
		out.Notes = append(out.Notes, "poison queues are shown only to a principal that sees every business unit: a poison message carries no dependable business unit")
		writeJSON(rw, http.StatusOK, out)
		return
	}
	set, err := d.Queues.WorkQueues(ctx)
	if err != nil {
		fail("list the poison queues", err)
		return
	}
	for _, q := range platform.WorkQueues {
		section := AttentionPoison{Queue: q, Items: []PoisonSummary{}}
		for _, physical := range set[q].Poisoned {
			n, err := d.Queues.ApproximateCount(ctx, platform.PoisonQueue(physical))
			if err != nil {
				fail("count poison messages", err)
				return
			}
			section.Count += n
			if n == 0 || len(section.Items) >= maxPoisonItems {
				continue
			}
			peeked, err := d.Queues.PeekPoison(ctx, physical)
			if err != nil {
				fail("peek poison messages", err)
				return
			}
			for _, pm := range peeked[:min(len(peeked), maxPoisonItems-len(section.Items))] {
				item := PoisonSummary{ID: pm.ID, InsertedAt: pm.InsertedAt, FailedAt: pm.Record.FailedAt,
					Attempts: pm.Record.Attempts, Reason: clip(pm.Record.Reason, 300), Host: clip(pm.Record.Host, 100), About: about(q, pm)}
				if physical != q {
					item.Queue = physical
				}
				section.Items = append(section.Items, item)
			}
		}
		out.Poison = append(out.Poison, section)
	}
	writeJSON(rw, http.StatusOK, out)
}

// scanNotes word how the scan of table for what (jobs, messages) ended, when it was cut: more
// matched than the n listed, or the scan stopped at its bound before the table's end. Neither
// is helped by a narrower window: CreatedAt is not a key, so the scan reads as much.
func scanNotes(what, table string, n int, end tables.ScanEnd) []string {
	var notes []string
	if end.More {
		notes = append(notes, fmt.Sprintf("more %s need attention than the %d listed: these are the newest", what, n))
	}
	if end.Incomplete {
		notes = append(notes, fmt.Sprintf("the scan of %s read its bound of %d requests and the table is larger: more %s may need attention, "+
			"and those listed are the newest of the rows it read (creation time is not a key: a shorter window reads as much)", table, end.Pages, what))
	}
	return notes
}

// attentionSince reads since: a duration back from now ("24h", "7d"), or an instant; empty is
// the default window. It must lie within the last 31 days.
func attentionSince(v string, now time.Time) (time.Time, bool) {
	if v == "" {
		return now.Add(-attentionWindow), true
	}
	var since time.Time
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return time.Time{}, false
		}
		since = now.Add(-time.Duration(n) * 24 * time.Hour)
	} else if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return time.Time{}, false
		}
		since = now.Add(-d)
	} else if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		since = t
	} else {
		return time.Time{}, false
	}
	if since.Before(now.Add(-maxAttentionWindow)) || since.After(now) {
		return time.Time{}, false
	}
	return since.UTC(), true
}

// about identifies a poison message's body without showing it: on entity-events the key of the
// event it is, on a stage's queue the job, message or run key its message names; anything else
// only by its shape (shape). Never the body's text: an event that fails to decode still
// carries its payload's values, personal data support need not see here.
func about(queue string, pm queues.PoisonMessage) string {
	body := pm.Record.Body
	if pm.Record.BodyBlob != "" {
		return "(its body is kept in storage: too large for a message)"
	}
	if queue == platform.QueueEntityEvents {
		if ev, err := platform.DecodeEvent([]byte(body)); err == nil {
			return "event " + ev.Key()
		}
		return shape(body)
	}
	var stage struct {
		JobKey     string `json:"jobKey"`
		MessageKey string `json:"messageKey"`
		RunID      string `json:"runId"`
	}
	if json.Unmarshal([]byte(body), &stage) == nil {
		switch {
		case stage.MessageKey != "":
			return "message " + clip(platform.ShownKey(stage.MessageKey), 600)
		case stage.JobKey != "":
			return "job " + clip(stage.JobKey, 600)
		case stage.RunID != "":
			return "run " + clip(stage.RunID, 100)
		}
	}
	return shape(body)
}

// The most field names shape lists, and the most characters of each.
const (
	shapeFields    = 12
	shapeFieldName = 40
)

// shape describes a body by its form alone: a JSON object's top-level field names (sorted,
// each clipped, at most 12) and its size; else its size and whether it is JSON.
func shape(body string) string {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &fields); err != nil || fields == nil {
		if json.Valid([]byte(body)) {
			return fmt.Sprintf("%d bytes of JSON, not an object", len(body))
		}
		return fmt.Sprintf("%d bytes, not JSON", len(body))
	}
	if len(fields) == 0 {
		return fmt.Sprintf("a JSON object of %d bytes, no fields", len(body))
	}
	names := slices.Sorted(maps.Keys(fields))
	for i, n := range names {
		if n = clip(n, shapeFieldName); strings.IndexFunc(n, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			n = strconv.QuoteToGraphic(n)
		}
		names[i] = n
	}
	if len(names) > shapeFields {
		names = append(names[:shapeFields], fmt.Sprintf("and %d more", len(fields)-shapeFields))
	}
	return fmt.Sprintf("a JSON object of %d bytes, fields %s", len(body), strings.Join(names, ", "))
}

// clip keeps the first n characters of s (whole runes), marking a cut with "…".
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
