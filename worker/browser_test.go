package worker_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform/worker"
)

// Without authentication the API serves requests without credentials on loopback, for a
// developer's tools on the machine; not for a web page that the developer's browser is
// showing. A page of another site posting to 127.0.0.1 (a "simple" cross-origin request, no
// preflight) or reaching it under its own name (DNS rebinding) is refused, before any work.
func TestAnonymousAPIRefusesWebPagesOfOtherSites(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0"})
	_, port, _ := strings.Cut(w.HTTPAddr(), ":")
	job := `{"notificationEventTypeId":202,"businessUnitId":1,"eventData":{"resetUrl":"https://example.com/r/1"}}`
	do := func(method, path, host string, h map[string]string, body string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, "http://"+w.HTTPAddr()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	crossSite := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}
	rebound := map[string]string{"Origin": "http://evil.example:" + port, "Sec-Fetch-Site": "same-origin"}
	for _, c := range []struct {
		name, method, path, host string
		h                        map[string]string
		body                     string
	}{
		{"a cross-site form post of a job", "POST", "/v1/notification-jobs", "127.0.0.1:" + port, crossSite, job},
		{"a cross-site post of a webhook", "POST", "/v1/webhooks", "localhost:" + port, crossSite, `{"url":"https://93.184.215.14/h","businessUnitId":1,"eventTypes":[12]}`},
		{"a rebound page posting a job", "POST", "/v1/notification-jobs", "evil.example:" + port, rebound, job},
		{"a rebound page reading webhooks", "GET", "/v1/webhooks", "evil.example:" + port, map[string]string{"Sec-Fetch-Site": "same-origin"}, ""},
		{"a rebound page reading a timeline", "GET", "/v1/history/1/501", "evil.example:" + port, nil, ""},
	} {
		if code, body := do(c.method, c.path, c.host, c.h, c.body); code != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", c.name, code, body)
		}
	}
	// The developer's own tools: no Origin, a loopback Host, by address or by name.
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port} {
		if code, body := do("POST", "/v1/notification-jobs", host, map[string]string{"Content-Type": "application/json"}, job); code != http.StatusCreated {
			t.Errorf("a local tool (Host %s): %d %s, want 201", host, code, body)
		}
	}
	if code, body := do("GET", "/healthz", "evil.example:"+port, nil, ""); code != http.StatusOK {
		t.Errorf("/healthz under another name: %d %s, want 200 (public)", code, body)
	}
}
