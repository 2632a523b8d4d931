package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/notify"
)

func init() {
	pages = append(pages, page{"GET /console/trace", (*console).serveTrace})
}

// traceView is what the trace page shows: the trace as GET /v1/trace answers it (bodies
// withheld), with the links and words the page adds.
type traceView struct {
	*notify.Trace
	AnswerClass string // the answer's tone as a CSS class
	Timeline    string // the event's row on its entity's timeline; "" without a history row
	Derived     []string
	Jobs        []traceJobView
	Deliveries  []traceMessageView
}

type traceJobView struct {
	notify.TraceJob
	ReasonCode  string // the job's reason code ("no-template" of "no-template: name")
	ReasonWords string
	AnswerClass string
	Messages    []traceMessageView
}

type traceMessageView struct {
	*platform.OutgoingMessage
	Latency   string
	ByAddress string // the messages page for its address (email only)
}

// serveTrace shows what GET /v1/trace answers for ?key=: the answer in one sentence, then the
// event, the rules' decisions, each job with its trail and messages, the webhook deliveries
// and the trace's notes. No body: the console never asks for one.
func (c *console) serveTrace(rw http.ResponseWriter, r *http.Request, s *session) {
	key := strings.TrimSpace(r.URL.Query().Get("key"))
	if key == "" {
		http.Redirect(rw, r, Prefix, http.StatusSeeOther)
		return
	}
	var t notify.Trace
	if err := c.call(r, s, http.MethodGet, "/v1/trace?key="+url.QueryEscape(key), nil, &t); err != nil {
		c.fail(rw, r, s, err)
		return
	}
	c.render(rw, r, s, http.StatusOK, "trace", view{Title: "Trace", Query: key, Data: newTraceView(&t)})
}

func newTraceView(t *notify.Trace) traceView {
	v := traceView{Trace: t}
	if t.Answer != nil {
		v.AnswerClass = answerClass(t.Answer.Tone)
	}
	if e := t.Event; e != nil {
		if h := e.History; h != nil {
			v.Timeline = timeline(h.EntityTypeID, h.EntityIdentity, h.HistoryEventKey)
		}
		for _, id := range e.Derived {
			name := "type " + strconv.Itoa(id)
			for _, tj := range t.Jobs {
				if tj.Job != nil && tj.Job.NotificationEventTypeID == id && tj.Type != "" {
					name = tj.Type
				}
			}
			v.Derived = append(v.Derived, name)
		}
	}
	for _, tj := range t.Jobs {
		jv := traceJobView{TraceJob: tj}
		if tj.Answer != nil {
			jv.AnswerClass = answerClass(tj.Answer.Tone)
		}
		if tj.Job != nil && tj.Job.Reason != "" {
			jv.ReasonCode, _, _ = strings.Cut(tj.Job.Reason, ": ")
			jv.ReasonWords = reasonWords[jv.ReasonCode]
		}
		for _, m := range tj.Messages {
			jv.Messages = append(jv.Messages, newMessageView(m))
		}
		v.Jobs = append(v.Jobs, jv)
	}
	for _, m := range t.Deliveries {
		v.Deliveries = append(v.Deliveries, newMessageView(m))
	}
	return v
}

func newMessageView(m *platform.OutgoingMessage) traceMessageView {
	v := traceMessageView{OutgoingMessage: m}
	if m.LastLatencyMs > 0 {
		v.Latency = strconv.FormatInt(m.LastLatencyMs, 10) + " ms"
	}
	if m.Recipient.Channel == platform.ChannelEmail {
		v.ByAddress = "/console/messages?address=" + url.QueryEscape(m.Recipient.Address)
	}
	return v
}

// answerClass is the CSS class of an answer's tone, from a fixed set.
func answerClass(tone string) string {
	switch tone {
	case notify.ToneOK, notify.ToneWait, notify.ToneWarn, notify.ToneBad:
		return "tone-" + tone
	}
	return "tone-none"
}

// reasonWords say what each reason code a job settles with means.
var reasonWords = map[string]string{
	platform.ReasonOptionNotSeeded:    "the type is not turned on for the business unit (no NotificationOption row)",
	platform.ReasonDisabled:           "the type is turned off for the business unit (IsEnabled = 0)",
	platform.ReasonCancelled:          "its cancellation key was cancelled before it was generated",
	platform.ReasonCancelledBySupport: "cancelled by hand before it was released (the trail says who and why)",
	platform.ReasonNoRecipients:       "nobody to send to",
	platform.ReasonRecipientsRefused:  "every recipient was refused (the trail says why)",
	platform.ReasonTooManyRecipients:  "more recipients than one notification may have",
	platform.ReasonNoGeneratorHandler: "the type is not registered in this deployment",
	platform.ReasonNoTemplate:         "its template does not exist",
	platform.ReasonTemplateError:      "its template failed to render",
	platform.ReasonNoChannel:          "no recipient is on a channel the business unit enables",
	platform.ReasonConflict:           "different content arrived under its key: never sent",
}
