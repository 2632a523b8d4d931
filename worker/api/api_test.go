package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"
)

// A handler that panics answers 500 with a request id, not a dropped connection, and what it
// panicked with stays in the log line with that id.
func TestAPanickingHandlerAnswers500WithARequestID(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	h := (&server{Deps: Deps{Log: log}}).withRequestID(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("index out of range: secret detail")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/trace?key=1:2:3:4", nil))
	var body struct{ Error, RequestID string }
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	id := rec.Header().Get(requestIDHeader)
	if rec.Code != http.StatusInternalServerError || id == "" || body.RequestID != id || strings.Contains(rec.Body.String(), "secret") {
		t.Fatalf("%d %s (request id %q), want 500 with the request id and no detail", rec.Code, rec.Body, id)
	}
	e := hook.LastEntry()
	if e == nil || e.Data["requestId"] != id || !strings.Contains(e.Data["error"].(error).Error(), "secret detail") {
		t.Fatalf("log entry %+v, want the panic with request id %s", e, id)
	}
}
