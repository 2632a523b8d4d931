package storage

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

func TestConnectionStringDefaults(t *testing.T) {
	for _, cs := range []string{"", "  ", "UseDevelopmentStorage=true", "UseDevelopmentStorage=true;", "usedevelopmentstorage=TRUE"} {
		if got := (Account{ConnectionString: cs}).ResolvedConnectionString(); got != DevelopmentConnectionString {
			t.Errorf("%q resolved to %q", cs, got)
		}
	}
	own := "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net"
	if got := (Account{ConnectionString: own}).ResolvedConnectionString(); got != own {
		t.Errorf("an explicit connection string was changed: %q", got)
	}
}

func TestRedactedNeverShowsSecrets(t *testing.T) {
	cs := "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=c2VjcmV0;SharedAccessSignature=sv=2020&sig=abc;EndpointSuffix=core.windows.net"
	got := Redacted(cs)
	if strings.Contains(got, "c2VjcmV0") || strings.Contains(got, "sig=abc") || !strings.Contains(got, "AccountName=prod") {
		t.Fatalf("redacted: %q", got)
	}
}

// The counter classifies each request, tells an empty dequeue from a full one, and sums the
// time each kind took, against a real HTTP server that answers slowly; the observer sees each
// request by the same kind, with its status.
func TestCounterCountsAndTimesRequestsByKind(t *testing.T) {
	const delay = 20 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if r.Method == http.MethodGet && r.URL.Query().Get("full") == "1" {
			io.WriteString(w, "<QueueMessagesList><QueueMessage><MessageId>1</MessageId></QueueMessage></QueueMessagesList>")
			return
		}
		io.WriteString(w, "<QueueMessagesList></QueueMessagesList>")
	}))
	defer srv.Close()
	c := &Counter{}
	var observed []string
	acct := Account{Counter: c, Observe: func(s Service, kind string, status int, err error) {
		observed = append(observed, fmt.Sprintf("%s %s %d %v", s, kind, status, err))
	}}
	pl := runtime.NewPipeline("test", "v0", runtime.PipelineOptions{}, &policy.ClientOptions{
		PerRetryPolicies: []policy.Policy{acct.requestPolicy(Queue)}, Retry: policy.RetryOptions{MaxRetries: -1}})
	for _, target := range []struct{ method, path string }{
		{http.MethodGet, "/q/messages?full=1"}, {http.MethodGet, "/q/messages"}, {http.MethodGet, "/q/messages"},
		{http.MethodPost, "/q/messages"}, {http.MethodDelete, "/q/messages/1?popreceipt=x"},
	} {
		req, err := runtime.NewRequest(context.Background(), target.method, srv.URL+target.path)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := pl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	want := map[string]int64{KindDequeue: 1, KindDequeueEmpty: 2, KindEnqueue: 1, KindDelete: 1}
	if got := c.Snapshot(); !maps.Equal(got, want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
	// No answer at all: status 0 and the transport's error.
	req, err := runtime.NewRequest(context.Background(), http.MethodPost, "http://127.0.0.1:1/q/messages")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pl.Do(req); err == nil {
		t.Fatal("a request to a closed port succeeded")
	}
	if last := observed[len(observed)-1]; !strings.HasPrefix(last, "queue queue.enqueue 0 ") || strings.HasSuffix(last, "<nil>") {
		t.Fatalf("a request without an answer observed as %q", last)
	}
	observed = observed[:len(observed)-1]
	wantObserved := []string{"queue queue.dequeue 200 <nil>", "queue queue.dequeue.empty 200 <nil>", "queue queue.dequeue.empty 200 <nil>",
		"queue queue.enqueue 200 <nil>", "queue queue.delete 404 <nil>"}
	if !slices.Equal(observed, wantObserved) {
		t.Fatalf("observed %q, want %q", observed, wantObserved)
	}
	for kind, n := range want {
		if got := c.Elapsed()[kind]; got < time.Duration(n)*delay {
			t.Errorf("%s took %s in all, want at least %s", kind, got, time.Duration(n)*delay)
		}
	}
	c.Reset()
	if len(c.Snapshot()) != 0 || len(c.Elapsed()) != 0 {
		t.Fatalf("after Reset: %v, %v", c.Snapshot(), c.Elapsed())
	}
}
