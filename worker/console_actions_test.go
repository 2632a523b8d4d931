package worker_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker"
)

// formBrowser is a console session over plain HTTP with a cookie jar (the session, and an
// action's flash), redirects shown, not followed.
type formBrowser struct {
	t    *testing.T
	base string
	c    *http.Client
}

// formSession starts a console session with an API key, as the sign-in form does.
func formSession(t *testing.T, base, bearer string) *formBrowser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &formBrowser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	code, _, to := b.post("/console/login", url.Values{"credential": {strings.TrimPrefix(bearer, "Bearer ")}})
	if code != http.StatusSeeOther || to != "/console/" {
		t.Fatalf("sign in: %d to %q", code, to)
	}
	return b
}

func (b *formBrowser) do(req *http.Request) (int, string, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header.Get("Location")
}

func (b *formBrowser) get(path string) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	code, body, _ := b.do(req)
	return code, body
}

// post sends a form, as a console page's form is sent: from the console's own origin.
func (b *formBrowser) post(path string, form url.Values) (code int, body, location string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

// csrf is the token the page's forms carry.
func (b *formBrowser) csrf(page string) string {
	b.t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatal("no CSRF token on the page")
	}
	return m[1]
}

// The Needs attention page and its forms, over HTTP against a real worker: an admin's page
// lists what needs a person with a form per row, hostile poison renders as text; a form
// without the session's token, or without "I confirm", does nothing; with them, mark sent
// and redrive one act (the worker then processes the redriven message, and poisons it again:
// nothing was fixed) and leave the other poison where it was. A support session sees the
// lists without forms, and its posted form is refused by the API.
func TestConsoleAttentionPageAndItsActions(t *testing.T) {
	t.Parallel()
	e := newAttentionEnv(t)
	unknown := e.unknown(42, "console@example.com")
	unregistered := `{"eventTypeId":999,"entityTypeId":1,"actionTypeId":1,"entityGuid":"` + attendee + `","businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z"}`
	hostile := `{"<script>alert(\"x\")</script>":1}` // a poison message is shown by its shape: its field names
	e.poison(platform.QueueEntityEvents, unregistered, hostile)
	adminKey, adminID := e.key(auth.Admin)
	supportKey, _ := e.key(auth.Support, 42)
	poisonIDs := func() (unregisteredIDs []string, hostileID string) {
		for _, p := range e.attention(adminKey, "").Poison {
			for _, it := range p.Items {
				switch {
				case p.Queue == platform.QueueEntityEvents && strings.Contains(it.Reason, "999"):
					unregisteredIDs = append(unregisteredIDs, it.ID)
				case p.Queue == platform.QueueEntityEvents && strings.HasSuffix(it.About, `fields <script>alert("x")</script>`):
					hostileID = it.ID
				}
			}
		}
		return unregisteredIDs, hostileID
	}

	admin := formSession(t, e.base, adminKey)
	code, page := admin.get("/console/attention")
	if code != http.StatusOK || !strings.Contains(strings.ToLower(page), strings.ToLower(`href="/console/trace?key=`+url.QueryEscape(unknown)+`"`)) ||
		!strings.Contains(page, `<span class="state tone-bad">Unknown</span>`) || !strings.Contains(page, `action="/console/actions/mark-sent"`) ||
		!strings.Contains(page, `action="/console/actions/redrive"`) {
		t.Fatalf("the admin's page (%d) lacks the Unknown message, its link, state or forms:\n%s", code, page)
	}
	if strings.Contains(page, "<script>alert") || !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Fatal("a poison body's script is not rendered as text")
	}
	csrf := admin.csrf(page)
	form := url.Values{"messageKey": {unknown}, "reason": {"checked with the provider"}, "confirm": {"on"}}

	if code, _, _ := admin.post("/console/actions/mark-sent", form); code != http.StatusForbidden {
		t.Fatalf("a form without its CSRF token: %d, want 403", code)
	}
	form.Set("csrf", csrf)
	form.Del("confirm")
	if code, body, _ := admin.post("/console/actions/mark-sent", form); code != http.StatusBadRequest || !strings.Contains(body, "I confirm") {
		t.Fatalf("a form without the confirmation: %d, want 400 asking for it", code)
	}
	if m := storedMessage(t, e.ns, unknown); m.State != platform.MessageUnknown {
		t.Fatalf("refused forms changed the message: %s", m.State)
	}
	form.Set("confirm", "on")
	if code, _, to := admin.post("/console/actions/mark-sent", form); code != http.StatusSeeOther || to != "/console/attention" {
		t.Fatalf("mark sent: %d to %q, want 303 back to the page", code, to)
	}
	if _, page := admin.get("/console/attention"); !strings.Contains(page, "Marked sent (nothing was sent): "+unknown) {
		t.Fatalf("the page does not say what was done:\n%s", page)
	}
	if m := storedMessage(t, e.ns, unknown); m.State != platform.MessageSent {
		t.Fatalf("marked through the console: %s, want Sent", m.State)
	}
	if a := e.audits("POST /v1/messages/mark-sent"); len(a) != 1 || a[0]["principal"] != adminID || a[0]["why"] != "checked with the provider" || a[0]["outcome"] != "ok" {
		t.Fatalf("audit lines %v: want the console's one, by its principal", a)
	}

	// Redrive one: exactly that message goes back, is processed, and (nothing fixed) poisoned
	// again under a new id; the other stays as it was.
	ids, hostileID := poisonIDs()
	if len(ids) != 1 || hostileID == "" {
		t.Fatalf("poison ids %v and %q, want one each", ids, hostileID)
	}
	redrive := url.Values{"csrf": {csrf}, "queue": {platform.QueueEntityEvents}, "messageId": {ids[0]}, "reason": {"type 999 registered now"}, "confirm": {"on"}}
	if code, body, _ := admin.post("/console/actions/redrive", redrive); code != http.StatusSeeOther {
		t.Fatalf("redrive one: %d %s", code, body)
	}
	testenv.Eventually(t, 30*time.Second, "the redriven message poisoned again", func() bool {
		again, h := poisonIDs()
		return len(again) == 1 && again[0] != ids[0] && h == hostileID
	})
	if code, body, _ := admin.post("/console/actions/redrive", redrive); code != http.StatusNotFound || !strings.Contains(body, "no such message") {
		t.Fatalf("redrive an id no longer there: %d, want 404 in the API's words", code)
	}
	redrive.Del("messageId")
	if code, _, _ := admin.post("/console/actions/redrive", redrive); code != http.StatusSeeOther {
		t.Fatalf("redrive all: %d", code)
	}
	if _, page := admin.get("/console/attention"); !strings.Contains(page, "Moved 2 poison message(s) of entity-events back to the queue") {
		t.Fatalf("redrive all did not say it moved both:\n%s", page)
	}
	redrive.Set("queue", "no-such-queue")
	if code, _, _ := admin.post("/console/actions/redrive", redrive); code != http.StatusNotFound {
		t.Fatalf("redrive an unknown queue: %d, want 404", code)
	}

	support := formSession(t, e.base, supportKey)
	code, page = support.get("/console/attention")
	if code != http.StatusOK || strings.Contains(page, `action="/console/actions/`) || !strings.Contains(page, "needs the <strong>admin</strong> role") ||
		!strings.Contains(page, "only a principal that sees every unit sees them") {
		t.Fatalf("the support page (%d) shows forms, or does not say why not:\n%s", code, page)
	}
	cancel := url.Values{"csrf": {support.csrf(page)}, "jobKey": {"notification-job:x"}, "reason": {"r"}, "confirm": {"on"}}
	if code, body, _ := support.post("/console/actions/cancel-job", cancel); code != http.StatusForbidden || !strings.Contains(body, "needs role admin") {
		t.Fatalf("a support session's action: %d, want the API's 403", code)
	}
}

// With authentication off, on a loopback address, the console is the anonymous principal's
// (an admin of every unit): its forms still need the page's CSRF token.
func TestConsoleActionsWithAuthenticationOffNeedTheToken(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0"})
	send(t, w, `{"eventTypeId":11, "entityTypeId":`)
	testenv.Eventually(t, 30*time.Second, "poisoned", func() bool { return len(poison(t, w)) == 1 })
	jar, _ := cookiejar.New(nil) // for the flash
	b := &formBrowser{t: t, base: "http://" + w.HTTPAddr(), c: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	code, page := b.get("/console/attention?since=2d")
	if code != http.StatusOK || !strings.Contains(page, `action="/console/actions/redrive"`) || !strings.Contains(page, `<option value="2d" selected>since 2d</option>`) {
		t.Fatalf("the page with authentication off (%d) lacks its forms or its window:\n%s", code, page)
	}
	form := url.Values{"queue": {platform.QueueEntityEvents}, "reason": {"the parser is fixed"}, "confirm": {"on"}}
	if code, _, _ := b.post("/console/actions/redrive", form); code != http.StatusForbidden {
		t.Fatalf("without the token: %d, want 403", code)
	}
	if len(poison(t, w)) != 1 {
		t.Fatal("a refused form moved the poison message")
	}
	form.Set("csrf", b.csrf(page))
	if code, body, to := b.post("/console/actions/redrive", form); code != http.StatusSeeOther || to != "/console/attention" {
		t.Fatalf("with the token: %d %s to %q, want 303 back to the page", code, body, to)
	}
	if _, page := b.get("/console/attention"); !strings.Contains(page, "Moved 1 poison message(s) of entity-events") {
		t.Fatal("the page does not say what was done")
	}
}
