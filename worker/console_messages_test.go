package worker_test

import (
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The messages page answers "why two" at the top, each message linked to its trace, then the
// messages; a hostile recipient name and a hostile address render as text.
func TestConsoleMessagesPage(t *testing.T) {
	t.Parallel()
	w, _ := duplicatesWorld(t, nil)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	get := func(query string) (int, string) {
		t.Helper()
		return call(t, "GET", srv.URL+"/console/messages?"+query, "", "")
	}

	code, page := get("address=twice%40example.com")
	if code != http.StatusOK {
		t.Fatalf("messages to twice@: %d %s", code, page)
	}
	why := strings.Index(page, "Separate occurrences of one change")
	table := strings.Index(page, "<table")
	if why < 0 || table < why {
		t.Fatalf("the why-two panel is missing, or not above the table:\n%s", page)
	}
	for _, want := range []string{
		"published this entity&#39;s change twice (createdOn 2026-11-22T10:00:00.0000000Z and 2026-11-22T10:05:00.0000000Z)",
		`href="/console/trace?key=notification-job%3a101%3a11%3a1%3a7c9e6679-7425-40de-944b-e07fc1f90ae7%3a2026-11-22T10%3a00%3a00.0000000Z%3a1%7cemail%7ctwice%40example.com"`,
		`<span class="state tone-ok">Sent</span>`, "3 messages", "201 WelcomeEmail", "101 AttendeeNewProfile",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page for twice@ lacks %q", want)
		}
	}
	if n := strings.Count(page, `<tr class="highlight">`); n != 3 {
		t.Errorf("%d rows marked as in a group, want 3 (the WelcomeEmail is in the group across types)", n)
	}
	if !strings.Contains(page, "Two types by two paths") {
		t.Errorf("the page for twice@ lacks the answer across types:\n%s", page)
	}

	_, page = get("address=paths%40example.com")
	if !strings.Contains(page, "Two paths — the dual-path case") || !strings.Contains(page, "turn one of the paths off") {
		t.Errorf("the page for paths@ lacks the dual-path answer:\n%s", page)
	}
	_, page = get("address=direct%40example.com&since=2020-01-01")
	if !strings.Contains(page, "the window is") {
		t.Errorf("a window over 31 days is not refused with the API's words:\n%s", page)
	}
	_, page = get("address=direct%40example.com")
	if !strings.Contains(page, "Separate direct requests") || !strings.Contains(page, html.EscapeString(hostileName)) || strings.Contains(page, hostileName) {
		t.Errorf("the page for direct@ lacks the answer, or shows the recipient's name as markup:\n%s", page)
	}

	hostile := `"<script>alert(1)</script>"@example.com`
	code, page = get("address=" + url.QueryEscape(hostile))
	if code != http.StatusBadRequest || strings.Contains(page, "<script>alert(1)") || !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") ||
		!strings.Contains(page, "not an email address") {
		t.Errorf("a hostile address: %d\n%s", code, page)
	}
	if code, page := get("address=a%40example.com&until=tomorrow"); code != http.StatusBadRequest || !strings.Contains(page, "until: want a date") {
		t.Errorf("a bad date: %d\n%s", code, page)
	}
	if code, page := get(""); code != http.StatusOK || !strings.Contains(page, `name="address"`) {
		t.Errorf("no address: %d\n%s", code, page)
	}
}
