package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/mappings"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/notify"
)

// hintedAttendee is a hinted Create_Attendee (AttendeeNewProfile, to the guardian's email) of
// entity guid, at createdOn.
func hintedAttendee(guid, createdOn, guardianEmail string) string {
	return fmt.Sprintf(`{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"entityGuid":%q,"businessUnitId":42,"createdOn":%q,`+
		`"notificationEventTypeId":101,"payload":{"firstName":"Ada","lastName":"Lovelace","guardianEmail":%q}}`, guid, createdOn, guardianEmail)
}

// duplicatesWorld seeds the ways one address gets two messages of one type, in business unit
// 42, and returns the running worker:
//   - twice@: one attendee's creation published twice, createdOn differing (two occurrences),
//     and a WelcomeEmail (201) created directly the same minute (two types by two paths);
//   - paths@: an attendee's creation (101, derived from the event) and a job of 101 created
//     directly by a worker of an earlier release, in which 101 was a direct type (two paths);
//   - direct@: two WelcomeEmails created directly without an Idempotency-Key, one to a
//     recipient named with a script tag;
//   - o'brien@: one WelcomeEmail.
func duplicatesWorld(t *testing.T, cfg func(*worker.Config)) (*worker.Worker, *notifyEnv) {
	t.Helper()
	env := newNotifyEnv(t, "", option(42, 101, true, "email", 0), option(42, 201, true, "email", 0))
	c := env.config()
	if cfg != nil {
		cfg(&c)
	}
	w := env.start(c)
	ctx := context.Background()
	send(t, w,
		hintedAttendee(attendee, "2026-11-22T10:00:00Z", "Twice@Example.com"),
		hintedAttendee(attendee, "2026-11-22T10:05:00Z", "twice@example.com"),
		hintedAttendee("0b0e7d5c-3c4f-4b6a-9c1e-2f3a4b5c6d7e", "2026-11-22T11:00:00Z", "paths@example.com"))
	direct := func(w *worker.Worker, typ int, to, name string) {
		t.Helper()
		if _, _, err := w.Notify().CreateJob(ctx, notify.DirectJob{NotificationEventTypeID: typ, BusinessUnitID: 42,
			EventData: json.RawMessage(`{"firstName":"Ada"}`), Recipients: []platform.Recipient{{Channel: "email", Address: to, Name: name}}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	direct(w, 201, "twice@example.com", "")
	direct(w, 201, "direct@example.com", hostileName)
	direct(w, 201, "direct@example.com", "")
	direct(w, 201, "o'brien@example.com", "") // a quote, in an OData string literal
	// The earlier release: the same storage, 101 registered as a direct type. A deploy that
	// moves a type from one path to the other leaves both in storage.
	earlier := env.config()
	types := mappings.ExampleNotifications()
	for i := range types {
		if types[i].ID == mappings.NotificationAttendeeNewProfile {
			types[i].Path = mappings.Direct
		}
	}
	earlier.NotificationTypes = types
	old, err := worker.New(earlier)
	if err != nil {
		t.Fatal(err)
	}
	direct(old, 101, "paths@example.com", "")
	drain(t, w)
	if n := len(env.smtp.Mails()); n != 8 { // 2 + 1 to twice@, 2 to paths@, 2 to direct@, 1 to o'brien@
		t.Fatalf("%d mails, want 8", n)
	}
	return w, env
}

// GET /v1/messages finds the messages to an address in the window, only the caller's units',
// and explains each group of two of one type: two occurrences, two paths, two direct requests.
func TestMessagesToAnAddressAndWhyTwo(t *testing.T) {
	t.Parallel()
	w, _ := duplicatesWorld(t, func(c *worker.Config) {
		c.HTTPAddr = "127.0.0.1:0"
		c.Auth = auth.Config{Mode: auth.ModeKeys}
	})
	ctx := context.Background()
	key := func(unit int64) string {
		k, _, err := w.Keys().Create(ctx, auth.NewKey{Role: auth.Support, Units: auth.Units{IDs: []int64{unit}}})
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + k
	}
	of42, of7 := key(42), key(7)
	get := func(authz, query string) (int, notify.AddressMessages, string) {
		t.Helper()
		code, body := call(t, "GET", "http://"+w.HTTPAddr()+"/v1/messages?"+query, authz, "")
		var out notify.AddressMessages
		if code == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &out); err != nil {
				t.Fatal(err)
			}
		}
		return code, out, body
	}

	code, twice, body := get(of42, "address=Twice@Example.com")
	if code != http.StatusOK || len(twice.Messages) != 3 || twice.Address != "twice@example.com" {
		t.Fatalf("messages to twice@: %d %s", code, body)
	}
	if strings.Contains(body, `"subject"`) || strings.Contains(body, `"text"`) || strings.Contains(body, "Ada") {
		t.Errorf("the answer carries a body: %s", body)
	}
	for i, m := range twice.Messages {
		if m.State != platform.MessageSent || m.Attempts != 1 || m.ProviderID == "" || m.BusinessUnitID != 42 || m.Recipient.Address != "twice@example.com" ||
			i > 0 && m.CreatedAt.After(twice.Messages[i-1].CreatedAt) {
			t.Errorf("message %d: %+v (want Sent, newest first)", i, m)
		}
	}
	if len(twice.Duplicates) != 2 {
		t.Fatalf("duplicates of twice@: %+v, want two groups (101 twice; 101 from events and 201 directly, minutes apart)", twice.Duplicates)
	}
	if x := twice.Duplicates[1]; x.Case != notify.WhyPathsAcrossTypes || x.NotificationEventTypeID != 0 || len(x.MessageKeys) != 3 ||
		!strings.Contains(x.NotificationType, "AttendeeNewProfile (101)") || !strings.Contains(x.NotificationType, "WelcomeEmail (201)") ||
		!strings.Contains(x.Explanation, "WelcomeEmail (201) created directly") || !strings.Contains(x.Explanation, "AttendeeNewProfile (101) derived from event 11:1:") {
		t.Errorf("twice@, across types: %+v", x)
	}
	d := twice.Duplicates[0]
	if d.NotificationEventTypeID != 101 || d.NotificationType != "AttendeeNewProfile" || len(d.MessageKeys) != 2 || d.Case != notify.WhyOccurrences ||
		!strings.Contains(d.Explanation, "createdOn 2026-11-22T10:00:00.0000000Z and 2026-11-22T10:05:00.0000000Z") {
		t.Errorf("twice@: %+v", d)
	}

	_, paths, body := get(of42, "address=paths@example.com")
	if len(paths.Messages) != 2 || len(paths.Duplicates) != 1 || paths.Duplicates[0].Case != notify.WhyPaths ||
		!strings.Contains(paths.Duplicates[0].Explanation, "one derived from event 11:1:0b0e7d5c-3c4f-4b6a-9c1e-2f3a4b5c6d7e:2026-11-22T11:00:00.0000000Z:1") ||
		!strings.Contains(paths.Duplicates[0].Explanation, "one created directly") {
		t.Errorf("paths@: %s", body)
	}

	_, direct, body := get(of42, "address=direct@example.com")
	if len(direct.Messages) != 2 || len(direct.Duplicates) != 1 || direct.Duplicates[0].Case != notify.WhyDirect ||
		!slices.ContainsFunc(direct.Messages, func(m notify.AddressMessage) bool { return m.Recipient.Name == hostileName }) {
		t.Errorf("direct@: %s", body)
	}

	if code, quoted, body := get(of42, "address="+url.QueryEscape("O'Brien@example.com")); code != http.StatusOK || len(quoted.Messages) != 1 ||
		len(quoted.Duplicates) != 0 {
		t.Errorf("messages to o'brien@: %d %s", code, body)
	}

	// The window: one that ends before the messages finds none; so does a key of another unit.
	hourAgo := time.Now().Add(-time.Hour).UTC()
	q := url.Values{"address": {"twice@example.com"}, "since": {hourAgo.Add(-time.Hour).Format(time.RFC3339)}, "until": {hourAgo.Format(time.RFC3339)}}
	if code, before, body := get(of42, q.Encode()); code != http.StatusOK || len(before.Messages) != 0 {
		t.Errorf("a window before the messages: %d %s", code, body)
	}
	q.Set("until", time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
	if _, around, body := get(of42, q.Encode()); len(around.Messages) != 3 {
		t.Errorf("a window around the messages: %s", body)
	}
	if code, other, body := get(of7, "address=twice@example.com"); code != http.StatusOK || len(other.Messages) != 0 || len(other.Duplicates) != 0 {
		t.Errorf("a key of unit 7: %d %s", code, body)
	}

	for _, bad := range []string{"", "address=", "address=not-an-address", "address=Ada+%3Cada@example.com%3E", "address=a@example.com&since=yesterday",
		"address=a@example.com&since=2026-01-01T00:00:00Z&until=2026-03-01T00:00:00Z", "address=a@example.com&since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z"} {
		if code, _, body := get(of42, bad); code != http.StatusBadRequest {
			t.Errorf("GET /v1/messages?%s: %d %s, want 400", bad, code, body)
		}
	}
}
