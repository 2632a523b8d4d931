package worker_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
)

// What support does in the console, in a real browser, on data the real worker made on
// Azurite: find an event by its key, read why its notification did not go out, open the
// entity's timeline, follow a sent email; then, as an admin, redrive a poisoned event and see
// it processed. Markup in the events' data is shown as text and never runs. Every page is
// screenshotted at both widths (console-flow-*).
func TestConsoleSupportFlowsInABrowser(t *testing.T) {
	t.Parallel()
	e := newNotifyEnv(t, "", option(42, 101, true, "email", 0)) // 101 on; 102 (IncidentSubmitted) never seeded
	cfg := e.config()
	cfg.HTTPAddr, cfg.Auth = "127.0.0.1:0", auth.Config{Mode: auth.ModeKeys}
	w := &consoleWorker{Worker: e.start(cfg)}
	w.base = "http://" + w.HTTPAddr()
	support, _ := w.key(t, auth.Support)
	admin, _, err := w.Keys().Create(context.Background(), auth.NewKey{Role: auth.Admin, Name: "console admin"})
	if err != nil {
		t.Fatal(err)
	}

	const (
		guid   = "0b7c3f4e-5d6a-4b8c-9d0e-1f2a3b4c5d6e"
		script = `<script>alert(1)</script>`
	)
	created := `{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"entityGuid":"` + guid + `","businessUnitId":42,` +
		`"createdOn":"2026-11-22T09:00:00Z","notificationEventTypeId":101,"correlationId":"corr-1",` +
		`"payload":{"firstName":"` + strings.ReplaceAll(script, `"`, `\"`) + `","guardianEmail":"guardian@example.com"}}`
	updated := `{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityGuid":"` + guid + `","businessUnitId":42,` +
		`"createdOn":"2026-11-22T10:00:00Z","notificationEventTypeId":102,"changedFields":["` + script + `","lastName"],` +
		`"correlationId":"<img src=x onerror=alert(2)>","payload":{"lastName":"Lovelace"}}`
	send(t, w.Worker, created, updated)
	drain(t, w.Worker)
	updatedKey := "12:1:" + guid + ":2026-11-22T10:00:00.0000000Z:2"
	createdKey := "11:1:" + guid + ":2026-11-22T09:00:00.0000000Z:1"

	ctx := testenv.StartBrowser(t)
	if status := signIn(t, ctx, w.base, support); status != 200 {
		t.Fatalf("sign in as support: %d", status)
	}

	// Find the update by its key: its trace says, first, why nothing went out.
	find(t, ctx, w.base, updatedKey, false)
	answer := text(t, ctx, "p.answer")
	for _, want := range []string{"Skipped", "IncidentSubmitted (102)", "not turned on for business unit 42", "NotificationOption"} {
		if !strings.Contains(answer, want) {
			t.Errorf("the unseeded job's answer %q does not say %q", answer, want)
		}
	}
	shownAsText(t, ctx, "the trace", script, "<img src=x onerror=alert(2)>")
	testenv.NoProblems(t, ctx, "the skipped trace")
	testenv.Screenshot(t, ctx, "console-flow-trace-skipped")

	// Its entity's timeline: both occurrences, newest first, the markup in the data as text.
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`a[href^="/console/timeline"]`))); err != nil {
		t.Fatal(err)
	}
	if got := at(t, ctx); !strings.HasPrefix(got, "/console/timeline?type=1&id="+guid) {
		t.Fatalf("the trace's timeline link opens %s", got)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('a[href^="/console/trace?key="]').length`))
	if err != nil || rows < 2 {
		t.Errorf("the timeline links %d traces (%v), want one per occurrence at least", rows, err)
	}
	shownAsText(t, ctx, "the timeline", script)
	testenv.NoProblems(t, ctx, "the timeline")
	testenv.Screenshot(t, ctx, "console-flow-timeline")

	// The create's trace: sent, and the address's messages one link away.
	find(t, ctx, w.base, createdKey, false)
	if answer := text(t, ctx, "p.answer"); !strings.Contains(answer, "Sent to 1 of 1") {
		t.Errorf("the sent job's answer is %q, want Sent to 1 of 1", answer)
	}
	testenv.NoProblems(t, ctx, "the sent trace")
	testenv.Screenshot(t, ctx, "console-flow-trace-sent")
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`a[href^="/console/messages?address="]`))); err != nil {
		t.Fatal(err)
	}
	if body := text(t, ctx, "main"); !strings.Contains(body, "guardian@example.com") || !strings.Contains(body, "Sent") {
		t.Errorf("the address's messages page does not show the sent message: %.500s", body)
	}
	testenv.NoProblems(t, ctx, "messages to an address")
	testenv.Screenshot(t, ctx, "console-flow-messages")

	// Live: the unit's changes as the worker handles them, through the session's own stream
	// (EventSource, the cookie), field names only — never a value, and markup as text.
	if err := chromedp.Do(ctx, chromedp.Navigate(w.base+"/console/live?bu=42"), chromedp.WaitVisible(chromedp.ID("live-status"))); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the live stream connected", func() bool {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("live-status")))
		return err == nil && strings.Contains(s, "Live")
	})
	send(t, w.Worker, `{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityGuid":"`+guid+`","businessUnitId":42,`+
		`"createdOn":"2026-11-22T11:00:00Z","changedFields":["allergies","`+script+`"],"payload":{"allergies":"peanuts-secret-value"}}`)
	testenv.Eventually(t, 30*time.Second, "the change on the Live page", func() bool {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("live-rows")))
		return err == nil && strings.Contains(s, "allergies")
	})
	if rows := text(t, ctx, "#live-rows"); strings.Contains(rows, "peanuts-secret-value") || !strings.Contains(rows, script) {
		t.Errorf("the Live page shows %q: want the field names (markup as text), never a value", rows)
	}
	shownAsText(t, ctx, "the Live page", script)
	testenv.NoProblems(t, ctx, "the Live page")
	testenv.Screenshot(t, ctx, "console-flow-live")

	// An event poisoned by an outage (its retries ran out while storage was down, say): an
	// admin redrives it from Needs attention, and the worker processes it.
	const lost = "1d2e3f40-5a6b-4c7d-8e9f-a0b1c2d3e4f5"
	body := event(11, 1, 1, lost, "2026-11-22T12:00:00Z", `{"guardianEmail":"guardian@example.com"}`)
	rec, _ := json.Marshal(queues.PoisonRecord{Reason: "storage unavailable after 5 attempts", Queue: platform.QueueEntityEvents, Attempts: 5,
		MessageID: "outage-1", InsertedAt: time.Now().Add(-time.Hour), FailedAt: time.Now().Add(-time.Minute), Body: body})
	if err := w.Queues().Enqueue(context.Background(), platform.PoisonQueue(platform.QueueEntityEvents), string(rec), 0); err != nil {
		t.Fatal(err)
	}
	signOut(t, ctx, w.base)
	if status := signIn(t, ctx, w.base, admin); status != 200 {
		t.Fatalf("sign in as admin: %d", status)
	}
	const one = `details.redrive-one`
	if err := chromedp.Do(ctx, chromedp.Navigate(w.base+"/console/attention"), chromedp.WaitVisible(chromedp.CSS(one+` > summary`))); err != nil {
		t.Fatal(err)
	}
	testenv.NoProblems(t, ctx, "needs attention")
	testenv.Screenshot(t, ctx, "console-flow-attention")
	if _, err := chromedp.RunResponse(ctx,
		chromedp.Click(chromedp.CSS(one+` > summary`)),
		chromedp.SendKeys(chromedp.CSS(one+` input[name="reason"]`), "storage is back"),
		chromedp.Click(chromedp.CSS(one+` input[name="confirm"]`)),
		chromedp.Click(chromedp.CSS(one+` button[type="submit"]`))); err != nil {
		t.Fatal(err)
	}
	if flash := text(t, ctx, ".flash"); !strings.HasPrefix(flash, "Moved poison message ") || !strings.HasSuffix(flash, " of entity-events back to the queue") {
		t.Errorf("after redriving one, the page says %q, want Moved poison message … of entity-events back to the queue", flash)
	}
	testenv.NoProblems(t, ctx, "redrive")
	testenv.Eventually(t, 30*time.Second, "the redriven event's history row", func() bool {
		return len(timeline(t, w.Worker, 1, lost)) == 1
	})
	find(t, ctx, w.base, "1 "+lost, false)
	if body := text(t, ctx, "main"); !strings.Contains(body, "Attendee created") {
		t.Errorf("the redriven event's timeline: %.500s", body)
	}
	testenv.NoProblems(t, ctx, "the redriven event's timeline")
}

// shownAsText checks that each piece of markup is in the page's text, as text: no element of
// it exists (a script tag or an image of the data would be one).
func shownAsText(t *testing.T, ctx context.Context, where string, markup ...string) {
	t.Helper()
	body := text(t, ctx, "body")
	for _, m := range markup {
		if !strings.Contains(body, m) {
			t.Errorf("%s: %q is not shown as text", where, m)
		}
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('main script:not([src="/console/static/console.js"]), main img').length`)); err != nil || n != 0 {
		t.Errorf("%s: %d script or img elements in the page (%v): the data's markup became markup", where, n, err)
	}
}

func signOut(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS("form.who button"))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("form.who button"))); err != nil {
		t.Fatal(err)
	}
}
