package worker_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform/auth"
	"github.com/platform/platform/worker"
)

// page GETs a console page with client and returns its status and HTML.
func page(t *testing.T, client *http.Client, u string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const hostile = `<script>alert(1)</script>`

// The trace page of an event whose job was not turned on for its business unit says so in
// one sentence at the top, with the fix; the event's data (correlation id, actor, source,
// changed fields) and a pasted key, script tags included, are shown as text on the trace and
// timeline pages, never as markup.
func TestConsoleTraceAnswersAndShowsDataAsText(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "") // no option for IncidentSubmitted (102): Skipped, option-not-seeded
	cfg := env.config()
	cfg.HTTPAddr = "127.0.0.1:0" // authentication off: the console is open on loopback
	w := env.start(cfg)
	const guid = "0e4b6c2a-7d1f-4a3b-9c5e-8f7a6b5c4d3e"
	body := attendeeEvent(12, guid, 42, "2026-11-22T11:00:00Z", 102,
		`,"changedFields":["`+hostile+`"],"correlationId":"`+hostile+`","actorId":"`+hostile+`","source":"`+hostile+`"`, `{"lastName":"x"}`)
	send(t, w, body)
	drain(t, w)
	key := mustKey(t, body)
	base := "http://" + w.HTTPAddr()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	code, html := page(t, noFollow, base+"/console/trace?key="+url.QueryEscape(key))
	want := `<p class="answer tone-warn">Skipped: IncidentSubmitted (102) is not turned on for business unit 42 — seed a NotificationOption row for it.</p>`
	if code != http.StatusOK || !strings.Contains(html, want) {
		t.Fatalf("the trace page: %d, want the answer %s at the top:\n%s", code, want, html)
	}
	for _, s := range []string{"option-not-seeded", `<ol class="trail">`, "/console/timeline?type=1&amp;id=" + guid, "IncidentSubmitted (102)"} {
		if !strings.Contains(html, s) {
			t.Errorf("the trace page lacks %q", s)
		}
	}
	escaped := func(name, html string, times int) {
		t.Helper()
		if strings.Contains(html, hostile) || strings.Count(html, "&lt;script&gt;alert(1)&lt;/script&gt;") < times {
			t.Errorf("%s: want the script tags escaped, shown %d times or more:\n%s", name, times, html)
		}
	}
	escaped("the trace page", html, 4)

	code, html = page(t, noFollow, base+"/console/timeline?type=1&id="+guid+"&row="+url.QueryEscape("entity-history:12:1:"+guid+":2026-11-22T11:00:00.0000000Z:2"))
	if code != http.StatusOK || !strings.Contains(html, `<tr class="highlight">`) || !strings.Contains(html, "/console/trace?key="+url.QueryEscape(key)) ||
		!strings.Contains(html, `<span class="state tone-warn">Skipped</span>`) {
		t.Fatalf("the timeline page: %d, want the row highlighted, linking to its trace, its job Skipped:\n%s", code, html)
	}
	escaped("the timeline page", html, 4)

	// A pasted key is the API's to refuse, in its words, shown as text.
	code, html = page(t, noFollow, base+"/console/trace?key="+url.QueryEscape(hostile))
	if code != http.StatusBadRequest || !strings.Contains(html, `class="error"`) {
		t.Errorf("a trace of %s: %d, want 400 with the API's words:\n%s", hostile, code, html)
	}
	escaped("the trace page of a hostile key", html, 1)
}

// A support key scoped to business unit 42 signs in; another unit's event and timeline are the
// API's 404, in its words, on the console's error page.
func TestConsoleShowsTheAPIsNotFound(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	cfg := env.config()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Auth = auth.Config{Mode: auth.ModeKeys}
	w := env.start(cfg)
	const mine, theirs = "1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d", "2b3c4d5e-6f7a-4b2c-9d3e-4f5a6b7c8d9e"
	ours, other := attendeeEvent(11, mine, 42, "2026-11-22T10:00:00Z", 0, "", `{}`), attendeeEvent(11, theirs, 7, "2026-11-22T10:00:00Z", 0, "", `{}`)
	send(t, w, ours, other)
	drain(t, w)
	key, _, err := w.Keys().Create(context.Background(), auth.NewKey{Role: auth.Support, Units: auth.Units{IDs: []int64{42}}, Name: "support"})
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	base := "http://" + w.HTTPAddr()
	resp, err := client.PostForm(base+"/console/login", url.Values{"credential": {key}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/" {
		t.Fatalf("sign in: %d at %s, want the Find page", resp.StatusCode, resp.Request.URL)
	}
	for u, words := range map[string]string{
		"/console/trace?key=" + url.QueryEscape(mustKey(t, other)): "no such key",
		"/console/timeline?type=1&id=" + theirs:                    "no timeline",
	} {
		code, html := page(t, client, base+u)
		if code != http.StatusNotFound || !strings.Contains(html, `<p class="error" role="alert">`+words+`</p>`) {
			t.Errorf("%s: %d, want 404 saying %q:\n%s", u, code, words, html)
		}
	}
	if code, html := page(t, client, base+"/console/timeline?type=1&id="+mine); code != http.StatusOK || !strings.Contains(html, "Attendee created") {
		t.Errorf("its own unit's timeline: %d, want it shown:\n%s", code, html)
	}
	if code, html := page(t, client, base+"/console/trace?key="+url.QueryEscape(mustKey(t, ours))); code != http.StatusOK ||
		!strings.Contains(html, `<p class="answer tone-warn">No notification: the event carries no hint`) {
		t.Errorf("its own unit's trace: %d, want it with its answer:\n%s", code, html)
	}
}

// The timeline page shows 20 rows, newest first, and "Older →" follows the API's token to the
// rest; the page after it links back to the newest.
func TestConsoleTimelinePages(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0"})
	const guid = "3c4d5e6f-7a8b-4c3d-8e4f-5a6b7c8d9e0f"
	for i := range 21 {
		send(t, w, attendeeEvent(12, guid, 42, fmt.Sprintf("2026-11-22T10:%02d:00Z", i), 0, "", `{}`))
	}
	drain(t, w)
	base := "http://" + w.HTTPAddr()
	code, html := page(t, http.DefaultClient, base+"/console/timeline?type=1&id="+guid)
	older := regexp.MustCompile(`<a href="(/console/timeline\?[^"]+)" rel="next">Older →</a>`).FindStringSubmatch(html)
	if code != http.StatusOK || strings.Count(html, `<td class="time">`) != 20 || !strings.Contains(html, "2026-11-22 10:20:00Z") || older == nil {
		t.Fatalf("the first page: %d, want 20 rows from 10:20 down and an Older link:\n%s", code, html)
	}
	code, html = page(t, http.DefaultClient, base+strings.ReplaceAll(older[1], "&amp;", "&"))
	if code != http.StatusOK || strings.Count(html, `<td class="time">`) != 1 || !strings.Contains(html, "2026-11-22 10:00:00Z") ||
		strings.Contains(html, "Older →") || !strings.Contains(html, "← Newest") {
		t.Fatalf("the second page: %d, want the oldest row alone, no Older link, a link to the newest:\n%s", code, html)
	}
}
