package worker_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform/auth"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/api"
)

// The Live page's stream is the API's change stream served through the console: a change
// arrives with its field names, never a payload value; a request the API refuses arrives as a
// "refused" event the page can show.
func TestConsoleLiveStream(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	w := env.start(env.config())
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)

	code, page := call(t, "GET", srv.URL+"/console/live?bu=42&type=1", "", "")
	for _, want := range []string{`data-bu="42"`, `data-type="1"`, `id="live-status"`, `<script src="/console/static/console.js" defer></script>`} {
		if code != http.StatusOK || !strings.Contains(page, want) {
			t.Errorf("live page: %d, lacks %q", code, want)
		}
	}
	if code, page := call(t, "GET", srv.URL+"/console/live?bu="+url.QueryEscape("<x>"), "", ""); code != http.StatusBadRequest || strings.Contains(page, "<x>") ||
		strings.Contains(page, "data-bu") {
		t.Errorf("a bad unit: %d\n%s", code, page)
	}
	if code, script := call(t, "GET", srv.URL+"/console/static/console.js", "", ""); code != http.StatusOK || !strings.Contains(script, "/console/live/stream?") ||
		strings.Contains(script, "innerHTML") {
		t.Errorf("console.js: %d", code)
	}

	c := connect(t, srv.URL+"/console/live/stream?businessUnitId=42&entityTypeId=1", "")
	send(t, w, changeEvent(7, 1, "2026-11-22T10:00:00Z")) // another business unit: filtered out
	send(t, w, changeEvent(42, 3, "2026-11-22T10:00:01Z"))
	ev, ch := c.next(t)
	if ev.event != "change" || ev.id == "" || ch.BusinessUnitID != 42 || ch.EntityIdentity != "3" || strings.Join(ch.ChangedFields, ",") != "lastName,allergies" {
		t.Fatalf("through the console: %+v %+v", ev, ch)
	}
	c.mu.Lock()
	raw := c.raw.String()
	c.mu.Unlock()
	if !strings.Contains(raw, `"lastName"`) {
		t.Errorf("the stream lacks the field's name:\n%s", raw)
	}
	for _, value := range []string{"SECRET", "Lovelace", "peanuts"} {
		if strings.Contains(raw, value) {
			t.Errorf("the stream carried the payload value %q:\n%s", value, raw)
		}
	}
	// Resuming: after the id seen, the next change only.
	send(t, w, changeEvent(42, 4, "2026-11-22T10:00:02Z"))
	resumed := connect(t, srv.URL+"/console/live/stream?businessUnitId=42", ev.id)
	if _, next := resumed.next(t); next.EntityIdentity != "4" {
		t.Errorf("resumed after %s with entity %s, want 4", ev.id, next.EntityIdentity)
	}

	refused := connect(t, srv.URL+"/console/live/stream?businessUnitId=abc", "")
	select {
	case e := <-refused.events:
		var r struct {
			Status int    `json:"status"`
			Error  string `json:"error"`
		}
		if err := json.Unmarshal([]byte(e.data), &r); e.event != "refused" || err != nil || r.Status != 400 || !strings.Contains(r.Error, "businessUnitId") {
			t.Errorf("a refused stream: %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no refused event")
	}
}

// Signed in with a key of business unit 7, the console's stream is that key's: unit 42's
// stream is refused (404), and without a session there is none.
func TestConsoleLiveStreamIsTheSessionsOwn(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "")
	cfg := env.config()
	cfg.Auth = auth.Config{Mode: auth.ModeKeys}
	w := env.start(cfg)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	key, _, err := w.Keys().Create(context.Background(), auth.NewKey{Role: auth.Support, Units: auth.Units{IDs: []int64{7}}})
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/console/login", strings.NewReader(url.Values{"credential": {key}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", srv.URL)
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	// stream opens a stream and reads what comes at once: a refusal is written and ended at
	// once; a stream that is served sends nothing until a change or a heartbeat.
	stream := func(c *http.Client, query string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/console/live/stream?"+query, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.Header.Get("Content-Type") != "text/event-stream" {
			return resp.StatusCode, resp.Header.Get("Content-Type")
		}
		if strings.Contains(query, "businessUnitId=7") {
			return resp.StatusCode, "(a stream)"
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := stream(browser, "businessUnitId=42"); code != http.StatusOK || !strings.Contains(body, "event: refused") || !strings.Contains(body, `"status":404`) {
		t.Errorf("unit 42 with a key of unit 7: %d %q, want a refused event (404)", code, body)
	}
	if code, body := stream(browser, "businessUnitId=7"); code != http.StatusOK || body != "(a stream)" {
		t.Errorf("unit 7 with its key: %d %q", code, body)
	}
	stranger := &http.Client{CheckRedirect: browser.CheckRedirect}
	if code, _ := stream(stranger, "businessUnitId=7"); code != http.StatusSeeOther {
		t.Errorf("without a session: %d, want 303 to the sign-in page", code)
	}
}

// Through the console, too, a stream outlives the server's request timeout: the API's handler
// reaches the connection's deadlines through the console's writer.
func TestConsoleLiveStreamOutlivesTheRequestTimeout(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0", HTTPTimeout: 500 * time.Millisecond,
		APILimits: api.Limits{StreamHeartbeat: 200 * time.Millisecond}})
	c := connect(t, "http://"+w.HTTPAddr()+"/console/live/stream?businessUnitId=42", "")
	<-time.After(1500 * time.Millisecond) // three timeouts: a stream still under the server's deadline would be cut by now
	send(t, w, changeEvent(42, 8, "2026-11-22T10:00:00Z"))
	if _, ch := c.next(t); ch.EntityIdentity != "8" {
		t.Fatalf("the stream delivered %+v", ch)
	}
}
