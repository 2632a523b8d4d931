package notify

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/mappings"
)

// Answer is a trace's reply, in one sentence, to what support asks of its key: did it send,
// and if not, why not and what would make it. It quotes no body and no secret: recipients as
// a trace shows them (a webhook URL redacted), reasons and errors as the rows record them.
type Answer struct {
	Text string `json:"text"`
	// Tone is how it ended: ok (done as asked), wait (on its way), warn (settled without
	// sending, by a rule or a setting), bad (a person must act).
	Tone string `json:"tone"`
}

// The tones of an answer, from the least to the most in need of a person.
const (
	ToneOK   = "ok"
	ToneWait = "wait"
	ToneWarn = "warn"
	ToneBad  = "bad"
)

func toneRank(tone string) int {
	return slices.Index([]string{ToneOK, ToneWait, ToneWarn, ToneBad}, tone)
}

// typeName is how an answer names notification type id: "IncidentSubmitted (102)", or "type
// 102" for a type this deployment does not register.
func typeName(lookup func(int) (mappings.NotificationType, bool), id int) string {
	if t, ok := lookup(id); ok && t.Name != "" {
		return t.Name + " (" + strconv.Itoa(id) + ")"
	}
	return "type " + strconv.Itoa(id)
}

// answerFacts are what the answers need besides the trace: the registry's notification types,
// and when a cancelled job's cancellation key was cancelled (by job key; absent: not known).
type answerFacts struct {
	types       func(id int) (mappings.NotificationType, bool)
	cancelledAt map[string]time.Time
}

// answer gives t and each of its jobs their answers. It reads one thing more than the trace
// did: for a job cancelled, when its key was cancelled (one request each; a failure leaves the
// time out of the sentence).
func (s *Service) answer(ctx context.Context, t *Trace) {
	f := answerFacts{types: s.d.Types.Lookup, cancelledAt: map[string]time.Time{}}
	for _, tj := range t.Jobs {
		if j := tj.Job; j != nil && j.CancellationKey != "" && reasonCode(j.Reason) == platform.ReasonCancelled {
			if at, err := s.cancellations.CancelledAt(ctx, j.CancellationKey, j.BusinessUnitID); err == nil && !at.IsZero() {
				f.cancelledAt[j.Key] = at
			}
		}
	}
	setAnswers(t, f)
}

// setAnswers is answer's pure part.
func setAnswers(t *Trace, f answerFacts) {
	for i := range t.Jobs {
		tj := &t.Jobs[i]
		if tj.Job != nil {
			tj.Type = typeName(f.types, tj.Job.NotificationEventTypeID)
		} else if id, ok := jobType(tj.JobKey); ok {
			tj.Type = typeName(f.types, id)
		}
		if t.Kind != "message" { // a message's trace holds only that message of its job
			a := jobAnswer(*tj, f)
			tj.Answer = &a
		}
	}
	a := traceAnswer(t, f)
	t.Answer = &a
}

// traceAnswer answers for the key t traced.
func traceAnswer(t *Trace, f answerFacts) Answer {
	switch t.Kind {
	case "delivery":
		if len(t.Deliveries) == 0 {
			return Answer{"No such delivery: the event has not been processed yet, or the endpoint did not subscribe to its type when it was.", ToneWarn}
		}
		return messageAnswer(t.Deliveries[0])
	case "message":
		if len(t.Jobs) == 1 && len(t.Jobs[0].Messages) == 1 {
			return messageAnswer(t.Jobs[0].Messages[0])
		}
		if len(t.Jobs) == 1 && t.Jobs[0].Job != nil && t.Jobs[0].Job.State != platform.JobGenerated {
			return jobAnswer(TraceJob{JobKey: t.Jobs[0].JobKey, Job: t.Jobs[0].Job}, f) // why its job made no message
		}
		if len(t.Jobs) == 1 && t.Jobs[0].Job != nil {
			return Answer{fmt.Sprintf("No such message: its job was generated with %s, not this one.", plural(len(t.Jobs[0].Job.MessageKeys), "message")), ToneWarn}
		}
	case "job":
		if len(t.Jobs) == 1 {
			return jobAnswer(t.Jobs[0], f)
		}
	case "event":
		return eventAnswer(t, f)
	}
	return jobAnswer(TraceJob{}, f)
}

// eventAnswer answers for an event: what its history row says of it, else the effect that
// most needs a person (its jobs and webhook deliveries), naming the others.
func eventAnswer(t *Trace, f answerFacts) Answer {
	e := t.Event
	switch {
	case e != nil && e.History == nil && len(t.Automations) > 0:
		return Answer{fmt.Sprintf("No notification: the event's type has no history rule, and only automation rules decided on it (%s).",
			plural(len(t.Automations), "decision")), ToneWarn}
	case e == nil || e.History == nil:
		return Answer{"Not processed: the worker has no history row for this event — it is still queued, or was poisoned (look in entity-events-poison), or its type has no history rule.", ToneWarn}
	case t.mappingError != "":
		return Answer{"No notification: the event's notification mapping fails (" + clip(t.mappingError) + ") — fix the mapping, then publish the event again.", ToneBad}
	}
	type effect struct {
		label, state string
		answer       Answer
	}
	var effects []effect
	for _, tj := range t.Jobs {
		label, state := "notification "+tj.JobKey, "not created"
		if tj.Job != nil {
			label, state = typeName(f.types, tj.Job.NotificationEventTypeID), string(tj.Job.State)
		} else if id, ok := jobType(tj.JobKey); ok {
			label = typeName(f.types, id)
		}
		effects = append(effects, effect{label, state, jobAnswer(tj, f)})
	}
	for _, d := range t.Deliveries {
		effects = append(effects, effect{"webhook delivery to endpoint " + d.Recipient.Address, string(d.State), messageAnswer(d)})
	}
	if len(effects) == 0 {
		return Answer{fmt.Sprintf("No notification: the event carries no hint (notificationEventTypeId) and no mapping of event type %d asked for one — nothing was meant to be sent.",
			e.History.EventTypeID), ToneWarn}
	}
	worst := 0
	for i, ef := range effects {
		if toneRank(ef.answer.Tone) > toneRank(effects[worst].answer.Tone) {
			worst = i
		}
	}
	a := effects[worst].answer
	if len(effects) > 1 && !strings.Contains(a.Text, effects[worst].label) {
		a.Text = effects[worst].label + ": " + a.Text
	}
	var others []string
	for i, ef := range effects {
		if i != worst {
			others = append(others, ef.label+" "+ef.state)
		}
	}
	if len(t.Jobs) == 0 {
		others = append(others, "no notification (the event names none)")
	}
	if len(others) > 0 {
		a.Text = strings.TrimSuffix(a.Text, ".") + "; also " + strings.Join(others, ", ") + "."
	}
	return a
}

// jobType is the notification type an event-derived job key names.
func jobType(jobKey string) (int, bool) {
	rest, ok := strings.CutPrefix(jobKey, "notification-job:")
	if !ok {
		return 0, false
	}
	id, _, _ := strings.Cut(rest, ":")
	n, err := strconv.Atoi(id)
	return n, err == nil
}

// jobAnswer answers for one job: where it is, and for one that settled without sending, its
// reason in words with what would make it send.
func jobAnswer(tj TraceJob, f answerFacts) Answer {
	j := tj.Job
	if j == nil {
		return Answer{"No such job yet: the event has not reached the notification concern, or failed there (look in entity-events-poison).", ToneWait}
	}
	if rule, ok := jobStates[j.State]; ok {
		return rule(tj, f)
	}
	return Answer{"State " + string(j.State) + ".", ToneWait}
}

// jobStates answer for a job in each state.
var jobStates = map[platform.JobState]func(TraceJob, answerFacts) Answer{
	platform.JobCreated: func(tj TraceJob, _ answerFacts) Answer {
		return Answer{"Waiting: created at " + at(tj.Job.CreatedAt) + "; the scheduler decides whether and when it goes out.", ToneWait}
	},
	platform.JobScheduled: func(tj TraceJob, _ answerFacts) Answer {
		return Answer{"Waiting: due at " + at(tj.Job.DueAt) + " (a delay or sendAt holds it); then the generator makes its messages.", ToneWait}
	},
	platform.JobGenerating: func(tj TraceJob, _ answerFacts) Answer {
		return Answer{"Generating: released to the generator at " + at(tj.Job.DueAt) + "; its messages are being made.", ToneWait}
	},
	platform.JobGenerated: func(tj TraceJob, _ answerFacts) Answer { return messagesAnswer(tj) },
	platform.JobSkipped:   settledAnswer,
	platform.JobFailed:    settledAnswer,
	platform.JobConflict: func(tj TraceJob, f answerFacts) Answer {
		return reasonAnswer(tj.Job, platform.ReasonConflict, "", f)
	},
}

// settledAnswer answers for a job Skipped or Failed, by its reason.
func settledAnswer(tj TraceJob, f answerFacts) Answer {
	code, detail, _ := strings.Cut(tj.Job.Reason, ": ")
	return reasonAnswer(tj.Job, code, detail, f)
}

// reasonCode is the code of a job's reason ("no-template: name" → "no-template").
func reasonCode(reason string) string {
	code, _, _ := strings.Cut(reason, ": ")
	return code
}

// reasonFacts are what a reason's sentence names.
type reasonFacts struct {
	job     *platform.NotificationJob
	name    string // the job's type, named
	unit    int64
	detail  string // what the reason carries after its code: a template's name, an error
	render  *mappings.Renderer
	refused int       // recipients refused, by the job's trail
	at      time.Time // when its cancellation key was cancelled; zero: not known
}

// reasons say, for each reason code a job settles with, what happened and what would make it
// send. Every code platform defines has one (the tests hold it to that).
var reasons = map[string]struct {
	tone string
	text func(r reasonFacts) string
}{
	platform.ReasonOptionNotSeeded: {ToneWarn, func(r reasonFacts) string {
		return fmt.Sprintf("Skipped: %s is not turned on for business unit %d — seed a NotificationOption row for it.", r.name, r.unit)
	}},
	platform.ReasonDisabled: {ToneWarn, func(r reasonFacts) string {
		return fmt.Sprintf("Skipped: %s is turned off (IsEnabled = 0) for business unit %d — set IsEnabled in its NotificationOption row if it should send.", r.name, r.unit)
	}},
	platform.ReasonCancelled: {ToneWarn, func(r reasonFacts) string {
		if r.at.IsZero() {
			return fmt.Sprintf("Cancelled: cancellation key %s was cancelled after the job was created, before it was generated.", r.job.CancellationKey)
		}
		return fmt.Sprintf("Cancelled: cancellation key %s was cancelled at %s, after the job was created at %s.", r.job.CancellationKey, at(r.at), at(r.job.CreatedAt))
	}},
	platform.ReasonCancelledBySupport: {ToneWarn, func(r reasonFacts) string {
		for i := len(r.job.Trail) - 1; i >= 0; i-- {
			if st := r.job.Trail[i]; st.Stage == "support" {
				why := strings.TrimPrefix(st.Reason, platform.ReasonCancelledBySupport+": ")
				return fmt.Sprintf("Cancelled by hand at %s, before it was released: %s.", at(st.At), why)
			}
		}
		return "Cancelled by hand, before it was released (the trail says who and why)."
	}},
	platform.ReasonNoRecipients: {ToneWarn, func(r reasonFacts) string {
		switch {
		case r.render != nil && r.render.Recipients != nil:
			return fmt.Sprintf("Skipped: no recipients — %s takes its recipient from the event data, which had no address — send the address with the event.", r.name)
		case r.render != nil && r.render.Subscribers:
			return fmt.Sprintf("Skipped: no recipients — %s goes to the business unit's subscribers, and business unit %d has none — add a NotificationSubscriber row for it.", r.name, r.unit)
		}
		return fmt.Sprintf("Skipped: no recipients — the job named none and %s finds none of its own — send the recipients with the job.", r.name)
	}},
	platform.ReasonRecipientsRefused: {ToneWarn, func(r reasonFacts) string {
		return fmt.Sprintf("Skipped: every recipient was refused (%s refused; the trail says why, one by one) — correct the addresses in the event data or the NotificationSubscriber rows.",
			plural(r.refused, "recipient"))
	}},
	platform.ReasonTooManyRecipients: {ToneBad, func(r reasonFacts) string {
		return fmt.Sprintf("Failed: more than %d recipients — a notification goes to at most %d; send it as several jobs.", MaxRecipients, MaxRecipients)
	}},
	platform.ReasonNoGeneratorHandler: {ToneBad, func(r reasonFacts) string {
		return fmt.Sprintf("Failed: notification type %d is not registered in this deployment (it was removed after the job was created) — register it again; this job is not sent.",
			r.job.NotificationEventTypeID)
	}},
	platform.ReasonNoTemplate: {ToneBad, func(r reasonFacts) string {
		return fmt.Sprintf("Failed: template %s of %s does not exist (%s/%s.json), and no built-in default stands in for it — upload it, then send the notification again.",
			r.detail, r.name, platform.ContainerNotificationTemplates, r.detail)
	}},
	platform.ReasonTemplateError: {ToneBad, func(r reasonFacts) string {
		return fmt.Sprintf("Failed: the template of %s failed to render (%s) — fix the template, then send the notification again.", r.name, clip(r.detail))
	}},
	platform.ReasonNoChannel: {ToneWarn, func(r reasonFacts) string {
		channels := ""
		if cs := recipientChannels(r.job.Recipients); len(cs) > 0 {
			channels = " (" + strings.Join(cs, ", ") + ")"
		}
		return fmt.Sprintf("Skipped: no recipient's channel%s is enabled for %s in business unit %d — add it to the Channels of its NotificationOption row.", channels, r.name, r.unit)
	}},
	platform.ReasonConflict: {ToneBad, func(r reasonFacts) string {
		return fmt.Sprintf("Conflict: different content arrived under job key %s, so it is never sent — one key (an event's, or an idempotency key) was used with different data: find the second writer.",
			platform.ShownKey(r.job.Key))
	}},
}

// reasonAnswer answers for job j, settled with reason code (and what the reason carried).
func reasonAnswer(j *platform.NotificationJob, code, detail string, f answerFacts) Answer {
	r := reasonFacts{job: j, name: typeName(f.types, j.NotificationEventTypeID), unit: j.BusinessUnitID, detail: detail,
		refused: refusedRecipients(j.Trail), at: f.cancelledAt[j.Key]}
	if t, ok := f.types(j.NotificationEventTypeID); ok {
		r.render = t.Render
	}
	rule, ok := reasons[code]
	if !ok {
		text := string(j.State)
		if j.Reason != "" {
			text += " (" + clip(j.Reason) + ")"
		}
		return Answer{text + ".", ToneWarn}
	}
	return Answer{rule.text(r), rule.tone}
}

// refusedRecipients counts the recipients the trail's steps refused ("and N more" counts N).
func refusedRecipients(trail []platform.Step) int {
	n := 0
	for _, s := range trail {
		if s.Decision != "recipient refused" {
			continue
		}
		if more, ok := strings.CutPrefix(s.Reason, "and "); ok {
			if k, err := strconv.Atoi(strings.TrimSuffix(more, " more")); err == nil {
				n += k
				continue
			}
		}
		n++
	}
	return n
}

// messagesAnswer answers for a generated job by its messages: the one that most needs a
// person (Unknown, Conflict, Failed), else those on their way, else how many were sent.
func messagesAnswer(tj TraceJob) Answer {
	n := max(len(tj.Job.MessageKeys), len(tj.Messages))
	if n == 0 {
		return Answer{"Generated with no message: nothing was sent.", ToneWarn}
	}
	count := map[platform.MessageState][]*platform.OutgoingMessage{}
	for _, m := range tj.Messages {
		count[m.State] = append(count[m.State], m)
	}
	sent := len(count[platform.MessageSent])
	prefix := func(state platform.MessageState) string {
		if n == 1 {
			return ""
		}
		return fmt.Sprintf("%d of %d sent; %d ", sent, n, len(count[state]))
	}
	for _, state := range []platform.MessageState{platform.MessageUnknown, platform.MessageConflict, platform.MessageFailed, platform.MessageSending, platform.MessagePending} {
		if ms := count[state]; len(ms) > 0 {
			a := messageAnswer(ms[0])
			a.Text = prefix(state) + a.Text
			return a
		}
	}
	if missing := n - len(tj.Messages); missing > 0 {
		return Answer{fmt.Sprintf("%d of %d sent; %d not found: the job names %s that do not exist.", sent, n, missing, plural(missing, "message")), ToneBad}
	}
	return Answer{fmt.Sprintf("Sent to %d of %s (%s).", sent, plural(n, "recipient"), strings.Join(recipientChannels(recipients(tj.Messages)), ", ")), ToneOK}
}

// messageAnswer answers for one message, or one webhook delivery (channel endpoint).
func messageAnswer(m *platform.OutgoingMessage) Answer {
	rule, ok := messageStates[m.State]
	if !ok {
		return Answer{"State " + string(m.State) + ".", ToneWait}
	}
	return rule(m, messageTarget(m))
}

// messageTarget names where m goes, as a trace shows it.
func messageTarget(m *platform.OutgoingMessage) string {
	if m.Recipient.Channel == platform.ChannelEndpoint {
		return "the delivery to endpoint " + m.Recipient.Address
	}
	return "the send to " + m.Recipient.Shown().Address + " (" + m.Recipient.Channel + ")"
}

// messageStates answer for a message in each state; to is what messageTarget says.
var messageStates = map[platform.MessageState]func(m *platform.OutgoingMessage, to string) Answer{
	platform.MessageSent: func(m *platform.OutgoingMessage, to string) Answer {
		text := "Sent: " + to + " succeeded after " + plural(m.Attempts, "attempt")
		if m.ProviderID != "" {
			text += ", provider id " + clip(m.ProviderID)
		}
		return Answer{text + ".", ToneOK}
	},
	platform.MessagePending: func(m *platform.OutgoingMessage, to string) Answer {
		text := "Waiting: " + to + " is pending after " + plural(m.Attempts, "attempt")
		if !m.RetryAt.IsZero() {
			text += ", next at " + at(m.RetryAt)
		}
		if m.LastError != "" {
			text += "; last error: " + clip(m.LastError)
		}
		return Answer{text + ".", ToneWait}
	},
	platform.MessageSending: func(m *platform.OutgoingMessage, to string) Answer {
		return Answer{fmt.Sprintf("Sending: %s is being attempted now (attempt %d).", to, m.Attempts), ToneWait}
	},
	platform.MessageFailed: func(m *platform.OutgoingMessage, to string) Answer {
		fix := "fix the cause (Needs attention lists it)"
		if m.Recipient.Channel == platform.ChannelEndpoint {
			fix = "once the endpoint answers, replay its window (webhooks replay)"
		}
		return Answer{fmt.Sprintf("Failed: %s failed after %s: %s — it is not retried; %s.", to, plural(m.Attempts, "attempt"), clip(m.LastError), fix), ToneBad}
	},
	platform.MessageUnknown: func(_ *platform.OutgoingMessage, to string) Answer {
		return Answer{"Unknown: " + to + " may or may not have happened (crashed inside the send window): never resent automatically — mark it sent or resend it from Needs attention.", ToneBad}
	},
	platform.MessageConflict: func(m *platform.OutgoingMessage, to string) Answer {
		return Answer{"Conflict: different content arrived under the key of " + to + ", so it is never sent — one key was used with different data: find the second writer.", ToneBad}
	},
}

func recipients(ms []*platform.OutgoingMessage) []platform.Recipient {
	out := make([]platform.Recipient, len(ms))
	for i, m := range ms {
		out[i] = m.Recipient
	}
	return out
}

// recipientChannels are the distinct channels of rs, sorted.
func recipientChannels(rs []platform.Recipient) []string {
	var cs []string
	for _, r := range rs {
		if !slices.Contains(cs, r.Channel) {
			cs = append(cs, r.Channel)
		}
	}
	slices.Sort(cs)
	return cs
}

// at is an instant as an answer quotes it.
func at(t time.Time) string {
	if t.IsZero() {
		return "(unknown)"
	}
	return t.UTC().Format(time.RFC3339)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// clip keeps an error or reason quoted in an answer to one line of reasonable length.
func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 300 {
		s = string(r[:299]) + "…"
	}
	return s
}
