package notify

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/tables"
)

var (
	created = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	later   = created.Add(90 * time.Second)
)

func facts(t *testing.T) answerFacts {
	t.Helper()
	r, err := mappings.NewNotificationRegistry(mappings.ExampleNotifications()...)
	if err != nil {
		t.Fatal(err)
	}
	return answerFacts{types: r.Lookup, cancelledAt: map[string]time.Time{}}
}

// job is a job of IncidentSubmitted (102) for business unit 42 in state, with reason.
func job(state platform.JobState, reason string) *platform.NotificationJob {
	return &platform.NotificationJob{Key: "notification-job:102:31:3:g:2026-11-22T10:00:00.0000000Z:4", NotificationEventTypeID: 102,
		BusinessUnitID: 42, State: state, Reason: reason, CreatedAt: created, DueAt: later}
}

func message(state platform.MessageState, channel, address string) *platform.OutgoingMessage {
	return &platform.OutgoingMessage{Key: "k|" + channel + "|" + address, State: state, Attempts: 3,
		Recipient: platform.Recipient{Channel: channel, Address: address}, LastError: "550 mailbox\r\nunavailable", ProviderID: "p-1"}
}

// wants checks that a has tone and holds every word of words, and no CR or LF.
func wants(t *testing.T, a Answer, tone string, words ...string) {
	t.Helper()
	if a.Tone != tone {
		t.Errorf("%q: tone %s, want %s", a.Text, a.Tone, tone)
	}
	for _, w := range words {
		if !strings.Contains(a.Text, w) {
			t.Errorf("%q: want %q in it", a.Text, w)
		}
	}
	if strings.ContainsAny(a.Text, "\r\n") || !strings.HasSuffix(a.Text, ".") {
		t.Errorf("%q: want one line ending in a period", a.Text)
	}
}

func TestAnswerOptionNotSeeded(t *testing.T) {
	a := jobAnswer(TraceJob{Job: job(platform.JobSkipped, platform.ReasonOptionNotSeeded)}, facts(t))
	wants(t, a, ToneWarn, "Skipped: IncidentSubmitted (102) is not turned on for business unit 42", "seed a NotificationOption row")
}

func TestAnswerDisabled(t *testing.T) {
	a := jobAnswer(TraceJob{Job: job(platform.JobSkipped, platform.ReasonDisabled)}, facts(t))
	wants(t, a, ToneWarn, "IncidentSubmitted (102) is turned off (IsEnabled = 0) for business unit 42")
}

func TestAnswerCancelledWithAndWithoutTimes(t *testing.T) {
	j := job(platform.JobSkipped, platform.ReasonCancelled)
	j.CancellationKey = "reminder-7"
	f := facts(t)
	wants(t, jobAnswer(TraceJob{Job: j}, f), ToneWarn, "Cancelled: cancellation key reminder-7 was cancelled after the job was created")
	f.cancelledAt[j.Key] = later
	wants(t, jobAnswer(TraceJob{Job: j}, f), ToneWarn, "cancelled at 2026-11-22T10:01:30Z, after the job was created at 2026-11-22T10:00:00Z")
}

func TestAnswerCancelledBySupportSaysWhenAndWhy(t *testing.T) {
	j := job(platform.JobSkipped, platform.ReasonCancelledBySupport)
	j.CancellationKey = "reminder-7" // not the cause: the sentence must not blame it
	j.Trail = append(j.Trail, platform.Step{At: later, Stage: "support", Decision: "Skipped",
		Reason: "cancelled-by-support: the customer asked (by key:01ABC)"})
	a := jobAnswer(TraceJob{Job: j}, facts(t))
	wants(t, a, ToneWarn, "Cancelled by hand at 2026-11-22T10:01:30Z", "the customer asked (by key:01ABC)")
	if strings.Contains(a.Text, "reminder-7") {
		t.Errorf("a job cancelled by hand is blamed on its cancellation key: %q", a.Text)
	}
}

func TestAnswerNoRecipientsSaysWhereRecipientsComeFrom(t *testing.T) {
	f := facts(t)
	wants(t, jobAnswer(TraceJob{Job: job(platform.JobSkipped, platform.ReasonNoRecipients)}, f), ToneWarn,
		"no recipients", "business unit 42 has none", "NotificationSubscriber")
	fromData := job(platform.JobSkipped, platform.ReasonNoRecipients)
	fromData.NotificationEventTypeID = 101
	wants(t, jobAnswer(TraceJob{Job: fromData}, f), ToneWarn, "AttendeeNewProfile (101) takes its recipient from the event data")
	direct := job(platform.JobSkipped, platform.ReasonNoRecipients)
	direct.NotificationEventTypeID = 201
	wants(t, jobAnswer(TraceJob{Job: direct}, f), ToneWarn, "the job named none", "send the recipients with the job")
}

func TestAnswerRecipientsRefusedCountsTheTrail(t *testing.T) {
	j := job(platform.JobSkipped, platform.ReasonRecipientsRefused)
	for range 9 {
		j.Trail = append(j.Trail, platform.Step{Stage: "generator", Decision: "recipient refused", Reason: "recipients[0]: bad"})
	}
	j.Trail = append(j.Trail, platform.Step{Stage: "generator", Decision: "recipient refused", Reason: "and 5 more"})
	wants(t, jobAnswer(TraceJob{Job: j}, facts(t)), ToneWarn, "every recipient was refused (14 recipients refused", "correct the addresses")
}

func TestAnswerTooManyRecipients(t *testing.T) {
	wants(t, jobAnswer(TraceJob{Job: job(platform.JobFailed, platform.ReasonTooManyRecipients)}, facts(t)), ToneBad,
		"Failed: more than 100 recipients", "several jobs")
}

func TestAnswerNoTemplateNamesIt(t *testing.T) {
	wants(t, jobAnswer(TraceJob{Job: job(platform.JobFailed, platform.ReasonNoTemplate+": incident-v2")}, facts(t)), ToneBad,
		"template incident-v2 of IncidentSubmitted (102) does not exist", "notification-templates/incident-v2.json", "upload it")
}

func TestAnswerTemplateError(t *testing.T) {
	wants(t, jobAnswer(TraceJob{Job: job(platform.JobFailed, platform.ReasonTemplateError+": template: x:1: bad\nthing")}, facts(t)), ToneBad,
		"the template of IncidentSubmitted (102) failed to render (template: x:1: bad thing)", "fix the template")
}

func TestAnswerNoEnabledChannelNamesTheRecipientsChannels(t *testing.T) {
	j := job(platform.JobSkipped, platform.ReasonNoChannel)
	j.Recipients = []platform.Recipient{{Channel: "webhook", Address: "https://h.example/x?token=SECRET"}, {Channel: "email", Address: "a@example.com"}}
	a := jobAnswer(TraceJob{Job: j}, facts(t))
	wants(t, a, ToneWarn, "no recipient's channel (email, webhook) is enabled for IncidentSubmitted (102) in business unit 42", "Channels")
	if strings.Contains(a.Text, "SECRET") {
		t.Errorf("%q shows a recipient's URL", a.Text)
	}
}

func TestAnswerConflictingContent(t *testing.T) {
	wants(t, jobAnswer(TraceJob{Job: job(platform.JobConflict, platform.ReasonConflict)}, facts(t)), ToneBad,
		"Conflict: different content arrived under job key notification-job:102:", "never sent")
}

func TestAnswerNoGeneratorHandler(t *testing.T) {
	j := job(platform.JobFailed, platform.ReasonNoGeneratorHandler)
	j.NotificationEventTypeID = 999
	wants(t, jobAnswer(TraceJob{Job: j}, facts(t)), ToneBad, "notification type 999 is not registered", "register it again")
}

func TestAnswerUnknownReasonOrTypeStillSaysSomething(t *testing.T) {
	j := job(platform.JobSkipped, "a-reason-of-tomorrow")
	j.NotificationEventTypeID = 999
	wants(t, jobAnswer(TraceJob{Job: j}, facts(t)), ToneWarn, "Skipped (a-reason-of-tomorrow)")
	j.Reason = platform.ReasonOptionNotSeeded
	wants(t, jobAnswer(TraceJob{Job: j}, facts(t)), ToneWarn, "type 999 is not turned on")
}

func TestAnswerWaitingStates(t *testing.T) {
	f := facts(t)
	wants(t, jobAnswer(TraceJob{Job: job(platform.JobCreated, "")}, f), ToneWait, "Waiting: created at 2026-11-22T10:00:00Z")
	wants(t, jobAnswer(TraceJob{Job: job(platform.JobScheduled, "")}, f), ToneWait, "Waiting: due at 2026-11-22T10:01:30Z")
	wants(t, jobAnswer(TraceJob{Job: job(platform.JobGenerating, "")}, f), ToneWait, "Generating:")
	wants(t, jobAnswer(TraceJob{}, f), ToneWait, "No such job yet", "entity-events-poison")
}

func TestAnswerGeneratedAllSent(t *testing.T) {
	j := job(platform.JobGenerated, "")
	j.MessageKeys = []string{"a", "b"}
	ms := []*platform.OutgoingMessage{message(platform.MessageSent, "email", "a@x.example"), message(platform.MessageSent, "email", "b@x.example")}
	wants(t, jobAnswer(TraceJob{Job: j, Messages: ms}, facts(t)), ToneOK, "Sent to 2 of 2 recipients (email).")
}

func TestAnswerGeneratedOneFailed(t *testing.T) {
	j := job(platform.JobGenerated, "")
	j.MessageKeys = []string{"a", "b"}
	ms := []*platform.OutgoingMessage{message(platform.MessageSent, "email", "a@x.example"), message(platform.MessageFailed, "email", "b@x.example")}
	wants(t, jobAnswer(TraceJob{Job: j, Messages: ms}, facts(t)), ToneBad, "1 of 2 sent; 1 Failed:", "b@x.example", "550 mailbox unavailable")
}

func TestAnswerGeneratedUnknownOutranksFailed(t *testing.T) {
	j := job(platform.JobGenerated, "")
	j.MessageKeys = []string{"a", "b"}
	ms := []*platform.OutgoingMessage{message(platform.MessageFailed, "email", "a@x.example"), message(platform.MessageUnknown, "email", "b@x.example")}
	wants(t, jobAnswer(TraceJob{Job: j, Messages: ms}, facts(t)), ToneBad,
		"0 of 2 sent; 1 Unknown: the send to b@x.example (email) may or may not have happened (crashed inside the send window): never resent automatically — mark it sent or resend it from Needs attention.")
}

func TestAnswerGeneratedOnTheWayAndMissing(t *testing.T) {
	j := job(platform.JobGenerated, "")
	j.MessageKeys = []string{"a", "b"}
	wants(t, jobAnswer(TraceJob{Job: j, Messages: []*platform.OutgoingMessage{message(platform.MessagePending, "email", "a@x.example")}}, facts(t)),
		ToneWait, "0 of 2 sent; 1 Waiting:", "pending after 3 attempts")
	wants(t, jobAnswer(TraceJob{Job: j, Messages: []*platform.OutgoingMessage{message(platform.MessageSent, "email", "a@x.example")}}, facts(t)),
		ToneBad, "1 of 2 sent; 1 not found")
	j.MessageKeys = nil
	wants(t, jobAnswer(TraceJob{Job: j}, facts(t)), ToneWarn, "Generated with no message")
}

func TestAnswerMessageStates(t *testing.T) {
	for _, c := range []struct {
		state platform.MessageState
		tone  string
		words []string
	}{
		{platform.MessagePending, ToneWait, []string{"Waiting: the send to a@x.example (email) is pending", "last error: 550 mailbox unavailable"}},
		{platform.MessageSending, ToneWait, []string{"Sending:", "attempt 3"}},
		{platform.MessageSent, ToneOK, []string{"Sent: the send to a@x.example (email) succeeded after 3 attempts, provider id p-1"}},
		{platform.MessageFailed, ToneBad, []string{"Failed:", "after 3 attempts: 550 mailbox unavailable", "not retried"}},
		{platform.MessageUnknown, ToneBad, []string{"Unknown:", "may or may not have happened", "mark it sent or resend it"}},
		{platform.MessageConflict, ToneBad, []string{"Conflict:", "never sent"}},
	} {
		t.Run(string(c.state), func(t *testing.T) {
			wants(t, messageAnswer(message(c.state, "email", "a@x.example")), c.tone, c.words...)
		})
	}
}

func TestAnswerAWebhookRecipientIsRedacted(t *testing.T) {
	a := messageAnswer(message(platform.MessageUnknown, "webhook", "https://user:pw@h.example/hook?token=SECRET"))
	wants(t, a, ToneBad, "h.example/hook")
	if strings.Contains(a.Text, "SECRET") || strings.Contains(a.Text, "pw@") {
		t.Errorf("%q shows a recipient URL's credentials", a.Text)
	}
}

func TestAnswerDeliveryStates(t *testing.T) {
	d := message(platform.MessageFailed, platform.ChannelEndpoint, "01JEP")
	wants(t, messageAnswer(d), ToneBad, "Failed: the delivery to endpoint 01JEP failed after 3 attempts", "webhooks replay")
	d.State = platform.MessageSent
	wants(t, messageAnswer(d), ToneOK, "Sent: the delivery to endpoint 01JEP succeeded")
	wants(t, traceAnswer(&Trace{Kind: "delivery"}, facts(t)), ToneWarn, "No such delivery")
}

func recorded() *TraceEvent {
	return &TraceEvent{EventKey: "31:3:g:2026-11-22T10:00:00.0000000Z:4", History: &platform.HistoryRecord{EventTypeID: 31, BusinessUnitID: 42}}
}

func TestAnswerEventWithoutHistoryRow(t *testing.T) {
	f := facts(t)
	wants(t, traceAnswer(&Trace{Kind: "event", Event: &TraceEvent{}}, f), ToneWarn, "Not processed", "entity-events-poison")
	wants(t, traceAnswer(&Trace{Kind: "event", Event: &TraceEvent{}, Automations: make([]tables.Decision, 2)}, f), ToneWarn,
		"only automation rules decided on it (2 decisions)")
}

func TestAnswerEventWithNoNotification(t *testing.T) {
	wants(t, traceAnswer(&Trace{Kind: "event", Event: recorded()}, facts(t)), ToneWarn, "No notification: the event carries no hint", "event type 31")
	wants(t, traceAnswer(&Trace{Kind: "event", Event: recorded(), mappingError: "field x: want a string"}, facts(t)), ToneBad,
		"notification mapping fails (field x: want a string)")
}

func TestAnswerEventWithOnlyDeliveries(t *testing.T) {
	tr := &Trace{Kind: "event", Event: recorded(), Deliveries: []*platform.OutgoingMessage{message(platform.MessageSent, platform.ChannelEndpoint, "01JEP")}}
	wants(t, traceAnswer(tr, facts(t)), ToneOK, "Sent: the delivery to endpoint 01JEP", "also no notification (the event names none)")
}

func TestAnswerEventNamesTheEffectThatNeedsAPerson(t *testing.T) {
	sent := job(platform.JobGenerated, "")
	sent.NotificationEventTypeID, sent.MessageKeys = 103, []string{"a"}
	tr := &Trace{Kind: "event", Event: recorded(), Jobs: []TraceJob{
		{Job: sent, Messages: []*platform.OutgoingMessage{message(platform.MessageSent, "email", "a@x.example")}},
		{Job: job(platform.JobSkipped, platform.ReasonOptionNotSeeded)},
		{JobKey: "notification-job:101:31:3:g:2026-11-22T10:00:00.0000000Z:4"},
	}, Deliveries: []*platform.OutgoingMessage{message(platform.MessageSent, platform.ChannelEndpoint, "01JEP")}}
	wants(t, traceAnswer(tr, facts(t)), ToneWarn, "Skipped: IncidentSubmitted (102) is not turned on for business unit 42",
		"also SettingsUpdated (103) Generated, AttendeeNewProfile (101) not created, webhook delivery to endpoint 01JEP Sent.")
}

func TestAnswerOfAMessageKey(t *testing.T) {
	f := facts(t)
	j := job(platform.JobGenerated, "")
	j.MessageKeys = []string{"a", "b"}
	wants(t, traceAnswer(&Trace{Kind: "message", Jobs: []TraceJob{{Job: j, Messages: []*platform.OutgoingMessage{message(platform.MessageSent, "email", "a@x.example")}}}}, f),
		ToneOK, "Sent: the send to a@x.example")
	wants(t, traceAnswer(&Trace{Kind: "message", Jobs: []TraceJob{{Job: j}}}, f), ToneWarn, "No such message: its job was generated with 2 messages")
	wants(t, traceAnswer(&Trace{Kind: "message", Jobs: []TraceJob{{Job: job(platform.JobSkipped, platform.ReasonDisabled)}}}, f), ToneWarn, "turned off")
	tr := &Trace{Kind: "message", Jobs: []TraceJob{{Job: j}}}
	setAnswers(tr, f)
	if tr.Jobs[0].Answer != nil || tr.Answer == nil {
		t.Errorf("a message's trace: job answer %v, answer %v; want none for the job (it holds one message), one for the trace", tr.Jobs[0].Answer, tr.Answer)
	}
}

// Every reason code, job state and message state platform defines has its answer: a code
// added to notification.go without one fails here.
func TestEveryReasonAndStateHasAnAnswer(t *testing.T) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "../../notification.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	ast.Inspect(file, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range spec.Names {
			if i >= len(spec.Values) {
				continue
			}
			lit, ok := spec.Values[i].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				continue
			}
			value, _ := strconv.Unquote(lit.Value)
			switch {
			case strings.HasPrefix(name.Name, "Reason"):
				found["reason"]++
				if _, ok := reasons[value]; !ok {
					t.Errorf("reason code %s (%q) has no sentence in reasons", name.Name, value)
				}
			case strings.HasPrefix(name.Name, "Job"):
				found["job"]++
				if _, ok := jobStates[platform.JobState(value)]; !ok {
					t.Errorf("job state %s has no answer in jobStates", value)
				}
			case strings.HasPrefix(name.Name, "Message"):
				found["message"]++
				if _, ok := messageStates[platform.MessageState(value)]; !ok {
					t.Errorf("message state %s has no answer in messageStates", value)
				}
			}
		}
		return true
	})
	if found["reason"] < 11 || found["job"] < 7 || found["message"] < 6 {
		t.Fatalf("read %v from notification.go: want every reason code and state (did the file move?)", found)
	}
}
