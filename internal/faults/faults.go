// Package faults injects storage failures into the azcore pipeline, for tests and the chaos
// build (go build -tags chaos) only: the worker's normal build does not link it.
//
// An Injector sits after the retry policy, so it sees every attempt, and fails a share of
// them in one of the ways Azure Storage fails:
//
//   - 503 Server Busy or 500 Internal Error before the request reaches the service;
//   - a timeout before the request reaches the service;
//   - the reply is lost: the request reached the service and took effect, then the client
//     saw a reset connection (or a 500 the service sent after doing the work). The retry
//     policy sends it again, so an insert meets its own row (409), an ETag update its own
//     new ETag (412), an enqueue enqueues twice and a delete finds nothing (404).
package faults

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Kind is one way a request fails.
type Kind int

const (
	Busy      Kind = iota // 503, nothing done
	Internal              // 500, nothing done
	Timeout               // no answer, nothing done
	ReplyLost             // done, then the connection reset
	LateError             // done, then a 500
	kinds
)

var kindNames = [kinds]string{"503", "500", "timeout", "reply-lost", "500-after-success"}

func (k Kind) String() string { return kindNames[k] }

// errReset stands for a connection that died after the request was sent.
var errReset = errors.New("injected fault: connection reset after the request was sent")

// errTimeout stands for a request that got no answer in time; it is a net.Error timeout.
type errTimeout struct{}

func (errTimeout) Error() string   { return "injected fault: i/o timeout" }
func (errTimeout) Timeout() bool   { return true }
func (errTimeout) Temporary() bool { return true }

// Injector fails a share of the requests it sees, each in a kind drawn evenly from its kinds.
type Injector struct {
	rate  float64
	kinds []Kind

	mu  sync.Mutex
	rng *rand.Rand

	counts [kinds]atomic.Int64
	seen   atomic.Int64
}

// New returns an injector failing rate (0 to 1) of the requests, drawn from seed, in the given
// kinds (default: all).
func New(rate float64, seed uint64, only ...Kind) (*Injector, error) {
	if rate < 0 || rate > 1 {
		return nil, fmt.Errorf("fault rate %v: want 0 to 1", rate)
	}
	if len(only) == 0 {
		for k := range kinds {
			only = append(only, k)
		}
	}
	return &Injector{rate: rate, kinds: only, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}, nil
}

func (i *Injector) draw() (Kind, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.rng.Float64() >= i.rate {
		return 0, false
	}
	return i.kinds[i.rng.IntN(len(i.kinds))], true
}

// Do implements policy.Policy.
func (i *Injector) Do(req *policy.Request) (*http.Response, error) {
	i.seen.Add(1)
	k, fail := i.draw()
	if !fail {
		return req.Next()
	}
	i.counts[k].Add(1)
	switch k {
	case Busy:
		return synthetic(req.Raw(), http.StatusServiceUnavailable, "ServerBusy"), nil
	case Internal:
		return synthetic(req.Raw(), http.StatusInternalServerError, "InternalError"), nil
	case Timeout:
		select {
		case <-time.After(50 * time.Millisecond):
		case <-req.Raw().Context().Done():
			return nil, req.Raw().Context().Err()
		}
		return nil, errTimeout{}
	}
	resp, err := req.Next()
	if err != nil {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if k == ReplyLost {
		return nil, errReset
	}
	return synthetic(req.Raw(), http.StatusInternalServerError, "OperationTimedOut"), nil
}

// Counts is how many requests were seen and how many failed, by kind.
func (i *Injector) Counts() (seen int64, failed map[string]int64) {
	failed = map[string]int64{}
	for k := range kinds {
		if n := i.counts[k].Load(); n > 0 {
			failed[k.String()] = n
		}
	}
	return i.seen.Load(), failed
}

func synthetic(req *http.Request, status int, code string) *http.Response {
	body := fmt.Sprintf(`{"odata.error":{"code":%q,"message":{"lang":"en-US","value":"injected fault"}}}`, code)
	h := http.Header{}
	h.Set("x-ms-error-code", code)
	h.Set("Content-Type", "application/json")
	return &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), Header: h,
		Body: io.NopCloser(bytes.NewBufferString(body)), ContentLength: int64(len(body)), Request: req,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
}
