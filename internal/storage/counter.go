package storage

import (
	"bytes"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// Counter counts the requests sent to the account, by kind ("queue.enqueue", "table.write",
// ...). Every attempt counts, retries included: that is what the account is billed and
// throttled on. Safe for concurrent use.
type Counter struct {
	mu      sync.Mutex
	counts  map[string]int64
	elapsed map[string]time.Duration
}

// Request kinds.
const (
	KindEnqueue      = "queue.enqueue"
	KindDequeue      = "queue.dequeue"       // a dequeue that returned at least one message
	KindDequeueEmpty = "queue.dequeue.empty" // a dequeue that returned none (idle polling)
	KindPeek         = "queue.peek"
	KindUpdate       = "queue.update" // visibility renewal or backoff
	KindDelete       = "queue.delete"
	KindQueueAdmin   = "queue.admin" // create, properties, list
	KindTableRead    = "table.read"
	KindTableWrite   = "table.write"
	KindTableBatch   = "table.batch"
	KindTableAdmin   = "table.admin"
	KindBlob         = "blob"
)

// Snapshot is a copy of the counts so far.
func (c *Counter) Snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

// Elapsed is the time the requests of each kind took so far, summed: from sending the
// request to its response's headers (and the whole body of a dequeue).
func (c *Counter) Elapsed() map[string]time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.elapsed)
}

// Reset sets every count back to zero.
func (c *Counter) Reset() {
	c.mu.Lock()
	c.counts, c.elapsed = nil, nil
	c.mu.Unlock()
}

func (c *Counter) add(kind string, took time.Duration) {
	c.mu.Lock()
	if c.counts == nil {
		c.counts, c.elapsed = map[string]int64{}, map[string]time.Duration{}
	}
	c.counts[kind]++
	c.elapsed[kind] += took
	c.mu.Unlock()
}

// requestPolicy sees every attempt the clients send and tells the Counter and the observer
// (Account.Observe) of it, each by the same kind: classify's, with an empty dequeue told from
// one that brought messages.
type requestPolicy struct {
	service Service
	counter *Counter
	observe func(service Service, kind string, status int, err error)
}

func (p *requestPolicy) Do(req *policy.Request) (*http.Response, error) {
	kind := classify(p.service, req.Raw())
	start := time.Now()
	resp, err := req.Next()
	if kind == KindDequeue && err == nil && resp.StatusCode == http.StatusOK {
		// Idle polling is not work: tell an empty dequeue from one that brought messages.
		// runtime.Payload reads the body azcore has already buffered, without a copy, and leaves
		// it for the client to read again.
		body, rerr := runtime.Payload(resp)
		if rerr == nil && !bytes.Contains(body, []byte("<QueueMessage>")) {
			kind = KindDequeueEmpty
		}
	}
	if p.counter != nil {
		p.counter.add(kind, time.Since(start))
	}
	if p.observe != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		p.observe(p.service, kind, status, err)
	}
	return resp, err
}

func classify(s Service, r *http.Request) string {
	path := r.URL.Path
	switch s {
	case Queue:
		switch {
		case strings.HasSuffix(path, "/messages") && r.Method == http.MethodPost:
			return KindEnqueue
		case strings.HasSuffix(path, "/messages") && r.Method == http.MethodGet:
			if r.URL.Query().Get("peekonly") == "true" {
				return KindPeek
			}
			return KindDequeue
		case strings.Contains(path, "/messages/") && r.Method == http.MethodPut:
			return KindUpdate
		case strings.Contains(path, "/messages/") && r.Method == http.MethodDelete:
			return KindDelete
		}
		return KindQueueAdmin
	case Table:
		switch {
		case strings.HasSuffix(path, "/$batch"):
			return KindTableBatch
		case strings.HasSuffix(path, "/Tables") || strings.Contains(path, "/Tables("):
			return KindTableAdmin
		case r.Method == http.MethodGet:
			return KindTableRead
		}
		return KindTableWrite
	}
	return KindBlob
}
