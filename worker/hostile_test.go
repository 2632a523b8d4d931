package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/webhooks"
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
		"domain literal":       {[]platform.Recipient{{Channel: "email", Address: "ada@[127.0.0.1]"}}, "domain literal"},
		"display name":         {[]platform.Recipient{{Channel: "email", Address: `"Victim Manager" <attacker@evil.com>`}}, "no display name"},
		"group":                {[]platform.Recipient{{Channel: "email", Address: "staff: a@example.com, b@example.com;"}}, "recipients[0]"},
		"control character":    {[]platform.Recipient{{Channel: "email", Address: "ada\x1b[2J@example.com"}}, "control characters"},
		"control in a name":    {[]platform.Recipient{{Channel: "email", Address: "ada@example.com", Name: "Ada\a\r"}}, "name"},
		"address too long":     {[]platform.Recipient{{Channel: "email", Address: strings.Repeat("a", 250) + "@example.com"}}, "at most 254"},
		"dotless domain":       {[]platform.Recipient{{Channel: "email", Address: "ada@localhost"}}, "no dot"},
		"IP without brackets":  {[]platform.Recipient{{Channel: "email", Address: "ada@127.0.0.1"}}, "IP address"},
		"short IP":             {[]platform.Recipient{{Channel: "email", Address: "ada@127.1"}}, "IP address"},
		"bad host label":       {[]platform.Recipient{{Channel: "email", Address: "ada@-evil.example.com"}}, "host label"},
		"bidi override":        {[]platform.Recipient{{Channel: "email", Address: "ada\u202e@example.com"}}, "format characters"},
		"zero width in a name": {[]platform.Recipient{{Channel: "email", Address: "ada@example.com", Name: "Ad\u200ba"}}, "format characters"},
		"bidi in a webhook":    {[]platform.Recipient{{Channel: "webhook", Address: "https://8.8.8.8/hook?token=SECRET\u202e"}}, "format characters"},
	} {
		_, _, err := w.Notify().CreateJob(ctx, notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42, Recipients: c.recipients}, "")
		if !errors.Is(err, platform.ErrInvalidInput) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: %v, want invalid input mentioning %q (and no URL credential)", name, err, c.want)
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
	if err := w.Notify().Cancel(ctx, key, 0); err != nil {
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

// Recipients taken from event data (a mapping) or from the settings database (subscribers)
// pass the same check as a direct job's: a refused one is a recorded skip with its reason, in
// the job's trail, and the job's other recipients still get their message.
func TestEventDerivedRecipientsAreCheckedAsDirectOnesAre(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 101, true, "email", 0), option(42, 102, true, "email", 0),
		subscriber(42, 102, "email", "ops@example.com"), subscriber(42, 102, "email", "ada@[127.0.0.1]"),
		subscriber(42, 102, "email", `"Boss" <boss@evil.com>`), subscriber(42, 102, "email", "bel\a@example.com"),
		subscriber(42, 102, "email", "ada@localhost"), subscriber(42, 102, "email", "ada@127.0.0.1"),
		subscriber(42, 102, "email", "ada\u202e@example.com"))
	w := env.start(env.config())
	guardian := strings.Replace(hinted(attendee), `"Guardian@Example.com"`, `"\"Victim Manager\" <attacker@evil.com>"`, 1)
	incident := `{"eventTypeId":31,"entityTypeId":3,"actionTypeId":4,"entityId":9,"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z","notificationEventTypeId":102,"payload":{"summary":"s"}}`
	send(t, w, guardian, incident)
	drain(t, w)

	var to []string
	for _, m := range env.smtp.Mails() {
		to = append(to, m.To...)
	}
	if len(to) != 1 || to[0] != "ops@example.com" {
		t.Fatalf("mail went to %v, want ops@example.com alone", to)
	}
	refusals := func(j *platform.NotificationJob) (out []string) {
		for _, s := range j.Trail {
			if s.Decision == "recipient refused" {
				out = append(out, s.Reason)
			}
		}
		return out
	}
	g := onlyJob(t, trace(t, w, "notification-job:101:11:1:"+attendee+":2026-11-22T10:00:00.0000000Z:1"))
	if r := refusals(g); g.State != platform.JobSkipped || g.Reason != platform.ReasonRecipientsRefused || len(r) != 1 || !strings.Contains(r[0], "no display name") {
		t.Fatalf("guardian job: %s (%s), refusals %q; want Skipped (recipients-refused) naming the display name", g.State, g.Reason, r)
	}
	inc := onlyJob(t, trace(t, w, "notification-job:102:31:3:9:2026-11-22T10:00:00.0000000Z:4"))
	r := strings.Join(refusals(inc), "\n")
	if inc.State != platform.JobGenerated || len(inc.MessageKeys) != 1 || strings.Count(r, "\n") != 5 ||
		!strings.Contains(r, "domain literal") || !strings.Contains(r, "no display name") || !strings.Contains(r, "control characters") ||
		!strings.Contains(r, "no dot") || !strings.Contains(r, "IP address") || !strings.Contains(r, "format characters") {
		t.Fatalf("incident job: %s, %d message(s), refusals:\n%s\nwant Generated, 1 message, 6 refusals with their reasons", inc.State, len(inc.MessageKeys), r)
	}
}

// A trace is asked for with a key; a key no row could have (malformed, or longer than a table
// key) is a 400 naming what is wrong, never a panic, a 502 or an empty 200.
func TestTraceOfAKeyNoRowCouldHaveIs400(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{})
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	for _, c := range []struct{ key, want string }{
		{"1:2:3:4", "not an event key"},
		{"", "not an event key"},
		{"\x1b[31m\a", "not an event key"},
		{"notification-job:" + strings.Repeat("9", 600), "key: at most 512"},
		{"webhook:01M82K7HT2SY1ZHM05AHMRPCPW:" + strings.Repeat("1", 600), "key: at most 512"},
		{"notification-job:1|email|" + strings.Repeat("/", 200), "key: at most 512"},
	} {
		var body map[string]any
		code := getJSON(t, srv.URL+"/v1/trace?key="+url.QueryEscape(c.key), &body)
		if msg, _ := body["error"].(string); code != http.StatusBadRequest || !strings.Contains(msg, c.want) {
			t.Errorf("trace %.40q: %d %.120v, want 400 mentioning %q", c.key, code, body, c.want)
		}
	}
	var body map[string]string
	if code := getJSON(t, srv.URL+"/v1/trace?key=1:2:3:4&showBody=please", &body); code != http.StatusBadRequest || !strings.Contains(body["error"], "showBody") {
		t.Errorf("showBody=please: %d %v, want 400", code, body)
	}
}

// Whatever becomes a table key is checked when the job is created, so a created job can always
// be cancelled: a cancellation key or idempotency key too long once escaped is a 400 naming
// the field and the limit, and so is a cancellation of one. A key at the limit works end to end.
func TestKeysThatCouldNotBeStoredAreRefusedAtCreation(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{})
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	post := func(path, body, idem string) (int, string) {
		code, b := postJSON(t, srv.URL+path, body, idem)
		return code, string(b)
	}
	job := func(cancellationKey string) string {
		return `{"notificationEventTypeId":201,"businessUnitId":42,"cancellationKey":"` + cancellationKey + `","recipients":[{"channel":"email","address":"a@example.com"}]}`
	}
	for _, c := range []struct{ name, body, idem, want string }{
		{"2,000-character cancellation key", job(strings.Repeat("k", 2000)), "", "cancellationKey: at most 512"},
		{"cancellation key of slashes", job(strings.Repeat("/", 200)), "", "cancellationKey: at most 512"},
		{"long idempotency key", job("k"), strings.Repeat("i", 600), "idempotency key: at most 512"},
	} {
		if code, out := post("/v1/notification-jobs", c.body, c.idem); code != http.StatusBadRequest || !strings.Contains(out, c.want) {
			t.Errorf("%s: %d %s, want 400 mentioning %q", c.name, code, out, c.want)
		}
	}
	if code, out := post("/v1/notification-cancellations", `{"cancellationKey":"`+strings.Repeat("k", 2000)+`"}`, ""); code != http.StatusBadRequest || !strings.Contains(out, "cancellationKey: at most 512") {
		t.Errorf("cancel with a 2,000-character key: %d %s, want 400", code, out)
	}
	atLimit := strings.Repeat("k", platform.MaxKeyLength)
	if code, out := post("/v1/notification-jobs", job(atLimit), ""); code != http.StatusCreated {
		t.Fatalf("a cancellation key of %d characters: %d %s", platform.MaxKeyLength, code, out)
	}
	if code, out := post("/v1/notification-cancellations", `{"cancellationKey":"`+atLimit+`"}`, ""); code != http.StatusOK {
		t.Fatalf("cancel with a key of %d characters: %d %s", platform.MaxKeyLength, code, out)
	}
}

// A trace withholds what messages say and what jobs carry (a password-reset link is a
// secret) unless asked for with showBody=true; that access is logged with the key and the
// remote address, never the body.
func TestTraceWithholdsBodiesUnlessAsked(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 202, true, "email", 0))
	cfg := env.config()
	logs := logtest.NewLocal(cfg.Logger.(*logrus.Logger))
	w := env.start(cfg)
	const secret = "tok-3f9a1c"
	job, _, err := w.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: 202, BusinessUnitID: 42,
		EventData:  []byte(`{"resetUrl":"https://example.com/reset?token=` + secret + `"}`),
		Recipients: []platform.Recipient{{Channel: "email", Address: "u@example.com"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	drain(t, w)
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	get := func(query string) (string, notify.Trace) {
		resp, err := http.Get(srv.URL + "/v1/trace?key=" + url.QueryEscape(job.Key) + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var tr notify.Trace
		if err := json.Unmarshal(b, &tr); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("trace%s: %d %s", query, resp.StatusCode, b)
		}
		return string(b), tr
	}
	body, tr := get("")
	if strings.Contains(body, secret) || !tr.BodiesWithheld || len(tr.Jobs) != 1 || len(tr.Jobs[0].Messages) != 1 {
		t.Fatalf("default trace: withheld %v, want the bodies withheld and the message listed:\n%s", tr.BodiesWithheld, body)
	}
	for _, e := range logs.AllEntries() {
		if e.Message == "trace with bodies shown" {
			t.Fatalf("a trace without bodies was logged as showing them: %v", e.Data)
		}
	}
	body, tr = get("&showBody=true")
	if m := tr.Jobs[0].Messages[0]; tr.BodiesWithheld || !strings.Contains(m.Text, secret) || !strings.Contains(m.HTML, secret) || !strings.Contains(string(tr.Jobs[0].Job.EventData), secret) {
		t.Fatalf("showBody=true: want text, HTML and event data:\n%s", body)
	}
	var shown []*logrus.Entry
	for _, e := range logs.AllEntries() {
		if line, _ := e.String(); strings.Contains(line, secret) {
			t.Fatalf("a log line carries the body: %s", line)
		}
		if e.Message == "trace with bodies shown" {
			shown = append(shown, e)
		}
	}
	if len(shown) != 1 || shown[0].Level != logrus.InfoLevel || shown[0].Data["key"] != job.Key ||
		!strings.HasPrefix(fmt.Sprint(shown[0].Data["requester"]), "anonymous from 127.0.0.1:") {
		t.Fatalf("want one Info line with the key, the principal and its address, got %d: %+v", len(shown), shown)
	}
}

// A trace without showBody withholds the event's snapshot too (the event's data, inline in its
// history row), not only the jobs' copy of it; and no trace names a blob (storage detail):
// with showBody, a body kept in a blob is read into the answer instead.
func TestTraceWithholdsTheSnapshotAndNeverNamesABlob(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 101, true, "email", 0))
	w := env.start(env.config())
	rc := newReceiver(t, strongSecret, 0)
	if _, err := w.Webhooks().Add(context.Background(), webhooks.NewEndpoint{URL: rc.srv.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{11}, Secret: strongSecret}); err != nil {
		t.Fatal(err)
	}
	const secret = "tok-5b7e2d"
	small := strings.Replace(hinted(attendee), `"guardianName":"Byron"`, `"guardianName":"Byron","resetToken":"`+secret+`"`, 1)
	// Over a row's inline limit: the job's event data and the delivery's body go to blobs.
	large := strings.Replace(strings.Replace(small, attendee, "0f8fad5b-d9cb-469f-a165-70867728950e", 1),
		`"guardianName":"Byron"`, `"guardianName":"Byron","notes":"`+strings.Repeat("n", 40_000)+`"`, 1)
	send(t, w, small, large)
	drain(t, w)
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	for _, guid := range []string{attendee, "0f8fad5b-d9cb-469f-a165-70867728950e"} {
		key := "11:1:" + guid + ":2026-11-22T10:00:00.0000000Z:1"
		for _, q := range []string{"", "&showBody=true"} {
			resp, err := http.Get(srv.URL + "/v1/trace?key=" + url.QueryEscape(key) + q)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var tr notify.Trace
			if err := json.Unmarshal(b, &tr); err != nil || resp.StatusCode != http.StatusOK || tr.Event == nil || tr.Event.History == nil ||
				len(tr.Jobs) != 1 || len(tr.Deliveries) != 1 {
				t.Fatalf("trace %s%s: %d, want the history row, one job and one delivery:\n%.2000s", key, q, resp.StatusCode, b)
			}
			shown := strings.Count(string(b), secret)
			if q == "" && (shown != 0 || !tr.BodiesWithheld) {
				t.Errorf("trace %s: the secret shown %d time(s) (withheld %v): the snapshot and every body must be withheld:\n%.2000s", key, shown, tr.BodiesWithheld, b)
			}
			// With bodies: the snapshot, the job's event data and the delivery's body.
			if q != "" && (shown < 3 || len(tr.Jobs[0].Job.EventData) == 0 || tr.Deliveries[0].Text == "") {
				t.Errorf("trace %s%s: the secret shown %d time(s), want the snapshot, the event data and the delivery's body:\n%.2000s", key, q, shown, b)
			}
			if strings.Contains(string(b), "Blob\"") || strings.Contains(string(b), "sha256-") {
				t.Errorf("trace %s%s names a blob:\n%.2000s", key, q, b)
			}
		}
	}
}
