package worker_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/api"
)

var tablesOpts = tables.TimelineOptions{Limit: 1000}

func getJSON(t *testing.T, url string, into any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if into != nil {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

func TestHTTPHistoryIsPagedNewestFirst(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{})
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	send(t, w,
		event(11, 1, 1, attendee, "2026-11-22T10:00:00Z", `{}`),
		event(12, 1, 2, attendee, "2026-11-22T11:00:00Z", `{}`),
		event(12, 1, 2, attendee, "2026-11-22T12:00:00Z", `{}`),
	)
	drain(t, w)

	base := srv.URL + "/v1/history/1/" + strings.ToUpper(attendee)
	var page api.HistoryPage
	if code := getJSON(t, base+"?limit=2", &page); code != 200 {
		t.Fatalf("status %d", code)
	}
	if len(page.Items) != 2 || page.Next == "" ||
		!strings.Contains(page.Items[0].HistoryEventKey, "12:00:00") || !strings.Contains(page.Items[1].HistoryEventKey, "11:00:00") {
		t.Fatalf("first page %+v", page)
	}
	var second api.HistoryPage
	getJSON(t, base+"?limit=2&after="+page.Next, &second)
	if len(second.Items) != 1 || second.Next != "" || !strings.Contains(second.Items[0].HistoryEventKey, "10:00:00") {
		t.Fatalf("second page %+v", second)
	}

	for _, bad := range []string{"/v1/history/0/" + attendee, "/v1/history/1/not-an-id", base[len(srv.URL):] + "?limit=0", base[len(srv.URL):] + "?after=!!!"} {
		var e map[string]string
		if code := getJSON(t, srv.URL+bad, &e); code != 400 || e["error"] == "" {
			t.Errorf("GET %s: %d %v, want 400 with a reason", bad, code, e)
		}
	}
	if code := getJSON(t, srv.URL+"/healthz", nil); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code := getJSON(t, srv.URL+"/readyz", nil); code != 200 {
		t.Errorf("readyz %d", code)
	}
}

// postJSON POSTs body to url, with an Idempotency-Key header when idem is set, and returns the
// status and the answer's body.
func postJSON(t *testing.T, url, body, idem string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestHTTPCreateNotificationJob(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{})
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	post := func(body, idem string) (int, map[string]string) {
		code, b := postJSON(t, srv.URL+"/v1/notification-jobs", body, idem)
		var out map[string]string
		_ = json.Unmarshal(b, &out)
		return code, out
	}
	body := `{"notificationEventTypeId":202,"businessUnitId":42,"eventData":{"resetUrl":"https://example.com/r/1"},"recipients":[{"channel":"email","address":"u@example.com"}]}`
	code, first := post(body, "reset-1")
	if code != http.StatusCreated || first["jobKey"] == "" {
		t.Fatalf("first POST: %d %v", code, first)
	}
	if code, again := post(body, "reset-1"); code != http.StatusOK || again["jobKey"] != first["jobKey"] {
		t.Fatalf("the same Idempotency-Key again: %d %v, want 200 and job %s", code, again, first["jobKey"])
	}
	if code, other := post(body, ""); code != http.StatusCreated || other["jobKey"] == first["jobKey"] {
		t.Fatalf("without a key every POST is a new job: %d %v", code, other)
	}
	if code, e := post(strings.Replace(body, "/r/1", "/r/2", 1), "reset-1"); code != http.StatusConflict || e["error"] == "" {
		t.Fatalf("different content under one key: %d %v, want 409", code, e)
	}
	if code, e := post(`{"notificationEventTypeId":101,"businessUnitId":42}`, ""); code != http.StatusBadRequest || !strings.Contains(e["error"], "derived from events only") {
		t.Fatalf("event-derived type: %d %v, want 400", code, e)
	}
	if code, _ := post(`{"notificationEventTypeId":`, ""); code != http.StatusBadRequest {
		t.Fatalf("broken JSON: %d", code)
	}
}

// storageDown answers 503 to every read of a table whose path contains table, as an
// overloaded storage account would.
type storageDown struct{ table string }

func (f storageDown) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, f.table) {
		return req.Next()
	}
	return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Server Busy", Request: r,
		Header: http.Header{"x-ms-error-code": {"ServerBusy"}}, Body: io.NopCloser(strings.NewReader(`{"odata.error":{"code":"ServerBusy"}}`))}, nil
}

// A storage failure behind the API answers 502 with what failed and a request id, never the
// storage error itself (it names the account, the method and the path); the log line with the
// same id has the detail.
func TestHTTPStorageErrorsDoNotLeakAndCarryARequestID(t *testing.T) {
	t.Parallel()
	log, hook := logtest.NewNullLogger()
	w := newWorker(t, worker.Config{Logger: log,
		Account: storage.Account{Policies: []policy.Policy{storageDown{"EntityHistory"}}, Retry: &policy.RetryOptions{MaxRetries: -1}}})
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/history/1/" + attendee)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var got struct{ Error, RequestID string }
	_ = json.Unmarshal(body, &got)
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusBadGateway || id == "" || got.RequestID != id || got.Error == "" {
		t.Fatalf("%d %s (X-Request-Id %q), want 502 with an error and the request id", resp.StatusCode, body, id)
	}
	rest := strings.Replace(string(body), id, "", 1) // a request id may spell anything
	for _, leak := range []string{"devstoreaccount1", "GET", "EntityHistory", "ServerBusy", "503"} {
		if strings.Contains(rest, leak) {
			t.Errorf("the answer %s shows %q", body, leak)
		}
	}
	var logged bool
	for _, e := range hook.AllEntries() {
		if e.Data["requestId"] == id {
			err, _ := e.Data[logrus.ErrorKey].(error)
			logged = err != nil && strings.Contains(err.Error(), "EntityHistory")
		}
	}
	if !logged {
		t.Errorf("no log line with request id %s and the storage error", id)
	}
}

// /readyz answers anyone, so when storage fails it says only "not ready" and a request id:
// never the account, the table service's path or its error (the log line with the id has them).
func TestReadyzRevealsNothingWhenStorageFails(t *testing.T) {
	t.Parallel()
	log, hook := logtest.NewNullLogger()
	w := newWorker(t, worker.Config{Logger: log,
		Account: storage.Account{Policies: []policy.Policy{storageDown{"/Tables"}}, Retry: &policy.RetryOptions{MaxRetries: -1}}})
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusServiceUnavailable || id == "" {
		t.Fatalf("%d %s, want 503 with a request id", resp.StatusCode, body)
	}
	rest := strings.Replace(string(body), id, "", 1)
	for _, leak := range []string{"devstoreaccount1", "127.0.0.1", "Tables", "table", "ServerBusy", "503"} {
		if strings.Contains(rest, leak) {
			t.Errorf("the answer %s shows %q", body, leak)
		}
	}
	if e := hook.LastEntry(); e == nil || e.Data["requestId"] != id {
		t.Errorf("no log line with request id %s", id)
	}
}
