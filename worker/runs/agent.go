package runs

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/platform/platform"
)

// Agent executes runs. Run returns the run's output (a JSON value, or nil); an error marked
// platform.Permanent fails the run at once, any other is retried (RetryWait) until
// Options.MaxAttempts. ctx ends when the run is cancelled, its lease is lost, or it times out:
// an agent must return soon after.
type Agent interface {
	Run(ctx context.Context, r *Run) (json.RawMessage, error)
}

// AgentFunc is an in-process agent: a library user's Go function.
type AgentFunc func(ctx context.Context, r *Run) (json.RawMessage, error)

// Run calls f.
func (f AgentFunc) Run(ctx context.Context, r *Run) (json.RawMessage, error) { return f(ctx, r) }

// Options tune how an agent's runs execute. Zero fields take the defaults their comments give.
type Options struct {
	// MaxAttempts: a run that failed this many attempts (or whose runner died on its last)
	// ends Failed. Default 3.
	MaxAttempts int
	// Timeout bounds one attempt; past it the run ends TimedOut. Default 10 minutes.
	Timeout time.Duration
	// Concurrency is the most runs of the agent one worker replica executes at once (0: no
	// limit of its own). Per replica: N replicas may run N times as many.
	Concurrency int
	// ConcurrencyKey and ConcurrencyPerKey: at most ConcurrencyPerKey runs of the agent with
	// the same ConcurrencyKey(run) execute at once on one worker replica. Per replica, as
	// Concurrency: N replicas may run N times as many of a key. The function sees the run with
	// its input (read back from its blob when offloaded); it must be quick and not block.
	// ConcurrencyPerKey defaults to 1 when ConcurrencyKey is set, and needs it.
	ConcurrencyKey    func(r *Run) string
	ConcurrencyPerKey int
	// Singleton makes the agent run one run at a time across all replicas. Default off.
	Singleton SingletonMode
}

// SingletonMode says what a run of a singleton agent does when another run of the agent is
// running (on any replica).
type SingletonMode int

const (
	// SingletonOff: runs of the agent execute side by side (within Concurrency).
	SingletonOff SingletonMode = iota
	// SingletonSkip: the new run ends Cancelled with the reason "singleton: run X is running".
	SingletonSkip
	// SingletonCancel: the new run cancels the running one (Cancelled with the reason
	// "singleton: replaced by run Y"; its runner stops its agent at its next heartbeat) and
	// executes once that run's runner has let go of it, or its lease has ended: never both at
	// once. Until then the new run stays Queued and looks again every few seconds.
	SingletonCancel
)

func (o Options) withDefaults() Options {
	o.MaxAttempts = cmp.Or(o.MaxAttempts, 3)
	o.Timeout = cmp.Or(o.Timeout, 10*time.Minute)
	if o.ConcurrencyKey != nil {
		o.ConcurrencyPerKey = cmp.Or(o.ConcurrencyPerKey, 1)
	}
	return o
}

// WithOptions is agent a with options o (an agent without them runs with the defaults).
func WithOptions(a Agent, o Options) Agent { return configured{Agent: a, opts: o} }

type configured struct {
	Agent
	opts Options
}

// agentName is what an agent may be called: it names a singleton row and a flag value.
var agentName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// CheckAgentName refuses a name that is not 1-63 lowercase letters, digits, '.', '_' or '-',
// starting with a letter or digit.
func CheckAgentName(name string) error {
	if !agentName.MatchString(name) {
		return fmt.Errorf("%w: agent name %q: want 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", platform.ErrInvalidInput, name)
	}
	return nil
}

// HTTPAgent is an agent behind an HTTP endpoint. Each attempt is a POST of
// {"runId","agent","attempt","epoch","input","origin"}, signed as webhooks are (Standard
// Webhooks headers; webhook-id is "{runId}:{epoch}"), through the SSRF-safe client the worker
// gives it. The call is synchronous: the response is the result. 2xx: Succeeded, the
// response body (JSON, or empty for none) is the output; 408, 429, 5xx, a network error or a
// timeout: retried; any other status: Failed at once.
type HTTPAgent struct {
	URL    string
	Secret string // signs each request (whsec_…, as a webhook endpoint's secret)
	// MaxOutputBytes bounds the response body read as output. Default 1 MiB.
	MaxOutputBytes int
	// Client and Sign are set by the worker when left nil: the SSRF-safe webhook client (its
	// own timeout lifted: Options.Timeout bounds an attempt) and the webhook signer.
	Client *http.Client
	Sign   func(req *http.Request, id, secret string, body []byte)
}

// agentRequest is what an HTTPAgent receives.
type agentRequest struct {
	RunID   string          `json:"runId"`
	Agent   string          `json:"agent"`
	Attempt int             `json:"attempt"`
	Epoch   int             `json:"epoch"`
	Input   json.RawMessage `json:"input,omitempty"`
	Origin  Origin          `json:"origin"`
}

// Run POSTs the run to h.URL and sorts the answer.
func (h HTTPAgent) Run(ctx context.Context, r *Run) (json.RawMessage, error) {
	if h.Client == nil || h.Sign == nil {
		return nil, platform.Permanent(errors.New("http agent: no client or signer (register it through the worker)"))
	}
	body, err := json.Marshal(agentRequest{RunID: r.ID, Agent: r.Agent, Attempt: r.Attempts, Epoch: r.Epoch, Input: r.Input, Origin: r.Origin})
	if err != nil {
		return nil, platform.Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return nil, platform.Permanent(fmt.Errorf("http agent: bad URL: %v", redactURLError(err)))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "platform-runs")
	h.Sign(req, r.ID+":"+strconv.Itoa(r.Epoch), h.Secret, body)
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header)) // traceparent: not signed (the signature covers the body)
	resp, err := h.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("http agent: %v", redactURLError(err)) // net/http's error names the URL, query and all
	}
	defer resp.Body.Close()
	limit := int64(cmp.Or(h.MaxOutputBytes, 1<<20))
	out, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("http agent: reading the answer: %v", redactURLError(err))
	}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		if int64(len(out)) > limit {
			return nil, platform.Permanent(fmt.Errorf("http agent answered %d with more than %d bytes", code, limit))
		}
		if len(bytes.TrimSpace(out)) == 0 {
			return nil, nil
		}
		if !json.Valid(out) {
			return nil, platform.Permanent(fmt.Errorf("http agent answered %d with a body that is not JSON", code))
		}
		return out, nil
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return nil, fmt.Errorf("http agent answered %d", code)
	default:
		return nil, platform.Permanent(fmt.Errorf("http agent answered %d", code))
	}
}

// redactURLError drops the URL from net/http's errors (it may carry credentials or a token in
// its query): only the operation and the cause remain.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
