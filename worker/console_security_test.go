package worker_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/notify"
)

// The console's sessions, forms and headers over plain HTTP: what a browser would send, and
// what an attacker's page, a forged cookie or a rebound DNS name would.

// consoleClient is a browser without a browser: it keeps its session cookie, follows no
// redirect, and sends what a page of the console would (its Origin, Sec-Fetch-Site:
// same-origin) unless told otherwise.
type consoleClient struct {
	t      *testing.T
	base   string       // http://127.0.0.1:port
	cookie *http.Cookie // the session cookie; nil when signed out
	csrf   string       // the token the session's pages carry
}

type reply struct {
	status int
	header http.Header
	body   string
}

// cookie is the session cookie the reply sets, or nil.
func (r reply) cookie() *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == "platform_console" {
			return c
		}
	}
	return nil
}

// do sends one request. form, when not nil, is the POST body; h adds or (with "") removes
// headers, "Host" included.
func (c *consoleClient) do(method, path string, form url.Values, h map[string]string) reply {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var body io.Reader = http.NoBody
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Origin", c.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range h {
		switch {
		case k == "Host":
			req.Host = v
		case v == "":
			req.Header.Del(k)
		default:
			req.Header.Set(k, v)
		}
	}
	if c.cookie != nil {
		req.AddCookie(&http.Cookie{Name: c.cookie.Name, Value: c.cookie.Value})
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signedIn signs credential in on w's console and reads the session's CSRF token off Find.
func signedIn(t *testing.T, base, credential string) *consoleClient {
	t.Helper()
	c := &consoleClient{t: t, base: base}
	r := c.do("POST", "/console/login", url.Values{"credential": {credential}}, nil)
	if r.status != http.StatusSeeOther || r.cookie() == nil {
		t.Fatalf("sign in: %d %s, want 303 and a session cookie", r.status, r.body)
	}
	c.cookie = r.cookie()
	c.csrf = c.page("/console/")
	return c
}

// page reads a console page that must answer 200 and returns its CSRF token.
func (c *consoleClient) page(path string) (csrf string) {
	c.t.Helper()
	r := c.do("GET", path, nil, nil)
	m := csrfField.FindStringSubmatch(r.body)
	if r.status != http.StatusOK || m == nil {
		c.t.Fatalf("GET %s: %d, want 200 and a page with a CSRF token: %.300s", path, r.status, r.body)
	}
	return m[1]
}

// refusesForgedForms posts form to path (a console action) as every forgery a console form
// must refuse — without its token, with an empty one, with another session's, with the right
// one but from another site's page or a page of another origin — and checks each is 403 and
// ends no session; then notDone (when not nil) checks that the action did not happen.
// credential signs in the two sessions (admin, for an action).
func refusesForgedForms(t *testing.T, base, credential, path string, form url.Values, notDone func()) {
	t.Helper()
	victim, other := signedIn(t, base, credential), signedIn(t, base, credential)
	if victim.csrf == other.csrf {
		t.Fatal("two sessions share a CSRF token")
	}
	// with is form with fields (name, value, …) set.
	with := func(fields ...string) url.Values {
		v := url.Values{}
		for k, vs := range form {
			v[k] = vs
		}
		for i := 0; i+1 < len(fields); i += 2 {
			v.Set(fields[i], fields[i+1])
		}
		return v
	}
	crossSite := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
	for _, f := range []struct {
		name string
		form url.Values
		h    map[string]string
	}{
		{"without a token", with(), nil},
		{"with an empty token", with("csrf", ""), nil},
		{"with another session's token", with("csrf", other.csrf), nil},
		{"with a made-up token", with("csrf", strings.Repeat("A", len(victim.csrf))), nil},
		{"in the query, not the form", with(), nil}, // path gets ?csrf= below
		{"from another site's page", with("csrf", victim.csrf), crossSite},
		{"from another site, by Origin only", with("csrf", victim.csrf), map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": ""}},
		{"from a page of another origin of the site", with("csrf", victim.csrf), map[string]string{"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}},
	} {
		target := path
		if strings.HasPrefix(f.name, "in the query") {
			target += sep(path) + "csrf=" + url.QueryEscape(victim.csrf)
		}
		r := victim.do("POST", target, f.form, f.h)
		if r.status != http.StatusForbidden {
			t.Errorf("POST %s %s: %d %.200s, want 403", path, f.name, r.status, r.body)
		}
		if ck := r.cookie(); ck != nil {
			t.Errorf("POST %s %s: the refusal set the session cookie (%q, max-age %d)", path, f.name, ck.Value, ck.MaxAge)
		}
	}
	victim.page("/console/") // still signed in
	if notDone != nil {
		notDone()
	}
}

func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}

func TestConsoleRefusesForgedForms(t *testing.T) {
	t.Parallel()
	w := newConsoleWorker(t)
	support, _ := w.key(t, auth.Support)
	// A forged sign-out that worked would end the session, which refusesForgedForms checks it
	// did not.
	refusesForgedForms(t, w.base, support, "/console/logout", url.Values{}, nil)

	// Every action, forged by an admin's page: none is done. A job that would be cancelled, a
	// poison message that would be redriven; the message actions on keys that do not exist
	// (refused before the API is asked at all).
	ctx := context.Background()
	admin, _, err := w.Keys().Create(ctx, auth.NewKey{Role: auth.Admin, Name: "forged forms"})
	if err != nil {
		t.Fatal(err)
	}
	sendAt := time.Now().Add(time.Hour)
	job, _, err := w.Notify().CreateJob(ctx, notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42, SendAt: &sendAt,
		Recipients: []platform.Recipient{{Channel: "email", Address: "ada@example.com"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	poisoned := `{"reason":"forged-forms test","queue":"entity-events","attempts":1,"messageId":"m1","insertedAt":"2026-11-29T00:00:00Z","failedAt":"2026-11-29T00:00:00Z","body":"{}"}`
	if err := w.Queues().Enqueue(ctx, platform.PoisonQueue(platform.QueueEntityEvents), poisoned, 0); err != nil {
		t.Fatal(err)
	}
	act := url.Values{"reason": {"forged"}, "confirm": {"on"}}
	with := func(k, v string) url.Values {
		f := url.Values{k: {v}}
		for k, vs := range act {
			f[k] = vs
		}
		return f
	}
	refusesForgedForms(t, w.base, admin, "/console/actions/cancel-job", with("jobKey", job.Key), func() {
		tr, err := w.Notify().Trace(ctx, job.Key, nil)
		if err != nil || len(tr.Jobs) != 1 || tr.Jobs[0].Job == nil || tr.Jobs[0].Job.Reason == platform.ReasonCancelledBySupport {
			t.Errorf("a forged cancel: the trace is %+v (%v), want the job not cancelled", tr, err)
		}
	})
	refusesForgedForms(t, w.base, admin, "/console/actions/redrive", with("queue", platform.QueueEntityEvents), func() {
		if left, err := w.Queues().Peek(ctx, platform.PoisonQueue(platform.QueueEntityEvents)); err != nil || len(left) != 1 {
			t.Errorf("a forged redrive: %d poison messages left (%v), want 1", len(left), err)
		}
	})
	for _, path := range []string{"/console/actions/mark-sent", "/console/actions/resend"} {
		refusesForgedForms(t, w.base, admin, path, with("messageKey", job.Key+"|email|ada@example.com"), nil)
	}

	// The real form signs out.
	c := signedIn(t, w.base, support)
	r := c.do("POST", "/console/logout", url.Values{"csrf": {c.csrf}}, nil)
	if ck := r.cookie(); r.status != http.StatusSeeOther || ck == nil || ck.MaxAge >= 0 {
		t.Fatalf("sign out with the session's token: %d, cookie %+v, want 303 and the cookie removed", r.status, ck)
	}

	// Signing in from another site's page (login CSRF: the victim signed in as the attacker) is refused.
	for name, h := range map[string]map[string]string{
		"cross-site": {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
		"by Origin":  {"Origin": "https://evil.example", "Sec-Fetch-Site": ""},
	} {
		anon := &consoleClient{t: t, base: w.base}
		r := anon.do("POST", "/console/login", url.Values{"credential": {support}}, h)
		if r.status != http.StatusForbidden || r.cookie() != nil {
			t.Errorf("sign in from another site (%s): %d, cookie %v, want 403 and none", name, r.status, r.cookie())
		}
	}
}

// Every console answer — pages, redirects, refusals, errors, static files — carries the
// headers that keep it out of frames, caches and sniffing, under a CSP without inline script.
func TestConsoleSecurityHeadersOnEveryAnswer(t *testing.T) {
	t.Parallel()
	w := newConsoleWorker(t)
	support, _ := w.key(t, auth.Support)
	c := signedIn(t, w.base, support)
	anon := &consoleClient{t: t, base: w.base}
	cases := []struct {
		name   string
		c      *consoleClient
		method string
		path   string
		form   url.Values
		h      map[string]string
		status int
	}{
		{"sign-in page", anon, "GET", "/console/login", nil, nil, 200},
		{"signed out", anon, "GET", "/console/", nil, nil, 303},
		{"a refused sign-in", anon, "POST", "/console/login", url.Values{"credential": {"plk_nonsense"}}, nil, 401},
		{"an empty sign-in", anon, "POST", "/console/login", url.Values{}, nil, 400},
		{"Find", c, "GET", "/console/", nil, nil, 200},
		{"a Find query", c, "GET", "/console/find?q=1:501", nil, nil, 303},
		{"a refused Find query", c, "GET", "/console/find?q=x@", nil, nil, 400},
		{"no such page", c, "GET", "/console/no-such-page", nil, nil, 404},
		{"a forged form", c, "POST", "/console/logout", url.Values{}, nil, 403},
		{"a form of another site", c, "POST", "/console/logout", url.Values{"csrf": {c.csrf}}, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403},
		{"a form without a session", anon, "POST", "/console/logout", url.Values{}, nil, 401},
		{"the style sheet", anon, "GET", "/console/static/console.css", nil, nil, 200},
		{"the script", anon, "GET", "/console/static/console.js", nil, nil, 200},
	}
	for _, tc := range cases {
		r := tc.c.do(tc.method, tc.path, tc.form, tc.h)
		if r.status != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, r.status, tc.status)
		}
		csp := r.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %s", tc.name, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-") || strings.Contains(csp, "*") || strings.Contains(csp, "data:") {
			t.Errorf("%s: CSP %q allows inline, eval, data: or any origin", tc.name, csp)
		}
		for h, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
			if got := r.header.Get(h); got != want {
				t.Errorf("%s: %s %q, want %q", tc.name, h, got, want)
			}
		}
	}
}

// The session cookie: out of the page's scripts' reach, never sent by another site's request,
// only to the console, and only over HTTPS except to a loopback address over plain HTTP.
func TestConsoleSessionCookieAttributes(t *testing.T) {
	t.Parallel()
	w := newConsoleWorker(t)
	support, _ := w.key(t, auth.Support)
	for _, tc := range []struct {
		host   string
		secure bool
	}{
		{"", false}, // 127.0.0.1:port, as dialled
		{"localhost:8080", false},
		{"[::1]:8080", false},
		{"console.example.com", true}, // behind a proxy that terminates TLS
		{"10.0.0.7:8080", true},
	} {
		anon := &consoleClient{t: t, base: w.base}
		h := map[string]string{"Origin": ""}
		if tc.host != "" {
			h["Host"] = tc.host
		}
		if tc.secure {
			// Over plain HTTP the browser would drop the Secure cookie: sign-in says so.
			r := anon.do("POST", "/console/login", url.Values{"credential": {support}}, h)
			if r.status != http.StatusBadRequest || r.cookie() != nil || !strings.Contains(r.body, "needs HTTPS") {
				t.Errorf("Host %q over plain HTTP: sign in %d, cookie %v, want 400 saying HTTPS is needed", tc.host, r.status, r.cookie() != nil)
			}
			h["X-Forwarded-Proto"] = "https" // a proxy that terminates TLS
		}
		r := anon.do("POST", "/console/login", url.Values{"credential": {support}}, h)
		ck := r.cookie()
		if r.status != http.StatusSeeOther || ck == nil {
			t.Fatalf("Host %q: sign in %d, cookie %v", tc.host, r.status, ck)
		}
		if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/console/" || ck.Secure != tc.secure || ck.Domain != "" {
			t.Errorf("Host %q: cookie HttpOnly=%v SameSite=%v Path=%q Secure=%v Domain=%q, want HttpOnly, Lax, /console/, Secure=%v, no Domain",
				tc.host, ck.HttpOnly, ck.SameSite, ck.Path, ck.Secure, ck.Domain, tc.secure)
		}
		if strings.Contains(ck.Value, support[len(auth.KeyPrefix):]) {
			t.Errorf("Host %q: the cookie carries the key in the clear", tc.host)
		}
		// Signing out removes it with the same attributes.
		c := &consoleClient{t: t, base: w.base, cookie: ck}
		c.csrf = c.page("/console/")
		out := c.do("POST", "/console/logout", url.Values{"csrf": {c.csrf}}, nil)
		if gone := out.cookie(); gone == nil || gone.MaxAge >= 0 || !gone.HttpOnly || gone.Path != "/console/" || gone.SameSite != http.SameSiteLaxMode {
			t.Errorf("Host %q: sign out sets %+v, want the cookie removed (Max-Age<0) with its attributes", tc.host, gone)
		}
	}
}

// A cookie the console did not seal — made up, altered, cut, or sealed by another
// namespace's console — is no session: the page asks to sign in, and a form is refused.
func TestConsoleForgedCookiesAreNoSession(t *testing.T) {
	t.Parallel()
	iss := testenv.StartIssuer(t)
	cfg := worker.Config{HTTPAddr: "127.0.0.1:0", Auth: auth.Config{Issuer: iss.URL, Audience: audience}}
	a, b := newWorker(t, cfg), newWorker(t, cfg) // two namespaces, one issuer
	baseA, baseB := "http://"+a.HTTPAddr(), "http://"+b.HTTPAddr()
	token := iss.Token(testenv.Claims{"sub": "support-1", "aud": audience, "roles": []string{"support"}, "bu": []int{42}})
	sealedByA := signedIn(t, baseA, token).cookie.Value
	signedIn(t, baseB, token) // the token itself is good on b

	flip := []byte(sealedByA)
	flip[len(flip)/2] ^= 1
	for name, value := range map[string]string{
		"made up":                   strings.Repeat("A", len(sealedByA)),
		"one bit changed":           string(flip),
		"cut short":                 sealedByA[:len(sealedByA)-4],
		"not base64":                "%%%",
		"the credential itself":     token,
		"sealed by another console": sealedByA, // sent to b
	} {
		c := &consoleClient{t: t, base: baseB, cookie: &http.Cookie{Name: "platform_console", Value: value}}
		if r := c.do("GET", "/console/", nil, nil); r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/login?next=%2Fconsole%2F" {
			t.Errorf("a cookie %s: GET /console/ %d to %q, want 303 to /console/login?next=%%2Fconsole%%2F", name, r.status, r.header.Get("Location"))
		}
		if r := c.do("POST", "/console/logout", url.Values{}, nil); r.status != http.StatusUnauthorized {
			t.Errorf("a cookie %s: a form %d, want 401", name, r.status)
		}
	}
}

// A session lasts only as long as its key: revoked, the next page ends the session and says so.
func TestConsoleSessionOfARevokedKeyEnds(t *testing.T) {
	t.Parallel()
	w := newConsoleWorker(t)
	support, revoke := w.key(t, auth.Support)
	c := signedIn(t, w.base, support)
	revoke()
	r := c.do("GET", "/console/", nil, nil)
	if want := "/console/login?expired=1&next=%2Fconsole%2F"; r.status != http.StatusSeeOther || r.header.Get("Location") != want {
		t.Fatalf("the key revoked: GET /console/ %d to %q, want 303 to %s", r.status, r.header.Get("Location"), want)
	}
	if ck := r.cookie(); ck == nil || ck.MaxAge >= 0 {
		t.Errorf("the key revoked: the cookie is not removed (%+v)", ck)
	}
	if r := c.do("POST", "/console/logout", url.Values{"csrf": {c.csrf}}, nil); r.status != http.StatusUnauthorized {
		t.Errorf("the key revoked: a form with the session's token %d, want 401", r.status)
	}
}

// Without authentication the console is open on this machine only: a page reached under
// another name (DNS rebinding: evil.example resolving to 127.0.0.1) is refused, pages and
// forms alike, and so is a form of another site's page.
func TestConsoleWithoutAuthenticationServesLoopbackOnly(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0"})
	_, port, _ := strings.Cut(w.HTTPAddr(), ":")
	c := &consoleClient{t: t, base: "http://" + w.HTTPAddr()}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port} {
		if r := c.do("GET", "/console/", nil, map[string]string{"Host": host}); r.status != http.StatusOK {
			t.Errorf("Host %s: %d, want 200 (authentication off, loopback)", host, r.status)
		}
	}
	c.csrf = c.page("/console/")
	rebound := map[string]string{"Host": "evil.example:" + port, "Origin": "http://evil.example:" + port}
	for _, req := range []struct{ method, path string }{{"GET", "/console/"}, {"GET", "/console/find?q=1:501"}, {"POST", "/console/logout"}} {
		var form url.Values
		if req.method == "POST" {
			form = url.Values{"csrf": {c.csrf}}
		}
		if r := c.do(req.method, req.path, form, rebound); r.status != http.StatusForbidden {
			t.Errorf("%s %s under another name: %d, want 403", req.method, req.path, r.status)
		}
	}
	crossSite := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
	if r := c.do("POST", "/console/logout", url.Values{"csrf": {c.csrf}}, crossSite); r.status != http.StatusForbidden {
		t.Errorf("a form of another site's page: %d, want 403", r.status)
	}
}

// A token too large for a browser to keep in a cookie (an Entra ID token with many groups) is
// refused at sign-in, saying so: a browser would drop the cookie without a word, and the next
// page would ask to sign in again, with no reason given.
func TestConsoleRefusesACredentialTooLargeForACookie(t *testing.T) {
	t.Parallel()
	iss := testenv.StartIssuer(t)
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0", Auth: auth.Config{Issuer: iss.URL, Audience: audience}})
	base := "http://" + w.HTTPAddr()
	groups := make([]string, 100)
	for i := range groups {
		groups[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	}
	claims := func(n int) testenv.Claims {
		return testenv.Claims{"sub": "support-1", "aud": audience, "roles": []string{"support"}, "bu": []int{42}, "groups": groups[:n]}
	}
	signedIn(t, base, iss.Token(claims(20))) // a token with some groups fits

	big := iss.Token(claims(100))
	anon := &consoleClient{t: t, base: base}
	r := anon.do("POST", "/console/login", url.Values{"credential": {big}}, nil)
	if r.status != http.StatusBadRequest || r.cookie() != nil || !strings.Contains(r.body, "too large") {
		t.Fatalf("a %d-byte token: %d, cookie %v, want 400 saying it is too large: %.400s", len(big), r.status, r.cookie() != nil, r.body)
	}
}

// A link to a console page (from a ticket, a chat) opens that page: without a session it goes
// through sign-in and on to the page; never on to another site.
func TestConsoleDeepLinkSurvivesSignIn(t *testing.T) {
	t.Parallel()
	w := newConsoleWorker(t)
	support, _ := w.key(t, auth.Support)
	anon := &consoleClient{t: t, base: w.base}
	page := "/console/find?q=ada%40example.com"
	r := anon.do("GET", page, nil, map[string]string{"Origin": "", "Sec-Fetch-Site": "cross-site"})
	want := "/console/login?next=" + url.QueryEscape(page)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != want {
		t.Fatalf("a link without a session: %d to %q, want 303 to %s", r.status, r.header.Get("Location"), want)
	}
	if body := anon.do("GET", want, nil, nil).body; !strings.Contains(body, `name="next" value="`+html.EscapeString(page)+`"`) {
		t.Fatalf("the sign-in form does not carry the page on: %.2000s", body)
	}
	for next, to := range map[string]string{
		page:                     page,
		"https://evil.example/x": "/console/",
		"//evil.example/x":       "/console/",
		"/\\evil.example/x":      "/console/",
		"/console/login?next=x":  "/console/",
		"":                       "/console/",
	} {
		r := anon.do("POST", "/console/login", url.Values{"credential": {support}, "next": {next}}, nil)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != to {
			t.Errorf("signed in with next %q: %d to %q, want 303 to %s", next, r.status, r.header.Get("Location"), to)
		}
	}
}
