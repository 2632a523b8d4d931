package automations

import (
	"context"
	"encoding/json"
	"sync"

	"cel.dev/cel-go/cel"
	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/settings"
)

// compiled is a rule ready to run: its expressions compiled once, when read.
type compiled struct {
	rule    *Rule
	filter  *program // nil: true
	dedupe  *program // nil: event.key
	rateKey *program // nil: one limit for the rule
	broken  error    // the rule as stored does not compile (written by another version): filter_error
}

// compileRule compiles r's expressions. A CEL error is an *ExprError naming the field.
func compileRule(r *Rule) (*compiled, error) {
	c := &compiled{rule: r}
	var err error
	if r.Filter != "" {
		if c.filter, err = compile("filter", r.Filter, cel.BoolType); err != nil {
			return nil, err
		}
	}
	if r.DedupeKey != "" {
		if c.dedupe, err = compile("dedupeKey", r.DedupeKey, cel.StringType); err != nil {
			return nil, err
		}
	}
	if r.RateLimit != nil && r.RateLimit.Key != "" {
		if c.rateKey, err = compile("rateLimit.key", r.RateLimit.Key, cel.StringType); err != nil {
			return nil, err
		}
	}
	return c, nil
}

type typeKey struct {
	businessUnit int64
	eventType    int
}

// cache holds every rule's newest version, compiled, indexed by (business unit, event type).
type cache struct {
	store Store
	log   logrus.FieldLogger

	// reloading makes reloads (the periodic one, a signal's, a change's here) one at a time:
	// a reload that read the rules before a change must not replace one that read them after.
	reloading sync.Mutex

	mu     sync.RWMutex
	byType map[typeKey][]*compiled
	types  map[int]bool         // every event type some rule names, in any unit
	byID   map[string]*compiled // as last read: a version read again is not compiled again
}

func (c *cache) reload(ctx context.Context) error {
	c.reloading.Lock()
	defer c.reloading.Unlock()
	rows, err := c.store.Rules(ctx)
	if err != nil {
		return err
	}
	c.mu.RLock()
	before := c.byID
	c.mu.RUnlock()
	byType := map[typeKey][]*compiled{}
	types := map[int]bool{}
	byID := map[string]*compiled{}
	for _, row := range rows {
		cr := before[row.ID]
		if cr == nil || cr.rule.Version != row.Version {
			r, err := ruleFromRow(row)
			if err != nil {
				c.log.WithError(err).WithField("ruleId", row.ID).Error("automation rule unreadable; it is skipped")
				continue
			}
			if cr, err = compileRule(r); err != nil {
				cr = &compiled{rule: r, broken: err}
			}
		}
		byID[row.ID] = cr
		r := cr.rule
		for _, t := range r.EventTypes {
			k := typeKey{r.BusinessUnitID, t}
			byType[k] = append(byType[k], cr)
			types[t] = true
		}
	}
	c.mu.Lock()
	c.byType, c.types, c.byID = byType, types, byID
	c.mu.Unlock()
	return nil
}

func (c *cache) has(ev *platform.EntityEvent) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byType[typeKey{ev.BusinessUnitID, ev.EventTypeID}]) > 0
}

func (c *cache) matching(ev *platform.EntityEvent) []*compiled {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.byType[typeKey{ev.BusinessUnitID, ev.EventTypeID}]
}

// wants tells whether some rule names eventType in any business unit (lifecycle events are
// emitted only then).
func (c *cache) wants(eventType int) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.types[eventType]
}

// ruleFromRow reads a stored version.
func ruleFromRow(row settings.RuleRow) (*Rule, error) {
	var d definition
	if err := json.Unmarshal(row.Definition, &d); err != nil {
		return nil, err
	}
	return &Rule{ID: row.ID, Version: row.Version, Name: d.Name, BusinessUnitID: row.BusinessUnitID, ProjectID: row.ProjectID,
		Enabled: row.Enabled, Shadow: row.Shadow, EventTypes: d.EventTypes, Filter: d.Filter, DedupeKey: d.DedupeKey,
		RateLimit: d.RateLimit, Action: d.Action, Note: row.Note, CreatedAt: row.CreatedAt, CreatedBy: row.CreatedBy}, nil
}
