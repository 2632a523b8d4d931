package queues_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
)

// putPoison writes a poison record of work for each body, as the consumer would.
func putPoison(t *testing.T, c *queues.Client, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		rec, _ := json.Marshal(queues.PoisonRecord{Reason: "no handler", Queue: work, Attempts: 1, Body: b})
		if err := c.Enqueue(context.Background(), platform.PoisonQueue(work), string(rec), 0); err != nil {
			t.Fatal(err)
		}
	}
}

// serviceAhead shows the client a storage service whose clock is ahead of this machine's: the
// insertion times and the Date of every poison dequeue answer are moved by ahead.
type serviceAhead struct{ ahead time.Duration }

var insertionTime = regexp.MustCompile(`<InsertionTime>([^<]*)</InsertionTime>`)

func (s serviceAhead) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	r := req.Raw()
	if err != nil || r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, platform.PoisonSuffix+"/messages") {
		return resp, err
	}
	later := func(v string) string {
		t, err := http.ParseTime(v)
		if err != nil {
			return v
		}
		return t.Add(s.ahead).UTC().Format(http.TimeFormat)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	body = insertionTime.ReplaceAllFunc(body, func(m []byte) []byte {
		return []byte("<InsertionTime>" + later(string(insertionTime.FindSubmatch(m)[1])) + "</InsertionTime>")
	})
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Set("Date", later(resp.Header.Get("Date")))
	return resp, nil
}

// This machine's clock an hour behind the service's: every poison message was inserted "after"
// Redrive started by the local clock, yet all are moved, because Redrive compares the service's
// insertion times with the service's own time.
func TestRedriveMovesPoisonWhenThisClockIsBehindTheService(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	plain, err := queues.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	skewed, err := queues.New(storage.Account{Policies: []policy.Policy{serviceAhead{time.Hour}}}, ns)
	if err != nil {
		t.Fatal(err)
	}
	putPoison(t, plain, "one", "two")
	n, err := skewed.Redrive(context.Background(), work)
	if err != nil || n != 2 {
		t.Fatalf("redrive with the service an hour ahead: moved %d (%v), want 2", n, err)
	}
	if texts, err := plain.Peek(context.Background(), work); err != nil || len(texts) != 2 {
		t.Fatalf("work queue %q (%v), want both back", texts, err)
	}
}

// poisonAgain plays a worker that poisons a redriven message again at once: when a poison
// message of bodies is deleted (Redrive moved it back), it writes a new poison record of the
// same body, through another client — within the same second, as a fast worker does.
type poisonAgain struct {
	t      *testing.T
	plain  *queues.Client
	mu     sync.Mutex
	bodies map[string]string // poison message id → its body
}

func (p *poisonAgain) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	r := req.Raw()
	if err != nil || r.Method != http.MethodDelete || resp.StatusCode >= 300 {
		return resp, err
	}
	p.mu.Lock()
	body, ok := p.bodies[path.Base(r.URL.Path)]
	p.mu.Unlock()
	if ok {
		putPoison(p.t, p.plain, body)
	}
	return resp, err
}

// A message the worker poisons again within the second Redrive moved it is not moved a second
// time: each is moved exactly once, and its new poison copy stays for a later redrive.
func TestRedriveMovesEachOnceWhenItIsPoisonedAgainInTheSameSecond(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	plain, err := queues.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	bodies := []string{"one", "two", "three"}
	putPoison(t, plain, bodies...)
	peeked, err := plain.PeekPoison(context.Background(), work)
	if err != nil || len(peeked) != len(bodies) {
		t.Fatalf("peeked %d (%v), want %d", len(peeked), err, len(bodies))
	}
	again := &poisonAgain{t: t, plain: plain, bodies: map[string]string{}}
	for _, p := range peeked {
		again.bodies[p.ID] = p.Record.Body
	}
	redriver, err := queues.New(storage.Account{Policies: []policy.Policy{again}}, ns)
	if err != nil {
		t.Fatal(err)
	}
	n, err := redriver.Redrive(context.Background(), work)
	if err != nil || n != len(bodies) {
		t.Fatalf("redrive moved %d (%v), want %d: each once", n, err, len(bodies))
	}
	texts, err := plain.Peek(context.Background(), work)
	if err != nil || len(texts) != len(bodies) {
		t.Fatalf("work queue %q (%v), want each body once", texts, err)
	}
	if c := count(t, plain, platform.PoisonQueue(work)); c != len(bodies) {
		t.Fatalf("poison queue holds %d, want the %d copies poisoned again", c, len(bodies))
	}
}
