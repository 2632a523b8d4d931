package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/platform/platform/auth"
	"github.com/platform/platform/worker/api"
	"github.com/platform/platform/worker/webhooks"
)

// attendeeEvent is event type eventType of attendee guid in business unit bu, at createdOn,
// with hint (0: none) and payload.
func attendeeEvent(eventType int, guid string, bu int, createdOn string, hint int, extra, payload string) string {
	h := ""
	if hint != 0 {
		h = fmt.Sprintf(`,"notificationEventTypeId":%d`, hint)
	}
	return fmt.Sprintf(`{"eventTypeId":%d,"entityTypeId":1,"actionTypeId":%d,"entityGuid":%q,"businessUnitId":%d,"createdOn":%q%s%s,"payload":%s}`,
		eventType, eventType-10, guid, bu, createdOn, h, extra, payload)
}

// A support key of business unit 42 reads an attendee's timeline with what each occurrence
// caused — its jobs with their answers, messages and webhook deliveries — never a body; another
// unit's timeline is 404; pages follow the sealed tokens.
func TestTimelineShowsEachRowsEffectsToSupportOfItsUnit(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 101, true, "email", 0))
	cfg := env.config()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Auth = auth.Config{Mode: auth.ModeKeys}
	w := env.start(cfg)
	ctx := context.Background()
	hook := newReceiver(t, strongSecret, 0)
	endpoint, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: hook.srv.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{12}, Secret: strongSecret})
	if err != nil {
		t.Fatal(err)
	}
	const (
		guid   = "5f0c9a3e-2b1d-4c6e-9a7f-0d1e2f3a4b5c"
		other  = "6a1d0b4f-3c2e-4d7f-8b80-1e2f3a4b5c6d"
		secret = "Quux-PAYLOAD-7f3a"
	)
	payload := `{"firstName":"Ada","lastName":"` + secret + `","guardianEmail":"guardian@example.com"}`
	send(t, w,
		attendeeEvent(11, guid, 42, "2026-11-22T10:00:00Z", 101, "", payload),                              // mails the guardian
		attendeeEvent(12, guid, 42, "2026-11-22T11:00:00Z", 102, `,"changedFields":["lastName"]`, payload), // IncidentSubmitted: not seeded
		attendeeEvent(12, guid, 42, "2026-11-22T12:00:00Z", 0, "", payload),                                // no notification
		attendeeEvent(11, other, 7, "2026-11-22T10:00:00Z", 101, "", payload))                              // another unit's
	drain(t, w)
	if mails := env.smtp.Mails(); len(mails) != 1 || !strings.Contains(mails[0].Data, secret) {
		t.Fatalf("%d mails, want one carrying the payload's %s (the body the timeline must not show)", len(mails), secret)
	}
	key, _, err := w.Keys().Create(ctx, auth.NewKey{Role: auth.Support, Units: auth.Units{IDs: []int64{42}}, Name: "support"})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + w.HTTPAddr()
	get := func(path string) (int, string, api.TimelinePage) {
		t.Helper()
		code, body := call(t, "GET", base+path, "Bearer "+key, "")
		var page api.TimelinePage
		if code == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &page); err != nil {
				t.Fatalf("%s: %v\n%s", path, err, body)
			}
		}
		return code, body, page
	}

	code, body, page := get("/v1/timeline/1/" + strings.ToUpper(guid))
	if code != http.StatusOK || len(page.Items) != 3 || page.Next != "" {
		t.Fatalf("the timeline: %d, %d rows, next %q, want 200 with 3 rows and no next:\n%s", code, len(page.Items), page.Next, body)
	}
	for _, leak := range []string{secret, "A new profile", `"snapshot"`, `"subject"`, `"eventData"`, "Ada"} {
		if strings.Contains(body, leak) {
			t.Errorf("the timeline shows %q: never a body nor a snapshot\n%s", leak, body)
		}
	}
	plain, skipped, mailed := page.Items[0], page.Items[1], page.Items[2]
	if plain.Action != "Update" || plain.CreatedOn.Hour() != 12 || len(plain.Jobs) != 0 ||
		len(plain.Deliveries) != 1 || plain.Deliveries[0].State != "Sent" || plain.Deliveries[0].Recipient != endpoint.ID ||
		plain.Answer == nil || !strings.Contains(plain.Answer.Text, "no notification") {
		t.Errorf("the newest row: %+v, want an update with no job, one delivery Sent, and an answer saying no notification", plain)
	}
	if len(skipped.Jobs) != 1 || skipped.Jobs[0].State != "Skipped" || skipped.Jobs[0].Reason != "option-not-seeded" ||
		skipped.Jobs[0].Type != "IncidentSubmitted (102)" || skipped.Jobs[0].Answer == nil ||
		!strings.Contains(skipped.Jobs[0].Answer.Text, "IncidentSubmitted (102) is not turned on for business unit 42") ||
		skipped.Answer == nil || skipped.Answer.Tone != "warn" || len(skipped.Deliveries) != 1 || len(skipped.ChangedFields) != 1 {
		t.Errorf("the middle row: %+v, want its job Skipped (option-not-seeded) with the answer, a delivery and its changed field", skipped)
	}
	if len(mailed.Jobs) != 1 || mailed.Jobs[0].State != "Generated" || len(mailed.Jobs[0].Messages) != 1 ||
		mailed.Jobs[0].Messages[0].Recipient != "guardian@example.com" || mailed.Jobs[0].Messages[0].State != "Sent" ||
		mailed.Jobs[0].Messages[0].Attempts != 1 || mailed.Answer == nil || mailed.Answer.Text != "Sent to 1 of 1 recipient (email)." {
		t.Errorf("the oldest row: %+v (answer %+v), want one job Generated with one message Sent to the guardian", mailed, mailed.Answer)
	}

	// Pages: the sealed next of a page of 2, then the last row alone.
	code, body, first := get("/v1/timeline/1/" + guid + "?limit=2")
	if code != http.StatusOK || len(first.Items) != 2 || first.Next == "" {
		t.Fatalf("limit=2: %d, %d rows, next %q\n%s", code, len(first.Items), first.Next, body)
	}
	code, body, second := get("/v1/timeline/1/" + guid + "?limit=2&after=" + url.QueryEscape(first.Next))
	if code != http.StatusOK || len(second.Items) != 1 || second.Next != "" || second.Items[0].EventKey != mailed.EventKey || len(second.Items[0].Jobs) != 1 {
		t.Fatalf("the second page: %d %+v, want the oldest row alone with its job\n%s", code, second, body)
	}

	for path, want := range map[string]int{
		"/v1/timeline/1/" + other:                                http.StatusNotFound, // another unit's: as if none
		"/v1/timeline/1/" + guid + "?limit=51":                   http.StatusBadRequest,
		"/v1/timeline/1/" + guid + "?after=" + "bm90LWEtdG9rZW4": http.StatusBadRequest,
		"/v1/timeline/1/" + other + "?after=" + first.Next:       http.StatusBadRequest, // another timeline's token
		"/v1/timeline/0/" + guid:                                 http.StatusBadRequest,
		"/v1/history/1/" + guid:                                  http.StatusForbidden, // support reads history here, with effects
	} {
		if code, body, _ := get(path); code != want {
			t.Errorf("%s: %d %s, want %d", path, code, body, want)
		}
	}
}
