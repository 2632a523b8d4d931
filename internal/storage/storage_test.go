package storage

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
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
// time each kind took, against a real HTTP server that answers slowly.
func TestCounterCountsAndTimesRequestsByKind(t *testing.T) {
	const delay = 20 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		if r.Method == http.MethodGet && r.URL.Query().Get("full") == "1" {
			io.WriteString(w, "<QueueMessagesList><QueueMessage><MessageId>1</MessageId></QueueMessage></QueueMessagesList>")
			return
		}
		io.WriteString(w, "<QueueMessagesList></QueueMessagesList>")
	}))
	defer srv.Close()
	c := &Counter{}
	pl := runtime.NewPipeline("test", "v0", runtime.PipelineOptions{}, &policy.ClientOptions{PerRetryPolicies: []policy.Policy{c.policy(Queue)}})
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
