package realtime

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
)

// slowBatches holds the next change-bus transactions for a while before they are sent.
type slowBatches struct{ n atomic.Int32 }

func (s *slowBatches) Do(req *policy.Request) (*http.Response, error) {
	if strings.HasSuffix(req.Raw().URL.Path, "/$batch") && s.n.Add(-1) >= 0 {
		time.Sleep(2 * time.Second)
	}
	return req.Next()
}

// A change whose transaction takes longer than Lateness less a poll is written again under a new
// id (committed later, no other replica's sweep would read it), and after lateAttempts its
// handler fails (the event is retried).
func TestAChangeNotCommittedInTimeFailsItsEvent(t *testing.T) {
	t.Parallel()
	slow := &slowBatches{}
	tc, err := tables.New(storage.Account{Policies: []policy.Policy{slow}}, testenv.Namespace(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.CreateTables(context.Background(), tables.TableChanges); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Lateness: 2 * time.Second, PollInterval: time.Second}, tc.Changes(), logrus.New())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Writer().Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Writer().Stop(context.Background())
	ev, err := platform.DecodeEvent([]byte(`{"eventTypeId":12,"entityTypeId":1,"actionTypeId":2,"entityId":7,"businessUnitId":42,"createdOn":"2026-11-22T10:00:00Z","changedFields":["a"]}`))
	if err != nil {
		t.Fatal(err)
	}
	// One slow transaction: the change is written again under a new id, and the handler succeeds.
	slow.n.Store(1)
	if err := s.Process(ctx, ev); err != nil {
		t.Fatalf("one transaction too slow: %v, want the change written again", err)
	}
	// Every attempt slow: the handler fails, and its event is retried.
	slow.n.Store(lateAttempts)
	if err := s.Process(ctx, ev); err == nil || !strings.Contains(err.Error(), "not committed within 1s") {
		t.Fatalf("a change committed 2 s after its id, %d times, with Lateness 2s and a 1 s poll: %v, want the handler to fail", lateAttempts, err)
	}
	if n := slow.n.Load(); n > 0 {
		t.Fatalf("%d slow transactions left: Process wrote fewer than %d times", n, lateAttempts)
	}
}
