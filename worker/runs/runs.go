// Package runs owns agent runs: registered agents (in-process functions or signed HTTP
// endpoints), exactly one run per (agent, key) by an insert-only row in AgentRuns, and the
// runner, a consumer of queue agent-runs that executes each run under a lease with heartbeats
// and epochs, retries it, times it out, cancels and replays it.
//
// States: Queued → Running → Succeeded | Failed | Cancelled | TimedOut, with RetryWait
// between attempts. Every change of state is a write conditional on the row's ETag: a runner
// whose lease was taken over (a higher epoch) or whose run was cancelled can never write a
// result.
//
// It must not know why a run was started (the automations concern starts runs and reads
// Origin), nor import another concern: the host gives it the HTTP client and the signer.
package runs

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
)

// Run is one agent run, as stored in AgentRuns.
type Run = tables.Run

// Origin says who started a run.
type Origin = tables.RunOrigin

// State is where a run is.
type State = tables.RunState

// The states of a run.
const (
	Queued    = tables.RunQueued
	Running   = tables.RunRunning
	RetryWait = tables.RunRetryWait
	Succeeded = tables.RunSucceeded
	Failed    = tables.RunFailed
	Cancelled = tables.RunCancelled
	TimedOut  = tables.RunTimedOut
)

// MaxKeyLength bounds a run's dedupe key (its id is a hash of it; the row keeps it to show).
const MaxKeyLength = 1024

// ErrFinished: the run is over (Succeeded, Failed or TimedOut) and cannot be cancelled.
var ErrFinished = errors.New("run already finished")

// Config tunes the runner. Zero fields take the defaults their comments give.
type Config struct {
	// LeaseTTL is how long a runner holds a run without a heartbeat; it heartbeats every third
	// of it. A runner that dies loses the run after at most this. Default 30s.
	LeaseTTL time.Duration
	// RetryBackoff is the wait after a run's first failed attempt; it doubles for each further
	// one, up to MaxRetryBackoff. Defaults 10s and 10m.
	RetryBackoff, MaxRetryBackoff time.Duration
	// OnFinished is called (best effort, after the terminal state is written) when a run ends
	// Succeeded, Failed, Cancelled or TimedOut.
	OnFinished func(ctx context.Context, r *Run)
	// HTTPClient and Sign are given to HTTPAgents that have none (the host: the SSRF-safe
	// client and the webhook signer).
	HTTPClient *http.Client
	Sign       func(req *http.Request, id, secret string, body []byte)
	// CheckSecret refuses an HTTPAgent's secret that is too weak (the host: the webhook rule).
	// Default: any secret but the empty one.
	CheckSecret func(secret string) error
	// Holder names this replica in LeaseHolder. Default: host/pid.
	Holder string
}

// Deps are what the service works with, wired by the host.
type Deps struct {
	Log    logrus.FieldLogger
	Runs   *tables.Runs
	Queues *queues.Client
	Blobs  *blobs.Client
	Agents map[string]Agent
}

// Service starts, executes, lists, cancels and replays runs.
type Service struct {
	cfg    Config
	log    logrus.FieldLogger
	runs   *tables.Runs
	queues *queues.Client
	blobs  *blobs.Client
	agents map[string]*agent
}

// agent is a registered agent with its options and its replica's concurrency slots.
type agent struct {
	Agent
	opts  Options
	slots chan struct{} // nil: no limit
	keys  *keySlots     // nil: no limit per key
}

// New checks the agents (their names, and that an HTTPAgent can be signed) and returns the
// service.
func New(cfg Config, d Deps) (*Service, error) {
	cfg.LeaseTTL = cmp.Or(cfg.LeaseTTL, 30*time.Second)
	cfg.RetryBackoff = cmp.Or(cfg.RetryBackoff, 10*time.Second)
	cfg.MaxRetryBackoff = cmp.Or(cfg.MaxRetryBackoff, 10*time.Minute)
	if cfg.Holder == "" {
		host, _ := os.Hostname()
		cfg.Holder = host + "/" + strconv.Itoa(os.Getpid())
	}
	if cfg.LeaseTTL < 300*time.Millisecond {
		return nil, fmt.Errorf("%w: runs: LeaseTTL %s: want at least 300ms", platform.ErrInvalidInput, cfg.LeaseTTL)
	}
	s := &Service{cfg: cfg, log: d.Log.WithField("component", "runs"), runs: d.Runs, queues: d.Queues, blobs: d.Blobs, agents: map[string]*agent{}}
	for name, a := range d.Agents {
		if err := CheckAgentName(name); err != nil {
			return nil, err
		}
		var opts Options
		if c, ok := a.(configured); ok {
			a, opts = c.Agent, c.opts
		}
		switch h := a.(type) {
		case HTTPAgent:
			a = s.bind(h)
		case *HTTPAgent:
			a = s.bind(*h)
		}
		if h, ok := a.(HTTPAgent); ok {
			if err := s.checkHTTPAgent(h); err != nil {
				return nil, fmt.Errorf("agent %s: %w", name, err)
			}
		}
		ag := &agent{Agent: a, opts: opts.withDefaults()}
		switch o := ag.opts; {
		case o.Singleton < SingletonOff || o.Singleton > SingletonCancel:
			return nil, fmt.Errorf("%w: agent %s: Singleton %d: want SingletonOff, SingletonSkip or SingletonCancel", platform.ErrInvalidInput, name, o.Singleton)
		case o.ConcurrencyPerKey != 0 && o.ConcurrencyKey == nil:
			return nil, fmt.Errorf("%w: agent %s: ConcurrencyPerKey needs a ConcurrencyKey", platform.ErrInvalidInput, name)
		case o.ConcurrencyPerKey < 0:
			return nil, fmt.Errorf("%w: agent %s: ConcurrencyPerKey %d: want at least 1", platform.ErrInvalidInput, name, o.ConcurrencyPerKey)
		}
		if ag.opts.Concurrency > 0 {
			ag.slots = make(chan struct{}, ag.opts.Concurrency)
		}
		if ag.opts.ConcurrencyKey != nil {
			ag.keys = &keySlots{max: ag.opts.ConcurrencyPerKey, held: map[string]int{}}
		}
		s.agents[name] = ag
	}
	return s, nil
}

func (s *Service) checkHTTPAgent(h HTTPAgent) error {
	u, err := url.Parse(h.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("%w: url: want an http(s) URL", platform.ErrInvalidInput)
	case h.Sign == nil || h.Client == nil:
		return fmt.Errorf("%w: an HTTP agent needs a client and a signer (the worker gives them)", platform.ErrInvalidInput)
	case h.Secret == "":
		return fmt.Errorf("%w: secret: an HTTP agent's requests are signed: want one", platform.ErrInvalidInput)
	case s.cfg.CheckSecret != nil:
		return s.cfg.CheckSecret(h.Secret)
	}
	return nil
}

func (s *Service) bind(h HTTPAgent) HTTPAgent {
	if h.Client == nil {
		h.Client = s.cfg.HTTPClient
	}
	if h.Sign == nil {
		h.Sign = s.cfg.Sign
	}
	return h
}

// StartRequest asks for a run.
type StartRequest struct {
	Agent          string          // a registered agent's name
	Key            string          // dedupe key: exactly one run per (Agent, Key), forever
	BusinessUnitID int64           // the run belongs to it (the API shows it to that unit only)
	Input          json.RawMessage // a JSON value or nil; over the table limit it goes to a blob
	Origin         Origin
}

// RunID is the deterministic id of the run of (agent, key): "run_" + 32 lowercase hex of
// sha256(agent + "\x00" + key) — any key, even with characters Tables refuse, gives a valid id.
func RunID(agent, key string) string {
	sum := sha256.Sum256([]byte(agent + "\x00" + key))
	return "run_" + hex.EncodeToString(sum[:16])
}

// validID reports whether id is the form RunID makes.
func validID(id string) bool {
	hexPart, ok := strings.CutPrefix(id, "run_")
	if !ok || len(hexPart) != 32 {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil && strings.ToLower(hexPart) == hexPart
}

// Known reports whether agent is registered (rules are validated against it).
func (s *Service) Known(agent string) bool {
	_, ok := s.agents[agent]
	return ok
}

// Start creates the run if absent (an insert-only row: 409 = it exists) and enqueues it; created is
// false when it existed (then it only re-enqueues if the run is still Queued, so a crash between
// the insert and the enqueue loses nothing). Safe to call again with the same request
// (redelivery). The first request's input is the run's: a later one with other input changes
// nothing.
func (s *Service) Start(ctx context.Context, r StartRequest) (run *Run, created bool, err error) {
	return s.start(ctx, r, 0)
}

func (s *Service) start(ctx context.Context, r StartRequest, generation int) (*Run, bool, error) {
	switch {
	case !s.Known(r.Agent):
		return nil, false, fmt.Errorf("%w: agent: %q is not registered", platform.ErrInvalidInput, r.Agent)
	case r.Key == "":
		return nil, false, fmt.Errorf("%w: key: want a dedupe key", platform.ErrInvalidInput)
	case len(r.Key) > MaxKeyLength:
		return nil, false, fmt.Errorf("%w: key: %d bytes, want at most %d", platform.ErrInvalidInput, len(r.Key), MaxKeyLength)
	case r.BusinessUnitID <= 0:
		return nil, false, fmt.Errorf("%w: businessUnitId: want a positive id", platform.ErrInvalidInput)
	case len(r.Input) > 0 && !json.Valid(r.Input):
		return nil, false, fmt.Errorf("%w: input: not a JSON value", platform.ErrInvalidInput)
	}
	if err := s.blobs.CheckPayloadSize(len(r.Input)); err != nil {
		return nil, false, fmt.Errorf("input: %w", err)
	}
	inline, blob, err := s.blobs.Offload(ctx, r.Input, tables.MaxInlineSnapshot)
	if err != nil {
		return nil, false, fmt.Errorf("store run input: %w", err)
	}
	run := &Run{ID: RunID(r.Agent, r.Key), Agent: r.Agent, Key: r.Key, BusinessUnitID: r.BusinessUnitID, State: Queued,
		Origin: r.Origin, Generation: generation, Input: inline, InputBlob: blob, CreatedAt: time.Now().UTC()}
	_, err = s.runs.Insert(ctx, run)
	created := err == nil
	if errors.Is(err, platform.ErrExists) {
		want := run.BusinessUnitID
		if run, _, err = s.runs.Get(ctx, run.ID); err != nil {
			return nil, false, err
		}
		if run.BusinessUnitID != want {
			// The key is another unit's run: neither it nor its input is this caller's.
			return nil, false, fmt.Errorf("%w: key: agent %s has a run of this key in another business unit", platform.ErrInvalidInput, r.Agent)
		}
		if run.State != Queued {
			return run, false, nil // already under way or over: its own messages carry it
		}
	} else if err != nil {
		return nil, false, err
	}
	if err := s.enqueue(ctx, run.ID, 0); err != nil {
		return run, created, err
	}
	if created {
		queues.TraceLog(ctx, s.log).WithFields(logrus.Fields{"run": run.ID, "agent": run.Agent, "rule": run.Origin.RuleID, "eventKey": run.Origin.EventKey}).Info("run queued")
	}
	return run, created, nil
}

// enqueue sends run id to the runner, visible after delay (rounded up to whole seconds, the
// queue's unit, so that it never comes back before it is due).
func (s *Service) enqueue(ctx context.Context, id string, delay time.Duration) error {
	if delay > 0 {
		delay = min(delay.Truncate(time.Second)+time.Second, 7*24*time.Hour-time.Second)
	}
	// The bare run id, tracing on or off: a worker of an earlier version reads nothing else, and
	// would poison a run message of another form during a rolling deploy or after a rollback
	// (a delayed run waits up to 7 days). So the agent-runs hop starts a new trace: the publish
	// span is made, but its context is not written. The runner already reads the JSON form
	// below too; a later version may write it once every replica reads it.
	return s.queues.EnqueueTraced(ctx, platform.QueueAgentRuns, id, delay, func(context.Context, string) (string, error) {
		return id, nil
	})
}

// runMessage is an agent-runs message that carries a trace: the traceparent of the span that
// sent it and the run id. Read (Handle), not yet written: see enqueue.
type runMessage struct {
	Traceparent string `json:"traceparent"` // first, where the consumer looks for it
	RunID       string `json:"runId"`
}

// Get reads run id with its input and output (read back from their blobs when offloaded).
// platform.ErrNotFound when there is none.
func (s *Service) Get(ctx context.Context, id string) (*Run, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: run %q: want run_ and 32 lowercase hex digits", platform.ErrNotFound, id)
	}
	run, _, err := s.runs.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if run.Input, err = s.blobs.Resolve(ctx, run.Input, run.InputBlob); err != nil {
		return nil, fmt.Errorf("run %s input: %w", id, err)
	}
	if run.Output, err = s.blobs.Resolve(ctx, run.Output, run.OutputBlob); err != nil {
		return nil, fmt.Errorf("run %s output: %w", id, err)
	}
	return run, nil
}

// List reads the runs f selects, newest first (their input and output as stored: a blob's is
// read by Get).
func (s *Service) List(ctx context.Context, f tables.RunFilter) ([]*Run, error) {
	return s.runs.List(ctx, f)
}

// Cancel ends run id Cancelled: a Queued or RetryWait run never starts; a Running one has its
// agent's context cancelled by its runner's next heartbeat (and its result is refused).
// Cancelling a Cancelled run again changes nothing; one that ended otherwise is ErrFinished.
func (s *Service) Cancel(ctx context.Context, id string) (*Run, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: run %q", platform.ErrNotFound, id)
	}
	return s.cancel(ctx, id, "cancelled by request")
}

// cancel ends run id Cancelled with reason, written conditional on the row's ETag (so a
// runner's next renewal, conditional on its own last write, finds it moved).
func (s *Service) cancel(ctx context.Context, id, reason string) (*Run, error) {
	run, _, changed, err := tables.Modify(ctx, s.runs, id, nil, "", func(r *Run) error {
		switch {
		case r.State == Cancelled:
			return tables.ErrUnchanged
		case r.State.Final():
			return fmt.Errorf("%w: run %s is %s", ErrFinished, id, r.State)
		}
		r.State, r.Error, r.FinishedAt, r.NextAttemptAt = Cancelled, reason, time.Now().UTC(), time.Time{}
		return nil
	})
	if err != nil {
		return run, err
	}
	if changed {
		s.log.WithFields(logrus.Fields{"run": id, "agent": run.Agent, "reason": reason}).Info("run cancelled")
		s.finished(ctx, run)
	}
	return run, nil
}

// Replay starts a new run of run id's agent with its input: key = the original key + "#g{n}",
// Generation n (the next free one), Origin kept with ReplayOf = id. The original is left as
// it is. Only a run that is over is replayed.
func (s *Service) Replay(ctx context.Context, id string) (*Run, error) {
	orig, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !orig.State.Final() {
		return nil, fmt.Errorf("%w: run %s is %s: replay a run that is over (cancel it first)", platform.ErrInvalidInput, id, orig.State)
	}
	root := orig.Key
	if orig.Generation > 0 {
		root = strings.TrimSuffix(root, "#g"+strconv.Itoa(orig.Generation))
	}
	origin := orig.Origin
	origin.ReplayOf = orig.ID
	for n := orig.Generation + 1; n <= orig.Generation+100; n++ {
		run, created, err := s.start(ctx, StartRequest{Agent: orig.Agent, Key: root + "#g" + strconv.Itoa(n),
			BusinessUnitID: orig.BusinessUnitID, Input: orig.Input, Origin: origin}, n)
		if err != nil {
			return nil, err
		}
		if created {
			s.log.WithFields(logrus.Fields{"run": run.ID, "replayOf": id, "generation": n}).Info("run replayed")
			return run, nil
		}
	}
	return nil, fmt.Errorf("replay run %s: 100 generations after it exist already", id)
}

// Table is the AgentRuns table itself (tools and tests).
func (s *Service) Table() *tables.Runs { return s.runs }

// finished tells Config.OnFinished, best effort.
func (s *Service) finished(ctx context.Context, r *Run) {
	if s.cfg.OnFinished == nil {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.WithField("run", r.ID).Errorf("OnFinished panicked: %v", p)
		}
	}()
	s.cfg.OnFinished(context.WithoutCancel(ctx), r)
}
