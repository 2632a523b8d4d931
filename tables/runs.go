package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// TableAgentRuns holds agent runs: a row per run (partition = run id) and, in partition
// "singleton", which run last held each singleton agent.
const TableAgentRuns = "AgentRuns"

// RunState is where a run is: Queued → Running → Succeeded | Failed | Cancelled | TimedOut,
// with RetryWait between attempts.
type RunState string

// The states of a run.
const (
	RunQueued    RunState = "Queued"
	RunRunning   RunState = "Running"
	RunRetryWait RunState = "RetryWait"
	RunSucceeded RunState = "Succeeded"
	RunFailed    RunState = "Failed"
	RunCancelled RunState = "Cancelled"
	RunTimedOut  RunState = "TimedOut"
)

// RunStates lists every state, in the order a run meets them.
var RunStates = []RunState{RunQueued, RunRunning, RunRetryWait, RunSucceeded, RunFailed, RunCancelled, RunTimedOut}

// Final reports whether a run in state s is over: nothing moves it again.
func (s RunState) Final() bool {
	return s == RunSucceeded || s == RunFailed || s == RunCancelled || s == RunTimedOut
}

// RunOrigin says who started a run: a rule (its id and version) for an event, or a replay.
type RunOrigin struct {
	RuleID        string `json:"ruleId,omitempty"`
	RuleVersion   int    `json:"ruleVersion,omitempty"`
	EventKey      string `json:"eventKey,omitempty"`
	CorrelationID string `json:"correlationId,omitempty"`
	// ReplayOf is the run this one replays (a new generation), empty for a first run.
	ReplayOf string `json:"replayOf,omitempty"`
	// ChainDepth is the run's depth in a chain of rule actions (the event's, plus one): its
	// lifecycle events carry it to the loop guard.
	ChainDepth int `json:"chainDepth,omitempty"`
}

// Run is one agent run as stored. Input and Output are inline JSON, or empty with their blob
// named in InputBlob / OutputBlob (container event-payloads) when over MaxInlineSnapshot.
type Run struct {
	ID             string          `json:"id"`
	Agent          string          `json:"agent"`
	Key            string          `json:"key"`
	BusinessUnitID int64           `json:"businessUnitId"`
	State          RunState        `json:"state"`
	Epoch          int             `json:"epoch"`
	Attempts       int             `json:"attempts"`
	LeaseHolder    string          `json:"leaseHolder,omitempty"`
	LeaseUntil     time.Time       `json:"leaseUntil,omitzero"`
	Origin         RunOrigin       `json:"origin"`
	Generation     int             `json:"generation,omitempty"`
	Input          json.RawMessage `json:"input,omitempty"`
	InputBlob      string          `json:"-"`
	Output         json.RawMessage `json:"output,omitempty"`
	OutputBlob     string          `json:"-"`
	Error          string          `json:"error,omitempty"`
	CreatedAt      time.Time       `json:"createdAt"`
	StartedAt      time.Time       `json:"startedAt,omitzero"`
	FinishedAt     time.Time       `json:"finishedAt,omitzero"`
	NextAttemptAt  time.Time       `json:"nextAttemptAt,omitzero"`
}

// Runs is the AgentRuns table.
type Runs struct{ t *aztables.Client }

// Runs returns the namespace's AgentRuns table.
func (c *Client) Runs() *Runs { return &Runs{t: c.table(TableAgentRuns)} }

const (
	runRowKey          = "run"
	singletonPartition = "singleton"
	// Run ids start with "run_", singleton rows sit in "singleton": a range over "run_…"
	// reads runs only.
	runPartitionFrom, runPartitionTo = "run_", "run`"
	maxRunError                      = 4096
)

type runEntity struct {
	PartitionKey, RowKey string
	Agent                string
	Key                  string
	BusinessUnitId       int64  `json:",string"`
	BusinessUnitIdType   string `json:"BusinessUnitId@odata.type"`
	State                string
	Epoch                int32
	Attempts             int32
	LeaseHolder          string `json:",omitempty"`
	LeaseUntil           string `json:",omitempty"`
	LeaseUntilType       string `json:"LeaseUntil@odata.type,omitempty"`
	RuleId               string `json:",omitempty"`
	RuleVersion          int32  `json:",omitempty"`
	EventKey             string `json:",omitempty"`
	CorrelationId        string `json:",omitempty"`
	ReplayOf             string `json:",omitempty"`
	ChainDepth           int32  `json:",omitempty"`
	Generation           int32  `json:",omitempty"`
	Input                string `json:",omitempty"`
	InputBlob            string `json:",omitempty"`
	Output               string `json:",omitempty"`
	OutputBlob           string `json:",omitempty"`
	Error                string `json:",omitempty"`
	CreatedAt            string
	CreatedAtType        string `json:"CreatedAt@odata.type"`
	StartedAt            string `json:",omitempty"`
	StartedAtType        string `json:"StartedAt@odata.type,omitempty"`
	FinishedAt           string `json:",omitempty"`
	FinishedAtType       string `json:"FinishedAt@odata.type,omitempty"`
	NextAttemptAt        string `json:",omitempty"`
	NextAttemptAtType    string `json:"NextAttemptAt@odata.type,omitempty"`
}

func toRunEntity(r *Run) ([]byte, error) {
	if len(r.Input) > MaxInlineSnapshot || len(r.Output) > MaxInlineSnapshot {
		return nil, fmt.Errorf("run %s: input or output over the %d-byte inline limit: offload it first", r.ID, MaxInlineSnapshot)
	}
	e := runEntity{PartitionKey: r.ID, RowKey: runRowKey, Agent: r.Agent, Key: r.Key,
		BusinessUnitId: r.BusinessUnitID, BusinessUnitIdType: edmInt64, State: string(r.State),
		Epoch: int32(r.Epoch), Attempts: int32(r.Attempts), LeaseHolder: r.LeaseHolder,
		RuleId: r.Origin.RuleID, RuleVersion: int32(r.Origin.RuleVersion), EventKey: r.Origin.EventKey,
		CorrelationId: r.Origin.CorrelationID, ReplayOf: r.Origin.ReplayOf, ChainDepth: int32(r.Origin.ChainDepth), Generation: int32(r.Generation),
		Input: string(r.Input), InputBlob: r.InputBlob, Output: string(r.Output), OutputBlob: r.OutputBlob,
		Error: clipError(r.Error), CreatedAt: r.CreatedAt.UTC().Format(timeLayout), CreatedAtType: edmDateTime}
	e.LeaseUntil, e.LeaseUntilType = optionalTime(r.LeaseUntil)
	e.StartedAt, e.StartedAtType = optionalTime(r.StartedAt)
	e.FinishedAt, e.FinishedAtType = optionalTime(r.FinishedAt)
	e.NextAttemptAt, e.NextAttemptAtType = optionalTime(r.NextAttemptAt)
	return json.Marshal(e)
}

func clipError(s string) string {
	if len(s) <= maxRunError {
		return s
	}
	return strings.ToValidUTF8(s[:maxRunError], "") + "…"
}

func (e *runEntity) run() *Run {
	r := &Run{ID: e.PartitionKey, Agent: e.Agent, Key: e.Key, BusinessUnitID: e.BusinessUnitId, State: RunState(e.State),
		Epoch: int(e.Epoch), Attempts: int(e.Attempts), LeaseHolder: e.LeaseHolder,
		Origin:     RunOrigin{RuleID: e.RuleId, RuleVersion: int(e.RuleVersion), EventKey: e.EventKey, CorrelationID: e.CorrelationId, ReplayOf: e.ReplayOf, ChainDepth: int(e.ChainDepth)},
		Generation: int(e.Generation), InputBlob: e.InputBlob, OutputBlob: e.OutputBlob, Error: e.Error}
	if e.Input != "" {
		r.Input = json.RawMessage(e.Input)
	}
	if e.Output != "" {
		r.Output = json.RawMessage(e.Output)
	}
	r.LeaseUntil, _ = parseTime(e.LeaseUntil)
	r.CreatedAt, _ = parseTime(e.CreatedAt)
	r.StartedAt, _ = parseTime(e.StartedAt)
	r.FinishedAt, _ = parseTime(e.FinishedAt)
	r.NextAttemptAt, _ = parseTime(e.NextAttemptAt)
	return r
}

// Insert creates run r, insert-only: platform.ErrExists when its id is there already.
func (s *Runs) Insert(ctx context.Context, r *Run) (ETag, error) {
	body, err := toRunEntity(r)
	if err != nil {
		return "", err
	}
	resp, err := s.t.AddEntity(ctx, body, nil)
	if err != nil {
		return "", fmt.Errorf("insert run %s: %w", r.ID, storage.Translate(err))
	}
	return etagOf(resp.ETag), nil
}

// Get reads run id; platform.ErrNotFound when there is none.
func (s *Runs) Get(ctx context.Context, id string) (*Run, ETag, error) {
	resp, err := s.t.GetEntity(ctx, id, runRowKey, nil)
	if err != nil {
		return nil, "", fmt.Errorf("read run %s: %w", id, storage.Translate(err))
	}
	var e runEntity
	if err := json.Unmarshal(resp.Value, &e); err != nil {
		return nil, "", fmt.Errorf("read run %s: %w", id, err)
	}
	return e.run(), etagOf(resp.ETag), nil
}

// Update replaces run r if it is still at version etag: platform.ErrConflict when another
// writer moved it first. It returns the new version.
func (s *Runs) Update(ctx context.Context, r *Run, etag ETag) (ETag, error) {
	body, err := toRunEntity(r)
	if err != nil {
		return "", err
	}
	tag := azcore.ETag(etag)
	resp, err := s.t.UpdateEntity(ctx, body, &aztables.UpdateEntityOptions{IfMatch: &tag, UpdateMode: aztables.UpdateModeReplace})
	if err != nil {
		return "", fmt.Errorf("update run %s: %w", r.ID, storage.Translate(err))
	}
	return etagOf(resp.ETag), nil
}

// RunFilter selects runs. Zero fields select everything.
type RunFilter struct {
	Agent          string
	State          RunState
	BusinessUnitID int64
	// Visible, when set, keeps only runs of the business units it accepts.
	Visible func(businessUnitID int64) bool
	Limit   int // at most this many (1-1000)
}

// List reads the runs f selects, newest first. The table is keyed by run id (a hash), so this
// is a scan the table service filters; it keeps only the newest Limit in memory.
func (s *Runs) List(ctx context.Context, f RunFilter) ([]*Run, error) {
	if f.Limit < 1 || f.Limit > 1000 {
		return nil, fmt.Errorf("%w: limit: want 1-1000, got %d", platform.ErrInvalidInput, f.Limit)
	}
	filter := "PartitionKey ge " + odataQuote(runPartitionFrom) + " and PartitionKey lt " + odataQuote(runPartitionTo)
	if f.Agent != "" {
		filter += " and Agent eq " + odataQuote(f.Agent)
	}
	if f.State != "" {
		filter += " and State eq " + odataQuote(string(f.State))
	}
	if f.BusinessUnitID != 0 {
		filter += " and BusinessUnitId eq " + strconv.FormatInt(f.BusinessUnitID, 10) + "L"
	}
	pager := s.t.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter})
	out := []*Run{}
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
				return out, nil
			}
			return nil, fmt.Errorf("list runs: %w", err)
		}
		for _, raw := range page.Entities {
			var e runEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, err
			}
			if f.Visible != nil && !f.Visible(e.BusinessUnitId) {
				continue
			}
			out = append(out, e.run())
		}
		if len(out) > 2*f.Limit { // keep memory bounded: only the newest Limit can be shown
			out = newestRuns(out, f.Limit)
		}
	}
	return newestRuns(out, f.Limit), nil
}

func newestRuns(runs []*Run, n int) []*Run {
	slices.SortStableFunc(runs, func(a, b *Run) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return runs[:min(n, len(runs))]
}

// Singleton reads which run last held singleton agent agent: "" and no ETag when none ever did.
func (s *Runs) Singleton(ctx context.Context, agent string) (runID string, etag ETag, err error) {
	resp, err := s.t.GetEntity(ctx, singletonPartition, agent, nil)
	if err != nil {
		if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
			return "", "", nil
		}
		return "", "", fmt.Errorf("read singleton %s: %w", agent, err)
	}
	var e struct{ RunId string }
	if err := json.Unmarshal(resp.Value, &e); err != nil {
		return "", "", fmt.Errorf("read singleton %s: %w", agent, err)
	}
	return e.RunId, etagOf(resp.ETag), nil
}

// SetSingleton makes runID the holder of singleton agent agent, if the row is still at etag
// ("": if there is no row yet). platform.ErrConflict (or ErrExists) when another run moved it.
func (s *Runs) SetSingleton(ctx context.Context, agent, runID string, etag ETag) error {
	body, _ := json.Marshal(map[string]string{"PartitionKey": singletonPartition, "RowKey": agent, "RunId": runID})
	var err error
	if etag == "" {
		_, err = s.t.AddEntity(ctx, body, nil)
	} else {
		tag := azcore.ETag(etag)
		_, err = s.t.UpdateEntity(ctx, body, &aztables.UpdateEntityOptions{IfMatch: &tag, UpdateMode: aztables.UpdateModeReplace})
	}
	if err != nil {
		return fmt.Errorf("singleton %s: %w", agent, storage.Translate(err))
	}
	return nil
}
