package automations

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"github.com/platform/platform"
)

// Event is the canonical event as a filter reads it: `event.payload.firstName`,
// `event.entity.guid`, `event.time`. Its fields are typed, so a misspelled field or a type
// mismatch is refused when the rule is saved, with its position.
type Event struct {
	Key              string         `cel:"key"`
	Type             int64          `cel:"type"`
	EntityType       int64          `cel:"entityType"`
	Action           int64          `cel:"action"`
	BusinessUnit     int64          `cel:"businessUnit"`
	Tenant           string         `cel:"tenant"`
	Project          string         `cel:"project"` // the payload's projectId
	Source           string         `cel:"source"`
	Actor            string         `cel:"actor"`
	Correlation      string         `cel:"correlation"`
	Time             time.Time      `cel:"time"`
	Entity           Entity         `cel:"entity"`
	ChangedFields    []string       `cel:"changedFields"`
	Payload          map[string]any `cel:"payload"`
	CausedByRule     string         `cel:"causedByRule"`
	Depth            int64          `cel:"depth"` // chainDepth
	NotificationType int64          `cel:"notificationType"`
	Supplementary    bool           `cel:"supplementary"`
}

// Entity is `event.entity`.
type Entity struct {
	ID       int64  `cel:"id"`
	GUID     string `cel:"guid"`
	Type     int64  `cel:"type"`
	Identity string `cel:"identity"`
}

// Evaluation limits: a filter is refused at save over the size and nesting limits, and
// stopped (filter_error) past the cost limit, which bounds comprehensions over a large
// payload.
const (
	costLimit        = 100_000
	parserDepthLimit = 64
)

var (
	envOnce sync.Once
	env     *cel.Env
	envErr  error
)

func celEnv() (*cel.Env, error) {
	envOnce.Do(func() {
		env, envErr = cel.NewEnv(
			ext.NativeTypes(reflect.TypeFor[Event](), reflect.TypeFor[Entity](), ext.ParseStructTags(true)),
			cel.Variable("event", cel.ObjectType("automations.Event")),
			cel.ParserRecursionLimit(parserDepthLimit),
			cel.ParserExpressionSizeLimit(MaxExpressionLen),
		)
	})
	return env, envErr
}

// program is one compiled expression of a rule.
type program struct {
	source string
	ast    *cel.Ast
	prg    cel.Program
}

// ExprError is a CEL expression refused when a rule is saved: which one, and CEL's message
// with its line and column.
type ExprError struct {
	Field   string
	Message string
}

func (e *ExprError) Error() string { return e.Field + ": " + e.Message }
func (e *ExprError) Unwrap() error { return platform.ErrInvalidInput }

// compile compiles source, an expression of field, that must give want (BoolType or
// StringType). It checks every event.X it reads names a field of the event: a misspelled
// field is refused here, with its position, not met as a missing key on every event.
func compile(field, source string, want *cel.Type) (*program, error) {
	e, err := celEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := e.Compile(source)
	if iss.Err() != nil {
		return nil, &ExprError{Field: field, Message: strings.TrimSpace(iss.Err().Error())}
	}
	if t := ast.OutputType(); !t.IsAssignableType(want) && t != cel.DynType {
		return nil, &ExprError{Field: field, Message: fmt.Sprintf("gives %s, want %s", t, want)}
	}
	prg, err := e.Program(ast, programOptions(e, ast)...)
	if err != nil {
		return nil, &ExprError{Field: field, Message: err.Error()}
	}
	return &program{source: source, ast: ast, prg: prg}, nil
}

// eval runs p over act: the value, or an error that says what went wrong (a missing key, a
// type mismatch, the cost limit).
func (p *program) eval(act interpreter.Activation) (ref.Val, error) {
	v, _, err := p.prg.Eval(act)
	if err != nil {
		return nil, err
	}
	if types.IsError(v) {
		return nil, fmt.Errorf("%v", v)
	}
	return v, nil
}

// evalBool evaluates a filter: true, false, or why it could not tell.
func (p *program) evalBool(act interpreter.Activation) (bool, error) {
	v, err := p.eval(act)
	if err != nil {
		return false, err
	}
	b, ok := v.Value().(bool)
	if !ok {
		return false, fmt.Errorf("gave %s, want bool", v.Type().TypeName())
	}
	return b, nil
}

// evalString evaluates a key expression.
func (p *program) evalString(act interpreter.Activation) (string, error) {
	v, err := p.eval(act)
	if err != nil {
		return "", err
	}
	s, ok := v.Value().(string)
	if !ok {
		return "", fmt.Errorf("gave %s, want string", v.Type().TypeName())
	}
	return s, nil
}

// activation is the canonical event as filters see it, built once per event for every rule:
// the payload is decoded once.
func activation(ev *platform.EntityEvent) (interpreter.Activation, error) {
	e, err := canonical(ev)
	if err != nil {
		return nil, err
	}
	return interpreter.NewActivation(map[string]any{"event": e})
}

func canonical(ev *platform.EntityEvent) (*Event, error) {
	payload := map[string]any{}
	if len(ev.Payload) > 0 {
		if err := json.Unmarshal(ev.Payload, &payload); err != nil {
			return nil, fmt.Errorf("payload: %w", err)
		}
	}
	project, _ := payload["projectId"].(string)
	if n, ok := payload["projectId"].(float64); ok {
		project = fmt.Sprint(int64(n))
	}
	changed := ev.ChangedFields
	if changed == nil {
		changed = []string{}
	}
	return &Event{
		Key: ev.Key(), Type: int64(ev.EventTypeID), EntityType: int64(ev.EntityTypeID), Action: int64(ev.ActionTypeID),
		BusinessUnit: ev.BusinessUnitID, Tenant: ev.TenantID, Project: project, Source: ev.Source, Actor: ev.ActorID,
		Correlation: ev.CorrelationID, Time: ev.CreatedOn,
		Entity:        Entity{ID: ev.EntityID, GUID: ev.EntityGUID, Type: int64(ev.EntityTypeID), Identity: ev.Identity()},
		ChangedFields: changed, Payload: payload, CausedByRule: ev.CausedByRule, Depth: int64(ev.ChainDepth),
		NotificationType: int64(ev.NotificationEventTypeID), Supplementary: ev.Supplementary,
	}, nil
}

// projectOf is the event's project, as `event.project` reads it.
func projectOf(act interpreter.Activation) string {
	v, _ := act.ResolveName("event")
	if e, ok := v.(*Event); ok {
		return e.Project
	}
	return ""
}

// programOptions: every program is optimized; one whose worst case the static estimate
// cannot bound under the cost limit (it iterates over, or measures, data of unknown size: a
// payload's lists and strings) has its cost tracked as it runs, and is stopped past the limit.
// Tracking costs about 40 % of a simple filter's evaluation, so a filter the estimate bounds
// (field reads, comparisons, && and ||) runs without it: its cost can never reach the limit.
func programOptions(e *cel.Env, ast *cel.Ast) []cel.ProgramOption {
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if est, err := e.EstimateCost(ast, unknownSizes{}); err != nil || est.Max > costLimit {
		opts = append(opts, cel.CostLimit(costLimit), cel.InterruptCheckFrequency(100))
	}
	return opts
}

// unknownSizes gives the estimator no hints: the size of anything read from the event is
// unknown (so unbounded), and functions cost what CEL's model says.
type unknownSizes struct{}

func (unknownSizes) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}
func (unknownSizes) EstimateSize(cost.AstNode) *cost.SizeEstimate { return nil }
