package worker_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/platform/platform/auth"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker"
)

// consoleWorker is a worker serving the console on a loopback address, with API keys on.
type consoleWorker struct {
	*worker.Worker
	base string // http://127.0.0.1:port
}

func newConsoleWorker(t *testing.T) *consoleWorker {
	t.Helper()
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0", Auth: auth.Config{Mode: auth.ModeKeys}})
	return &consoleWorker{Worker: w, base: "http://" + w.HTTPAddr()}
}

// key creates an API key of role for business unit 42; revoke ends it.
func (w *consoleWorker) key(t *testing.T, role auth.Role) (secret string, revoke func()) {
	t.Helper()
	ctx := context.Background()
	secret, k, err := w.Keys().Create(ctx, auth.NewKey{Role: role, Units: auth.Units{IDs: []int64{42}}, Name: "console test"})
	if err != nil {
		t.Fatal(err)
	}
	return secret, func() {
		t.Helper()
		if _, err := w.Keys().Revoke(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// signIn pastes credential into the sign-in form and sends it; it returns the status of the
// page it lands on.
func signIn(t *testing.T, ctx context.Context, base, credential string) int64 {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/console/login"), chromedp.WaitVisible(chromedp.ID("credential"))); err != nil {
		t.Fatal(err)
	}
	resp, err := chromedp.RunResponse(ctx,
		chromedp.SetValue(chromedp.ID("credential"), credential),
		chromedp.Click(chromedp.CSS(`form[action="/console/login"] button[type=submit]`)))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Status
}

// at is the path and query the tab shows.
func at(t *testing.T, ctx context.Context) string {
	t.Helper()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u.RequestURI()
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("%s: %v", css, err)
	}
	return s
}

// consolePages are the pages a signed-in support engineer opens: each is loaded, must show its
// selector, must do nothing a console page must not (testenv.NoProblems: no console error, no
// CSP violation, no script of the data) and is screenshotted at each width as console-{name}.
// A new page adds a row.
var consolePages = []struct{ name, path, visible string }{
	{"find", "/console/", "form.find #q"},
	{"settings", "/console/settings?bu=42", "#bu"},
	{"live", "/console/live?bu=42", "#live-status"},
	{"messages", "/console/messages?address=ada%40example.com", "#address"},
}

// The console in a real browser: signing in and out, the pages, Find, hostile input.
func TestConsoleInABrowser(t *testing.T) {
	t.Parallel()
	w := newConsoleWorker(t)
	ctx := testenv.StartBrowser(t)
	support, revoke := w.key(t, auth.Support)

	// Signed out, every page goes to the sign-in page.
	if err := chromedp.Do(ctx, chromedp.Navigate(w.base+"/console/"), chromedp.WaitVisible(chromedp.ID("credential"))); err != nil {
		t.Fatal(err)
	}
	if got, want := at(t, ctx), "/console/login?next=%2Fconsole%2F"; got != want {
		t.Fatalf("signed out, /console/ shows %s, want %s", got, want)
	}
	testenv.NoProblems(t, ctx, "sign-in page")
	testenv.Screenshot(t, ctx, "console-login")

	// A key without the support role is refused, in words, on the page.
	historyRead, _ := w.key(t, auth.HistoryRead)
	if status := signIn(t, ctx, w.base, historyRead); status != 403 {
		t.Errorf("a history.read key signs in: %d, want 403", status)
	}
	if msg := text(t, ctx, ".error"); !strings.Contains(msg, "needs role support") || !strings.Contains(msg, "history.read") {
		t.Errorf("a history.read key is told %q, want why (role support; it has history.read)", msg)
	}
	testenv.NoProblems(t, ctx, "a refused sign-in", "network") // the 403 itself
	if got := at(t, ctx); got != "/console/login" {
		t.Errorf("after a refused sign-in the tab shows %s", got)
	}

	// A support key signs in and lands on Find.
	if status := signIn(t, ctx, w.base, support); status != 200 {
		t.Fatalf("a support key signs in: %d, want 200", status)
	}
	if got := at(t, ctx); got != "/console/" {
		t.Fatalf("signed in, the tab shows %s, want /console/ (Find)", got)
	}
	testenv.NoProblems(t, ctx, "signing in")

	for _, p := range consolePages {
		if err := chromedp.Do(ctx, chromedp.Navigate(w.base+p.path), chromedp.WaitVisible(chromedp.CSS(p.visible))); err != nil {
			t.Fatalf("%s (%s): %v", p.name, p.path, err)
		}
		testenv.NoProblems(t, ctx, p.name)
		testenv.Screenshot(t, ctx, "console-"+p.name)
	}

	t.Run("find", func(t *testing.T) { findInABrowser(t, ctx, w.base) })
	t.Run("hostile", func(t *testing.T) { hostileFindInABrowser(t, ctx, w.base) })

	// Signing out ends the session: the pages go to the sign-in page again.
	if err := chromedp.Do(ctx, chromedp.Navigate(w.base+"/console/"), chromedp.WaitVisible(chromedp.CSS("form.who button"))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("form.who button"))); err != nil {
		t.Fatal(err)
	}
	if got := at(t, ctx); got != "/console/login" {
		t.Errorf("signed out, the tab shows %s, want /console/login", got)
	}
	if _, err := chromedp.RunResponse(ctx, chromedp.Navigate(w.base+"/console/")); err != nil {
		t.Fatal(err)
	}
	if got, want := at(t, ctx), "/console/login?next=%2Fconsole%2F"; got != want {
		t.Errorf("after signing out, /console/ shows %s, want %s", got, want)
	}
	testenv.NoProblems(t, ctx, "signing out")

	// A key revoked while signed in ends the session at the next page, saying so.
	if status := signIn(t, ctx, w.base, support); status != 200 {
		t.Fatalf("signing in again: %d", status)
	}
	revoke()
	if _, err := chromedp.RunResponse(ctx, chromedp.Navigate(w.base+"/console/")); err != nil {
		t.Fatal(err)
	}
	if got, want := at(t, ctx), "/console/login?expired=1&next=%2Fconsole%2F"; got != want {
		t.Errorf("the key revoked, the next page is %s, want %s", got, want)
	}
	if msg := text(t, ctx, ".flash"); !strings.Contains(msg, "revoked") {
		t.Errorf("the key revoked, the sign-in page says %q, want that the session ended", msg)
	}
	testenv.NoProblems(t, ctx, "a revoked key")
}

// find puts what support has into Find's box (typed, or pasted: set whole) and sends it: it
// returns the status of the page it lands on.
func find(t *testing.T, ctx context.Context, base, query string, typed bool) int64 {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.ID("q"))); err != nil {
		t.Fatal(err)
	}
	fill := chromedp.SetValue(chromedp.ID("q"), query)
	if typed {
		fill = chromedp.SendKeys(chromedp.ID("q"), query)
	}
	resp, err := chromedp.RunResponse(ctx, fill, chromedp.Click(chromedp.CSS("form.find button[type=submit]")))
	if err != nil {
		t.Fatalf("find %q: %v", query, err)
	}
	return resp.Status
}

// Find goes to the page that answers for what it is given. (The pages themselves are tested
// where they are built; here, that Find lands on them. Nothing was published: a trace or a
// timeline answers 404, which is the only network problem allowed.)
func findInABrowser(t *testing.T, ctx context.Context, base string) {
	const guid = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	eventKey := "11:1:" + guid + ":2026-11-22T09:00:00.1234567Z:1"
	for _, c := range []struct{ query, want string }{
		{"Ada@Example.com", "/console/messages?address=ada%40example.com"},
		{"1 " + guid, "/console/timeline?type=1&id=" + guid},
		{"1:501", "/console/timeline?type=1&id=501"},
		{"entity-history:" + eventKey, "/console/timeline?type=1&id=" + guid + "&row=" + url.QueryEscape("entity-history:"+eventKey)},
		{eventKey, "/console/trace?key=" + url.QueryEscape(eventKey)},
		{"notification-job:102:31:3:" + guid + ":4|email|ada@example.com", "/console/trace?key=" + url.QueryEscape("notification-job:102:31:3:"+guid+":4|email|ada@example.com")},
	} {
		status := find(t, ctx, base, c.query, true)
		if got := at(t, ctx); got != c.want {
			t.Errorf("find %q: lands on %s (%d), want %s", c.query, got, status, c.want)
		}
		for _, p := range testenv.Problems(ctx) {
			if p.Kind != "network" || !strings.Contains(p.Text, "404") {
				t.Errorf("find %q: %s", c.query, p)
			}
		}
	}
}

// A query that is markup is text on every page it reaches: nothing of it runs. (Pasted: the
// browser's key events carry no bidi control.)
func hostileFindInABrowser(t *testing.T, ctx context.Context, base string) {
	for _, q := range []string{
		`<script>alert(1)</script>`,
		`"><img src=x onerror=alert(1)>`,
		`"><svg/onload=alert(1)>@example.com`,           // not an address: Find again, with the query in its box
		`entity-history:<script>alert(1)</script>`,      // not a history key: the same
		`javascript:alert(1)`,                           // a link of it would run it
		"<b>bold</b>\u202e" + strings.Repeat("A", 2100), // too long, with a bidi control
	} {
		status := find(t, ctx, base, q, false)
		for _, p := range testenv.Problems(ctx) { // a query that is no key is a 400, no other problem
			if p.Kind != "network" || !strings.Contains(p.Text, "400") {
				t.Errorf("find %q: %s", q, p)
			}
		}
		if got := at(t, ctx); strings.HasPrefix(got, "/console/find") {
			// Refused: Find again, saying why, with the query as typed in its box.
			if status != 400 {
				t.Errorf("find %q: %d on Find, want 400", q, status)
			}
			value, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("q")))
			if err != nil || value != q {
				t.Errorf("find %q: the box holds %q (%v), want the query as typed", q, value, err)
			}
			if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main script, main img, main svg, main b").length`)); err != nil || n != 0 {
				t.Errorf("find %q: %d elements of the query's markup on the page (%v)", q, n, err)
			}
			continue
		}
		if got, want := at(t, ctx), "/console/trace?key="+url.QueryEscape(q); got != want {
			t.Errorf("find %q: lands on %s, want %s", q, got, want)
		}
	}
}
