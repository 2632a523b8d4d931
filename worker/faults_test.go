package worker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/worker/notify"
)

// replyLost lets the first request that matches reach the service, then loses its reply:
// the retry policy sends it again, and the retry meets the effect of the first.
type replyLost struct {
	method, path, body string // what the request must have (substrings)
	fired              atomic.Bool
}

func (f *replyLost) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if f.fired.Load() || r.Method != f.method || !strings.Contains(r.URL.Path, f.path) {
		return req.Next()
	}
	if f.body != "" {
		if req.Body() == nil {
			return req.Next()
		}
		b, _ := io.ReadAll(req.Body())
		if err := req.RewindBody(); err != nil {
			return nil, err
		}
		if !strings.Contains(string(b), f.body) {
			return req.Next()
		}
	}
	if !f.fired.CompareAndSwap(false, true) {
		return req.Next()
	}
	resp, err := req.Next()
	if err == nil {
		resp.Body.Close()
		err = errors.New("injected: connection reset after the request was sent")
	}
	return nil, err
}

// A claim (Pending → Sending) whose reply is lost is retried, and the retry gets 412: the
// row's ETag is the one the claim itself wrote. The distributor must recognise its own claim,
// not take it for another distributor's and walk away from a message nobody will send.
func TestClaimWhoseReplyIsLostStillSends(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 201, true, "email", 0))
	fault := &replyLost{method: http.MethodPatch, path: "OutgoingMessages(", body: `"State":"Sending"`}
	cfg := env.config()
	cfg.Account = storage.Account{Policies: []policy.Policy{fault}, Retry: &policy.RetryOptions{RetryDelay: 10e6}}
	w := env.start(cfg)
	job, _, err := w.Notify().CreateJob(context.Background(), notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42,
		Recipients: []platform.Recipient{{Channel: "email", Address: "claimed@example.com"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	drain(t, w)
	if !fault.fired.Load() {
		t.Fatal("the fault was never injected")
	}
	m := trace(t, w, job.Key).Jobs[0].Messages
	if len(m) != 1 || m[0].State != platform.MessageSent || len(env.smtp.Mails()) != 1 {
		t.Fatalf("%d messages (first %s) and %d mails, want one Sent and one mail", len(m), m[0].State, len(env.smtp.Mails()))
	}
}
