package automations

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/platform/platform"
	"github.com/platform/platform/settings"
)

// NewRule is a rule to add (or a new version of one): its definition, as the CLI's file and
// the API's body give it. Unknown fields are refused.
type NewRule struct {
	Name           string     `json:"name,omitempty"`
	BusinessUnitID int64      `json:"businessUnitId"`
	ProjectID      string     `json:"projectId,omitempty"`
	Shadow         bool       `json:"shadow,omitempty"`
	EventTypes     []int      `json:"eventTypes"`
	Filter         string     `json:"filter,omitempty"`
	DedupeKey      string     `json:"dedupeKey,omitempty"`
	RateLimit      *RateLimit `json:"rateLimit,omitempty"`
	Action         Action     `json:"action"`
}

// ParseRule reads a rule definition: JSON, unknown fields refused, naming what is wrong.
func ParseRule(b []byte) (NewRule, error) {
	var nr NewRule
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&nr); err != nil {
		return NewRule{}, fmt.Errorf("%w: rule definition: %v", platform.ErrInvalidInput, err)
	}
	if dec.More() {
		return NewRule{}, fmt.Errorf("%w: rule definition: more than one JSON value", platform.ErrInvalidInput)
	}
	return nr, nil
}

func (nr NewRule) rule() *Rule {
	return &Rule{Name: nr.Name, BusinessUnitID: nr.BusinessUnitID, ProjectID: nr.ProjectID, Enabled: true, Shadow: nr.Shadow,
		EventTypes: nr.EventTypes, Filter: nr.Filter, DedupeKey: nr.DedupeKey, RateLimit: nr.RateLimit, Action: nr.Action}
}

// Check validates r whole: its shape, its expressions (compiled: a CEL error names the field,
// line and column) and its action (the type, endpoint or agent exists and is the unit's).
func (s *Service) Check(ctx context.Context, r *Rule) (*compiled, error) {
	if err := r.checkShape(); err != nil {
		return nil, err
	}
	cr, err := compileRule(r)
	if err != nil {
		return nil, err
	}
	switch a := r.Action; {
	case a.Notify != nil:
		err = s.d.CheckNotify(a.Notify, r.BusinessUnitID)
	case a.Webhook != nil:
		err = s.d.CheckEndpoint(ctx, a.Webhook.EndpointID, r.BusinessUnitID)
	case a.Run != nil && (s.d.AgentKnown == nil || !s.d.AgentKnown(a.Run.Agent)):
		err = fmt.Errorf("%w: action.run.agent: no agent %q is registered", platform.ErrInvalidInput, a.Run.Agent)
	}
	if err != nil {
		return nil, err
	}
	return cr, nil
}

// Add stores a new rule (version 1), after Check. by names who added it.
func (s *Service) Add(ctx context.Context, nr NewRule, by string) (*Rule, error) {
	r := nr.rule()
	r.ID, r.Version, r.Note, r.CreatedBy = "rul"+strings.ToLower(platform.NewSourceKey()), 1, "added", by
	return s.put(ctx, r)
}

// Update stores nr as the next version of rule id, keeping its state (enabled, shadow unless
// nr sets it), after Check.
func (s *Service) Update(ctx context.Context, id string, nr NewRule, by string) (*Rule, error) {
	cur, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if nr.BusinessUnitID != cur.BusinessUnitID {
		return nil, fmt.Errorf("%w: businessUnitId: a rule stays in its business unit (%d); add a new rule instead", platform.ErrInvalidInput, cur.BusinessUnitID)
	}
	r := nr.rule()
	r.ID, r.Version, r.Enabled, r.Shadow, r.Note, r.CreatedBy = id, cur.Version+1, cur.Enabled, cur.Shadow || nr.Shadow, "changed", by
	return s.put(ctx, r)
}

func (s *Service) put(ctx context.Context, r *Rule) (*Rule, error) {
	if _, err := s.Check(ctx, r); err != nil {
		return nil, err
	}
	r.CreatedAt = s.now().UTC()
	def, err := json.Marshal(definition{Name: r.Name, EventTypes: r.EventTypes, Filter: r.Filter, DedupeKey: r.DedupeKey, RateLimit: r.RateLimit, Action: r.Action})
	if err != nil {
		return nil, err
	}
	if len(def) > maxRuleBytes {
		return nil, fmt.Errorf("%w: the rule is %d bytes, at most %d", platform.ErrInvalidInput, len(def), maxRuleBytes)
	}
	if err := s.d.Store.PutRuleVersion(ctx, settings.RuleRow{ID: r.ID, Version: r.Version, BusinessUnitID: r.BusinessUnitID, ProjectID: r.ProjectID,
		Enabled: r.Enabled, Shadow: r.Shadow, Definition: def, Note: r.Note, CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy}); err != nil {
		if errors.Is(err, settings.ErrVersionExists) {
			return nil, fmt.Errorf("%w: %v", platform.ErrConflict, err)
		}
		return nil, err
	}
	return r, s.changed(ctx)
}

// Enable turns rule id on: acting, or in shadow mode (evaluating and recording only).
func (s *Service) Enable(ctx context.Context, id string, shadow bool, by string) (*Rule, error) {
	note := "enabled"
	if shadow {
		note = "enabled in shadow mode"
	}
	return s.setState(ctx, id, true, shadow, note+" by "+by, by)
}

// Disable turns rule id off: its decisions say disabled.
func (s *Service) Disable(ctx context.Context, id, by string) (*Rule, error) {
	return s.setEnabled(ctx, id, false, "disabled by "+by, by)
}

func (s *Service) setEnabled(ctx context.Context, id string, enabled bool, note, by string) (*Rule, error) {
	cur, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.setState(ctx, id, enabled, cur.Shadow, note, by)
}

// setState stores the next version of rule id with its state changed. The definition is
// stored as it was, not checked again: turning off a rule whose endpoint is gone must work.
func (s *Service) setState(ctx context.Context, id string, enabled, shadow bool, note, by string) (*Rule, error) {
	rows, err := s.d.Store.RuleVersions(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: no automation rule %s", platform.ErrNotFound, id)
	}
	row := rows[len(rows)-1]
	row.Version, row.Enabled, row.Shadow, row.Note, row.CreatedAt, row.CreatedBy = row.Version+1, enabled, shadow, note, s.now().UTC(), by
	if err := s.d.Store.PutRuleVersion(ctx, row); err != nil {
		if errors.Is(err, settings.ErrVersionExists) {
			return nil, fmt.Errorf("%w: %v", platform.ErrConflict, err)
		}
		return nil, err
	}
	r, err := ruleFromRow(row)
	if err != nil {
		return nil, err
	}
	return r, s.changed(ctx)
}

var ruleIDPattern = regexp.MustCompile(`^rul[0-9a-z]{26}$`)

// Get reads the newest version of rule id; platform.ErrNotFound when there is none.
func (s *Service) Get(ctx context.Context, id string) (*Rule, error) {
	vs, err := s.Versions(ctx, id)
	if err != nil {
		return nil, err
	}
	return vs[len(vs)-1], nil
}

// Versions reads every version of rule id, oldest first.
func (s *Service) Versions(ctx context.Context, id string) ([]*Rule, error) {
	if !ruleIDPattern.MatchString(id) {
		return nil, fmt.Errorf("%w: no automation rule %q (a rule id is rul and 26 letters and digits)", platform.ErrNotFound, id)
	}
	rows, err := s.d.Store.RuleVersions(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: no automation rule %s", platform.ErrNotFound, id)
	}
	out := make([]*Rule, 0, len(rows))
	for _, row := range rows {
		r, err := ruleFromRow(row)
		if err != nil {
			return nil, fmt.Errorf("rule %s version %d: %w", id, row.Version, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// List reads the newest version of every rule.
func (s *Service) List(ctx context.Context) ([]*Rule, error) {
	rows, err := s.d.Store.Rules(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Rule, 0, len(rows))
	for _, row := range rows {
		r, err := ruleFromRow(row)
		if err != nil {
			return nil, fmt.Errorf("rule %s version %d: %w", row.ID, row.Version, err)
		}
		out = append(out, r)
	}
	return out, nil
}
