package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
)

// apiError is the API's refusal of a request the console made for its principal: its status
// and its own words (a 5xx says only what failed; the detail is in the log under RequestID).
type apiError struct {
	Status    int
	Message   string
	RequestID string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Message) }

// call serves one API request in process, as s's principal: it carries the session's
// credential, and the browser's address, Host, Origin and Sec-Fetch-Site, so the API's guard
// authenticates, authorizes, scopes and audits it exactly as a request of the principal's own.
// body, when not nil, is sent as JSON; a 2xx answer is decoded into out (when not nil). Any
// other answer is an *apiError.
func (c *console) call(r *http.Request, s *session, method, target string, body, out any) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := apiRequest(r, s, method, target, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}}
	c.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status < 200 || rec.status > 299 {
		var e struct {
			Error     string `json:"error"`
			RequestID string `json:"requestId"`
		}
		_ = json.Unmarshal(rec.body.Bytes(), &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(rec.body.String())
		}
		return &apiError{Status: rec.status, Message: e.Error, RequestID: e.RequestID}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("%s %s: decode the API's answer: %w", method, req.URL.Path, err)
	}
	return nil
}

// apiRequest is a request to the API, in process, on behalf of r's principal: the session's
// credential, and r's address, Host, Origin, Sec-Fetch-Site and User-Agent.
func apiRequest(r *http.Request, s *session, method, target string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(r.Context(), method, target, body)
	if err != nil {
		return nil, err
	}
	// A page builds target from what the user gave (a key, an address): escaped, it stays in
	// its path segment or query value. Anything that would reach another route is a bug.
	if !strings.HasPrefix(req.URL.Path, "/v1/") || path.Clean(req.URL.Path) != req.URL.Path || req.URL.Host != "" {
		return nil, fmt.Errorf("console: API target %q is not a clean /v1/ path", target)
	}
	req.Host, req.RemoteAddr = r.Host, r.RemoteAddr
	for _, h := range []string{"Origin", "Sec-Fetch-Site", "User-Agent"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	if s.credential != "" {
		req.Header.Set("Authorization", "Bearer "+s.credential)
	}
	return req, nil
}

// recorder is the response of an in-process API request.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }
func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}
