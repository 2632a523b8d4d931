package worker_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform/auth"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/api"
)

// Job creation is rate limited per principal: past the burst, 429 with a Retry-After, while
// another principal is still served.
func TestJobCreationIsRateLimitedPerPrincipal(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0", Auth: auth.Config{Mode: auth.ModeKeys},
		APILimits: api.Limits{JobsPerSecond: 1}}) // a burst of 2, then one a second
	ctx := context.Background()
	newKey := func() string {
		k, _, err := w.Keys().Create(ctx, auth.NewKey{Role: auth.NotificationsSend, Units: auth.Units{IDs: []int64{42}}})
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + k
	}
	a, b := newKey(), newKey()
	body := `{"notificationEventTypeId":202,"businessUnitId":42,"eventData":{"resetUrl":"https://example.com/r/1"}}`
	post := func(key string) (int, http.Header) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+w.HTTPAddr()+"/v1/notification-jobs", strings.NewReader(body))
		req.Header.Set("Authorization", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	var codes []int
	var limited http.Header
	for range 4 {
		code, h := post(a)
		codes = append(codes, code)
		if code == http.StatusTooManyRequests {
			limited = h
		}
	}
	if codes[0] != 201 || codes[1] != 201 || codes[3] != http.StatusTooManyRequests {
		t.Fatalf("4 jobs at once at 1/s (burst 2): %v, want 201 201 … 429", codes)
	}
	if s, err := strconv.Atoi(limited.Get("Retry-After")); err != nil || s < 1 || s > 2 {
		t.Fatalf("Retry-After %q, want 1-2 seconds", limited.Get("Retry-After"))
	}
	if code, _ := post(b); code != 201 {
		t.Fatalf("another principal: %d, want 201 (limits are per principal)", code)
	}
}

// A principal holds at most StreamsPerPrincipal change streams; a stream outlives the
// server's request timeout while a request that does not finish sending its body within it is
// cut off.
func TestStreamsAreCappedAndOutliveTheRequestTimeout(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0", HTTPTimeout: time.Second,
		APILimits: api.Limits{StreamsPerPrincipal: 2, StreamHeartbeat: 300 * time.Millisecond}})
	url := "http://" + w.HTTPAddr() + "/v1/changes"
	s1, _ := connect(t, url, ""), connect(t, url, "")
	if code, body := call(t, "GET", url, "", ""); code != http.StatusTooManyRequests || !strings.Contains(body, "2 change streams") {
		t.Fatalf("a third stream: %d %s, want 429", code, body)
	}

	// A body trickled slower than the timeout allows is cut off.
	conn, err := net.Dial("tcp", w.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/notification-jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	cut := make(chan error, 1)
	go func() {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 512)
		for {
			if _, err := conn.Read(buf); err != nil {
				cut <- err
				return
			}
		}
	}()
	select {
	case <-cut:
	case <-time.After(5 * time.Second):
		t.Fatal("a request whose body never arrives is still open after 5 s (timeout 1 s)")
	}

	// Meanwhile the stream, past the timeout three times over, is alive: it still delivers.
	time.Sleep(2 * time.Second)
	send(t, w, changeEvent(42, 7, "2026-11-22T10:00:00Z"))
	if _, ch := s1.next(t); ch.BusinessUnitID != 42 {
		t.Fatalf("the stream delivered %+v", ch)
	}
}
