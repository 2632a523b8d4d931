package storage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// syncTransport sends a request and reads its whole answer on the caller's goroutine, over
// HTTP/1.1 connections it keeps alive. net/http's Transport hands each request to a writer
// goroutine of its connection and the answer back from a reader goroutine: two handoffs and
// their scheduler wake-ups per request, which were a third of the worker's CPU on storage calls.
// Queue and table answers are small and the SDK reads them whole anyway; blob downloads keep
// net/http's streaming (ClientOptions).
//
// A request through a proxy (HTTP(S)_PROXY) goes to net/http, which knows proxies. When a kept
// connection ends before a byte of an answer comes (the service closed it while it was idle),
// the request is sent once more, at once, on a new connection. Unlike net/http, which resends
// only what it had not written or what is idempotent, this resends any request: the service
// may have read one that the connection then lost, as with any lost answer, which the SDK's
// retry policy resends anyway, and every write here is keyed or conditional (an enqueue twice
// is a duplicate message, which every handler tolerates). The resend is not seen by the
// pipeline's policies (the request counter, fault injection). Any other failure is the
// caller's.
type syncTransport struct {
	fallback *http.Client
	dialer   net.Dialer
	tls      *tls.Config

	mu   sync.Mutex
	idle map[string][]*syncConn // by scheme and host, most recently used last
}

// syncConn is one kept-alive connection.
type syncConn struct {
	net.Conn
	key  string // scheme and host, as asked for: its idle list
	br   *bufio.Reader
	bw   *bufio.Writer // writes to wire
	wire *wireWriter
	used time.Time
}

const (
	syncMaxIdlePerHost = 256              // as httpClient's MaxIdleConnsPerHost
	syncIdleTimeout    = 30 * time.Second // a connection idle longer is closed, not reused
	maxInlineBody      = 1 << 20          // a request body up to this is written with its headers
	maxPooledBuffer    = 256 << 10        // a larger inline buffer is left to the collector
)

func newSyncTransport(fallback *http.Client) *syncTransport {
	return &syncTransport{fallback: fallback, dialer: net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second},
		tls: &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}, idle: map[string][]*syncConn{}}
}

// Do implements azcore's policy.Transporter.
func (t *syncTransport) Do(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return t.fallback.Do(req)
	}
	if p, err := http.ProxyFromEnvironment(req); err != nil || p != nil {
		return t.fallback.Do(req)
	}
	key := req.URL.Scheme + "://" + canonicalHost(req.URL.Scheme, req.URL.Host)
	for attempt := 0; ; attempt++ {
		// A second attempt dials: the other kept connections may have been closed with the first.
		c, reused, err := t.conn(req.Context(), key, req.URL.Scheme, req.URL.Host, attempt == 0)
		if err != nil {
			return nil, err
		}
		resp, unanswered, err := t.exchange(req, c)
		if err == nil {
			return resp, nil
		}
		c.Close()
		if !reused || attempt > 0 || !unanswered || !rewind(req) {
			return nil, err
		}
	}
}

// exchange writes req on c and reads the whole answer; c goes back to the idle list unless
// either side asked to close it, and on an error it is the caller's to close. unanswered: the
// connection ended before a byte of an answer came (the service closed it while it was idle).
func (t *syncTransport) exchange(req *http.Request, c *syncConn) (resp *http.Response, unanswered bool, err error) {
	ctx := req.Context()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	// A cancel (a stop cut short) unblocks the exchange by expiring the connection's deadline.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	resp, unanswered, err = roundTrip(req, c)
	if !stop() || err != nil {
		if err == nil {
			c.Close() // the deadline fired: the connection is not fit to keep
		}
		return resp, unanswered, ctxErr(ctx, err)
	}
	if resp.Close || req.Close {
		c.Close()
		return resp, false, nil
	}
	_ = c.SetDeadline(time.Time{})
	c.used = time.Now()
	var stale []*syncConn
	key := c.key
	t.mu.Lock()
	list := t.idle[key]
	for len(list) > 0 && time.Since(list[0].used) >= syncIdleTimeout { // the least recently used first
		stale, list = append(stale, list[0]), list[1:]
	}
	if len(list) < syncMaxIdlePerHost {
		list, c = append(list, c), nil
	}
	t.idle[key] = list
	t.mu.Unlock()
	for _, old := range stale {
		old.Close()
	}
	if c != nil {
		c.Close()
	}
	return resp, false, nil
}

func roundTrip(req *http.Request, c *syncConn) (*http.Response, bool, error) {
	if onWire, err := writeRequest(req, c); err != nil {
		// A write that fails because the service had closed the connection (a reset, a broken
		// pipe) is as unanswered as a read that finds it closed.
		return nil, onWire && closedWhileIdle(err), err
	}
	if _, err := c.br.Peek(1); err != nil {
		return nil, closedWhileIdle(err), err
	}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		return nil, false, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, false, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, false, nil
}

// writeRequest writes req on c: in one write when its length is known and at most
// maxInlineBody, as every queue request and table request but a large batch is. net/http
// would write the headers, then a body it does not know to be in memory (azcore's is not) in
// a second write, and report that write's failure on a connection the service had closed as an
// error reading the body. onWire: err is the connection's, not the request's.
func writeRequest(req *http.Request, c *syncConn) (onWire bool, err error) {
	if req.ContentLength < 0 || req.ContentLength > maxInlineBody || (req.ContentLength == 0 && req.Body != nil && req.Body != http.NoBody) {
		c.wire.err = nil
		if err = req.Write(c.bw); err == nil {
			err = c.bw.Flush()
		}
		if c.wire.err != nil {
			return true, c.wire.err
		}
		return false, err
	}
	buf := inlineBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			buf.Reset()
			inlineBuffers.Put(buf)
		}
	}()
	if err := req.Write(buf); err != nil {
		return false, err
	}
	_, err = c.Write(buf.Bytes())
	return true, err
}

// wireWriter is a connection as its write buffer sees it: it keeps the error of the last
// write that failed, which net/http may report as an error of the body it was copying.
type wireWriter struct {
	net.Conn
	err error
}

func (w *wireWriter) Write(p []byte) (int, error) {
	n, err := w.Conn.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

var inlineBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// conn is a kept connection to host (when keep), or a new one (reused false).
func (t *syncTransport) conn(ctx context.Context, key, scheme, host string, keep bool) (*syncConn, bool, error) {
	t.mu.Lock()
	for list := t.idle[key]; keep && len(list) > 0; list = t.idle[key] {
		c := list[len(list)-1]
		t.idle[key] = list[:len(list)-1]
		if time.Since(c.used) < syncIdleTimeout {
			t.mu.Unlock()
			return c, true, nil
		}
		go c.Close() // idle too long: the service may be closing it as we speak
	}
	t.mu.Unlock()
	addr := canonicalHost(scheme, host)
	raw, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	conn := raw
	if scheme == "https" {
		cfg := t.tls.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, false, err
		}
		conn = tc
	}
	wire := &wireWriter{Conn: conn}
	return &syncConn{Conn: conn, key: key, br: bufio.NewReaderSize(conn, 16<<10), bw: bufio.NewWriterSize(wire, 16<<10), wire: wire, used: time.Now()}, false, nil
}

// canonicalHost is host with its port, the scheme's default when it has none.
func canonicalHost(scheme, host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "https" {
		return net.JoinHostPort(host, "443")
	}
	return net.JoinHostPort(host, "80")
}

// closedWhileIdle tells a connection that the other side had closed: on a kept connection
// before a byte of an answer came, the service closed it while it was idle, before it read the
// request.
func closedWhileIdle(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// rewind makes req's body readable again from its start, for a second send.
func rewind(req *http.Request) bool {
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	if req.GetBody == nil {
		return false
	}
	body, err := req.GetBody()
	if err != nil {
		return false
	}
	req.Body = body
	return true
}

// ctxErr is the context's error when it ended the exchange, else err. The connection's
// deadline is the context's, and may fire a moment before the context says it is done.
func ctxErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	if d, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Add(10*time.Millisecond).Before(d) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}
