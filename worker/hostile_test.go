package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"testing"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/notify"
)

// Every hostile message is poisoned with a reason that names what is wrong, the worker keeps
// going, and a valid event sent after them all is handled.
func TestHostileEventsArePoisonedWithTheirReason(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{})
	cases := testenv.HostileEvents()
	if len(cases) < 25 {
		t.Fatalf("%d hostile cases, want at least 25", len(cases))
	}
	for _, c := range cases {
		send(t, w, c.Body)
	}
	after := event(12, 1, 2, attendee, "2026-11-22T10:00:00Z", `{"firstName":"Ada"}`)
	send(t, w, after)
	drain(t, w)
	if rows := timeline(t, w, 1, attendee); len(rows) != 1 {
		t.Fatalf("the valid event after the hostile ones left %d rows, want 1", len(rows))
	}
	got := map[string]string{} // body → reason
	for _, rec := range poison(t, w) {
		got[rec.Body] = rec.Reason
	}
	for _, c := range cases {
		reason, ok := got[strings.TrimSpace(c.Body)]
		if !ok {
			reason, ok = got[c.Body]
		}
		switch {
		case !ok:
			t.Errorf("%s: not in the poison queue", c.Name)
		case !strings.Contains(reason, c.Reason):
			t.Errorf("%s: reason %q, want it to mention %q", c.Name, reason, c.Reason)
		}
	}
	if len(got) != len(cases) {
		t.Errorf("%d distinct bodies poisoned, want %d", len(got), len(cases))
	}
}

// Hostile content in a valid event is data, never code: SQL-looking text reaches no query, a
// template in the payload is printed, not run, HTML is escaped, and a line break cannot add a
// mail header or a recipient.
func TestHostileContentIsDataNeverCode(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 102, true, "email", 0), subscriber(42, 102, "email", "ops@example.com"))
	w := env.start(env.config())
	evil := `Robert'); DROP TABLE NotificationOption;-- {{.Job.Key}} {{template \"x\"}} <script>alert(1)</script>\r\nBcc: victim@example.com`
	incident := func(guid, createdOn string) string {
		return `{"eventTypeId":31,"entityTypeId":3,"actionTypeId":1,"entityGuid":"` + guid + `","businessUnitId":42,` +
			`"createdOn":"` + createdOn + `","notificationEventTypeId":102,"payload":{"summary":"` + evil + `"}}`
	}
	send(t, w, incident("11111111-2222-4333-8444-555555555555", "1601-01-01T00:00:00Z"))
	drain(t, w)
	// The option row survived: a second incident (at the other end of the date range) notifies too.
	send(t, w, incident("11111111-2222-4333-8444-666666666666", "9999-12-31T23:59:59.9999999Z"))
	drain(t, w)

	mails := env.smtp.Mails()
	if len(mails) != 2 {
		t.Fatalf("%d mails, want 2", len(mails))
	}
	for _, m := range mails {
		if len(m.To) != 1 || m.To[0] != "ops@example.com" || m.Header.Get("Bcc") != "" {
			t.Fatalf("recipients %v, Bcc %q: a line break in data added a recipient", m.To, m.Header.Get("Bcc"))
		}
		subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(subject, `{{.Job.Key}} {{template "x"}}`) || !strings.Contains(subject, "DROP TABLE") {
			t.Fatalf("subject %q: the payload's text was not printed as is", subject)
		}
		_, htmlPart, _ := strings.Cut(m.Data, "Content-Type: text/html")
		html, _ := io.ReadAll(quotedprintable.NewReader(strings.NewReader(htmlPart)))
		if strings.Contains(string(html), "<script>") || !strings.Contains(string(html), "&lt;script&gt;") {
			t.Fatalf("the HTML part did not escape the payload:\n%s", html)
		}
	}
	for _, guid := range []string{"11111111-2222-4333-8444-555555555555", "11111111-2222-4333-8444-666666666666"} {
		if rows := timeline(t, w, 3, guid); len(rows) != 1 || !strings.Contains(string(rows[0].Snapshot), "DROP TABLE") {
			t.Fatalf("incident %s: %d rows, want 1 keeping the text as is", guid, len(rows))
		}
	}
}

// An event whose notification hint names no notification type is poisoned with that reason,
// and its history row is written all the same: one concern's bad input loses no other's work.
func TestUnknownNotificationHintKeepsHistory(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{})
	send(t, w, `{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityGuid":"`+attendee+`","businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z","notificationEventTypeId":999}`)
	drain(t, w)
	if rows := timeline(t, w, 1, attendee); len(rows) != 1 {
		t.Fatalf("%d history rows, want 1", len(rows))
	}
	recs := poison(t, w)
	if len(recs) != 1 || !strings.Contains(recs[0].Reason, "999") {
		t.Fatalf("poison %+v, want one record naming notification type 999", recs)
	}
}

// A direct job is checked before anything is written: an oversized recipient list, an address
// that smuggles a header, or a webhook recipient the SSRF rule refuses is bad input, named.
// Keys with characters Azure Tables forbid (/ \ # ? and control characters) work as keys.
func TestHostileDirectJobs(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 201, true, "email", 0))
	cfg := env.config()
	cfg.WebhookAllowlist = nil
	w := env.start(cfg)
	ctx := context.Background()
	many := make([]platform.Recipient, notify.MaxRecipients+1)
	for i := range many {
		many[i] = platform.Recipient{Channel: "email", Address: fmt.Sprintf("r%d@example.com", i)}
	}
	for name, c := range map[string]struct {
		recipients []platform.Recipient
		want       string
	}{
		"too many recipients":  {many, "recipients: at most"},
		"header in an address": {[]platform.Recipient{{Channel: "email", Address: "a@example.com\r\nBcc: victim@example.com"}}, "recipients[0]"},
		"not an address":       {[]platform.Recipient{{Channel: "email", Address: "nobody"}}, "recipients[0]"},
		"private webhook":      {[]platform.Recipient{{Channel: "webhook", Address: "http://169.254.169.254/latest/meta-data"}}, "recipients[0]"},
	} {
		_, _, err := w.Notify().CreateJob(ctx, notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42, Recipients: c.recipients}, "")
		if !errors.Is(err, platform.ErrInvalidInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want invalid input mentioning %q", name, err, c.want)
		}
	}
	key := "order/7\\8#9?\x00\x1f\u2028"
	job := notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42, CancellationKey: key,
		Recipients: []platform.Recipient{{Channel: "email", Address: "ok@example.com"}}}
	first, created, err := w.Notify().CreateJob(ctx, job, key)
	if err != nil || !created {
		t.Fatalf("idempotency key %q: created %v, %v", key, created, err)
	}
	again, created, err := w.Notify().CreateJob(ctx, job, key)
	if err != nil || created || again.Key != first.Key {
		t.Fatalf("the same request again: created %v, key %s vs %s, %v", created, again.Key, first.Key, err)
	}
	if err := w.Notify().Cancel(ctx, key); err != nil {
		t.Fatalf("cancel %q: %v", key, err)
	}
	drain(t, w)
	if n := len(env.smtp.Mails()); n > 1 {
		t.Fatalf("%d mails for one idempotent job", n)
	}
}

// Event data of any length in a subject is clipped: no header line may exceed SMTP's 998
// bytes (a relay would cut or refuse it).
func TestLongDataInTheSubjectIsClipped(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 201, true, "email", 0))
	w := env.start(env.config())
	name := strings.Repeat("Ada ", 1000)
	if _, _, err := w.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42,
		EventData: []byte(`{"firstName":"` + name + `"}`), Recipients: []platform.Recipient{{Channel: "email", Address: "long@example.com"}}}, ""); err != nil {
		t.Fatal(err)
	}
	drain(t, w)
	mails := env.smtp.Mails()
	if len(mails) != 1 {
		t.Fatalf("%d mails, want 1", len(mails))
	}
	for _, line := range strings.Split(mails[0].Data, "\r\n") {
		if len(line) > 998 {
			t.Fatalf("a line of %d bytes: %.120s…", len(line), line)
		}
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(mails[0].Header.Get("Subject"))
	if !strings.HasPrefix(subject, "Welcome, Ada Ada") || !strings.HasSuffix(subject, "…") {
		t.Fatalf("subject %q: want the start of the data, clipped", subject)
	}
}
