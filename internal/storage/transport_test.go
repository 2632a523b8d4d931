package storage

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countConns counts the connections a test server accepts.
func countConns(srv *httptest.Server) *atomic.Int32 {
	var n atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

func do(t *testing.T, tr *syncTransport, ctx context.Context, method, url, body string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	}
	resp, err := tr.Do(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b), nil
}

// Requests in turn share one kept connection; an answer sent in chunks arrives whole; a body
// goes out whole.
func TestSyncTransportKeepsConnectionsAndReadsWholeAnswers(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/chunked" {
			for i := range 3 {
				fmt.Fprintf(w, "part%d;", i)
				w.(http.Flusher).Flush()
			}
			return
		}
		fmt.Fprintf(w, "%s %s", r.Method, b)
	}))
	conns := countConns(srv)
	srv.Start()
	defer srv.Close()
	tr := newSyncTransport(http.DefaultClient)
	for i := range 20 {
		resp, got, err := do(t, tr, context.Background(), http.MethodPost, srv.URL+"/echo", fmt.Sprintf("body %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("POST body %d", i); got != want || resp.StatusCode != 200 || resp.ContentLength != int64(len(want)) {
			t.Fatalf("answer %d: %d %q (length %d), want %q", i, resp.StatusCode, got, resp.ContentLength, want)
		}
	}
	if _, got, err := do(t, tr, context.Background(), http.MethodGet, srv.URL+"/chunked", ""); err != nil || got != "part0;part1;part2;" {
		t.Fatalf("chunked answer %q, %v", got, err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 21 requests in turn, want 1", n)
	}
}

// A kept connection the server closed while it was idle is replaced, and the request (its body
// too) is sent again on the new one.
func TestSyncTransportReplacesAConnectionClosedWhileIdle(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s", b)
	}))
	srv.Config.IdleTimeout = 50 * time.Millisecond
	conns := countConns(srv)
	srv.Start()
	defer srv.Close()
	tr := newSyncTransport(http.DefaultClient)
	if _, got, err := do(t, tr, context.Background(), http.MethodPut, srv.URL, "first"); err != nil || got != "first" {
		t.Fatalf("%q, %v", got, err)
	}
	// Two kept connections, both closed by the server while idle: the retry dials rather than
	// take the other.
	first, second := newSyncConnPair(t, tr, srv.URL)
	tr.mu.Lock()
	key := "http://" + strings.TrimPrefix(srv.URL, "http://")
	tr.idle[key] = append(tr.idle[key], first, second)
	tr.mu.Unlock()
	time.Sleep(200 * time.Millisecond) // the server closes the idle connections
	if _, got, err := do(t, tr, context.Background(), http.MethodPut, srv.URL, "second"); err != nil || got != "second" {
		t.Fatalf("after the server closed the idle connections: %q, %v", got, err)
	}
	if n := conns.Load(); n != 4 {
		t.Fatalf("%d connections, want 4: the first, two closed while idle, a new one", n)
	}
}

// A body the transport does not know to be in memory (azcore's), on a kept connection the
// server closed while it was idle: net/http would write its headers, then its body into a
// connection already reset, and call the broken pipe an error reading the body. It goes out
// whole on a new connection: in one write (a body up to maxInlineBody) or streamed (a larger
// table batch).
func TestSyncTransportResendsABodyOnAConnectionClosedWhileIdle(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d:%s", len(b), b[:min(len(b), 8)])
	}))
	srv.Config.IdleTimeout = 50 * time.Millisecond
	srv.Start()
	defer srv.Close()
	tr := newSyncTransport(http.DefaultClient)
	for _, size := range []int{42000, maxInlineBody + 500000} {
		body := strings.Repeat("entity;", size/7)
		send := func() (string, error) {
			req, err := http.NewRequest(http.MethodPost, srv.URL, opaqueBody{strings.NewReader(body)})
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = int64(len(body))
			req.GetBody = func() (io.ReadCloser, error) { return opaqueBody{strings.NewReader(body)}, nil }
			resp, err := tr.Do(req)
			if err != nil {
				return "", err
			}
			b, _ := io.ReadAll(resp.Body)
			return string(b), nil
		}
		want := fmt.Sprintf("%d:entity;e", len(body))
		for i := range 3 {
			if got, err := send(); err != nil || got != want {
				t.Fatalf("%d bytes, request %d: %q, %v; want %q", len(body), i, got, err, want)
			}
			time.Sleep(200 * time.Millisecond) // the server closes the kept connection
		}
	}
}

// opaqueBody is a request body net/http does not know to be in memory.
type opaqueBody struct{ io.Reader }

func (opaqueBody) Close() error { return nil }

// newSyncConnPair opens two connections to url the way the transport does, each used once.
func newSyncConnPair(t *testing.T, tr *syncTransport, url string) (*syncConn, *syncConn) {
	t.Helper()
	key := "http://" + strings.TrimPrefix(url, "http://")
	var out [2]*syncConn
	for i := range out {
		c, _, err := tr.conn(context.Background(), key, "http", strings.TrimPrefix(url, "http://"), false)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if _, _, err := roundTrip(req, c); err != nil {
			t.Fatal(err)
		}
		c.used = time.Now()
		out[i] = c
	}
	return out[0], out[1]
}

// A cancelled request returns at once with the context's error, and its connection is not kept.
func TestSyncTransportCancelEndsTheExchange(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		fmt.Fprint(w, "ok")
	}))
	conns := countConns(srv)
	srv.Start()
	defer srv.Close()
	defer close(release)
	tr := newSyncTransport(http.DefaultClient)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	began := time.Now()
	_, _, err := do(t, tr, ctx, http.MethodGet, srv.URL+"/slow", "")
	if !errors.Is(err, context.Canceled) || time.Since(began) > 2*time.Second {
		t.Fatalf("cancelled request: %v after %s, want context.Canceled at once", err, time.Since(began))
	}
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := do(t, tr, ctx, http.MethodGet, srv.URL+"/slow", ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request past its deadline: %v, want context.DeadlineExceeded", err)
	}
	if _, got, err := do(t, tr, context.Background(), http.MethodGet, srv.URL+"/fast", ""); err != nil || got != "ok" {
		t.Fatalf("after the cancels: %q, %v", got, err)
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3: a cancelled exchange's connection is not kept", n)
	}
}

// HTTPS: the server is verified, the connection kept.
func TestSyncTransportSpeaksTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.TLS != nil)
	}))
	conns := countConns(srv)
	srv.StartTLS()
	defer srv.Close()
	tr := newSyncTransport(http.DefaultClient)
	if _, _, err := do(t, tr, context.Background(), http.MethodGet, srv.URL, ""); err == nil {
		t.Fatal("a server whose certificate no root vouches for was accepted")
	}
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	tr.tls.RootCAs = roots
	for range 3 {
		if _, got, err := do(t, tr, context.Background(), http.MethodGet, srv.URL, ""); err != nil || got != "true" {
			t.Fatalf("%q, %v", got, err)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: the refused one and one kept for three requests", n)
	}
}
