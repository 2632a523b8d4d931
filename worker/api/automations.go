package api

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/automations"
)

// maxRuleBody bounds a rule definition's body; the concern refuses a rule over its own, lower
// limit with its reason.
const maxRuleBody = 256 << 10

// serveListAutomations lists the newest version of the rules of the principal's business units.
func (d *server) serveListAutomations(rw http.ResponseWriter, r *http.Request) {
	all, err := d.Automations.List(r.Context())
	if err != nil {
		d.storageError(rw, "list automation rules", err)
		return
	}
	p := principal(r)
	seen := []*automations.Rule{}
	for _, rule := range all {
		if p.Sees(rule.BusinessUnitID) {
			seen = append(seen, rule)
		}
	}
	writeJSON(rw, http.StatusOK, seen)
}

// serveAddAutomation adds a rule (version 1) in one of the principal's business units: 201
// with the rule. Another unit is 403, as for a webhook endpoint.
func (d *server) serveAddAutomation(rw http.ResponseWriter, r *http.Request) {
	nr, ok := readRule(rw, r)
	if !ok {
		return
	}
	noteUnit(r, nr.BusinessUnitID)
	if nr.BusinessUnitID > 0 && !principal(r).Sees(nr.BusinessUnitID) {
		forbidUnit(rw, nr.BusinessUnitID)
		return
	}
	rule, err := d.Automations.Add(r.Context(), nr, principal(r).ID)
	if d.automationError(rw, "add automation rule", err) {
		return
	}
	writeJSON(rw, http.StatusCreated, rule)
}

// ruleVersions is a rule (its newest version) with every version, oldest first.
type ruleVersions struct {
	*automations.Rule
	Versions []*automations.Rule `json:"versions"`
}

// serveGetAutomation answers a rule of the principal's business units with its versions.
func (d *server) serveGetAutomation(rw http.ResponseWriter, r *http.Request) {
	rule, ok := d.ruleOf(rw, r)
	if !ok {
		return
	}
	vs, err := d.Automations.Versions(r.Context(), rule.ID)
	if d.automationError(rw, "read automation rule versions", err) {
		return
	}
	writeJSON(rw, http.StatusOK, ruleVersions{Rule: vs[len(vs)-1], Versions: vs})
}

// serveUpdateAutomation stores a new version of a rule of the principal's business units; it
// stays in its unit (a body naming another is 400).
func (d *server) serveUpdateAutomation(rw http.ResponseWriter, r *http.Request) {
	rule, ok := d.ruleOf(rw, r)
	if !ok {
		return
	}
	nr, ok := readRule(rw, r)
	if !ok {
		return
	}
	updated, err := d.Automations.Update(r.Context(), rule.ID, nr, principal(r).ID)
	if d.automationError(rw, "update automation rule", err) {
		return
	}
	writeJSON(rw, http.StatusOK, updated)
}

// serveEnableAutomation turns a rule on; with ?shadow=true it evaluates and records only.
func (d *server) serveEnableAutomation(rw http.ResponseWriter, r *http.Request) {
	shadow := false
	if v := r.URL.Query().Get("shadow"); v != "" {
		var err error
		if shadow, err = strconv.ParseBool(v); err != nil {
			writeError(rw, http.StatusBadRequest, "shadow: want true or false")
			return
		}
	}
	rule, ok := d.ruleOf(rw, r)
	if !ok {
		return
	}
	updated, err := d.Automations.Enable(r.Context(), rule.ID, shadow, principal(r).ID)
	if d.automationError(rw, "enable automation rule", err) {
		return
	}
	writeJSON(rw, http.StatusOK, updated)
}

// serveDisableAutomation turns a rule off: its decisions say disabled.
func (d *server) serveDisableAutomation(rw http.ResponseWriter, r *http.Request) {
	rule, ok := d.ruleOf(rw, r)
	if !ok {
		return
	}
	updated, err := d.Automations.Disable(r.Context(), rule.ID, principal(r).ID)
	if d.automationError(rw, "disable automation rule", err) {
		return
	}
	writeJSON(rw, http.StatusOK, updated)
}

// serveTestAutomation evaluates a rule on the event of the body, storing and doing nothing.
func (d *server) serveTestAutomation(rw http.ResponseWriter, r *http.Request) {
	rule, ok := d.ruleOf(rw, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxEventBody))
	if err != nil {
		writeError(rw, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	ev, err := platform.DecodeEvent(body)
	if err != nil {
		writeError(rw, http.StatusBadRequest, "event: "+err.Error())
		return
	}
	e, err := d.Automations.Test(r.Context(), rule, ev)
	if d.automationError(rw, "test automation rule", err) {
		return
	}
	writeJSON(rw, http.StatusOK, e)
}

// maxEventBody bounds an event to test a rule on: the largest payload the platform takes
// (PLATFORM_MAX_PAYLOAD_BYTES' default) and its envelope.
const maxEventBody = 1<<20 + 64<<10

// serveExplainAutomation answers GET /v1/automations/{id}/explain?event=KEY: the decision
// the rule recorded on the event, and each clause of its filter evaluated now.
func (d *server) serveExplainAutomation(rw http.ResponseWriter, r *http.Request) {
	key, ok := eventKeyParam(rw, r.URL.Query().Get("event"))
	if !ok {
		return
	}
	rule, ok := d.ruleOf(rw, r)
	if !ok {
		return
	}
	e, err := d.Automations.Explain(r.Context(), rule.ID, key)
	if d.automationError(rw, "explain automation rule", err) {
		return
	}
	writeJSON(rw, http.StatusOK, e)
}

// serveReplayAutomation fires a rule once more on an event it decided on (body
// {"eventKey":K}): a new generation of its dedupe key, recorded. The answer is the new
// decision.
func (d *server) serveReplayAutomation(rw http.ResponseWriter, r *http.Request) {
	rule, ok := d.ruleOf(rw, r)
	if !ok {
		return
	}
	var req struct {
		EventKey string `json:"eventKey"`
	}
	if !decode(rw, r, 4<<10, &req) {
		return
	}
	key, ok := eventKeyParam(rw, req.EventKey)
	if !ok {
		return
	}
	dec, err := d.Automations.Replay(r.Context(), rule.ID, key, principal(r).ID)
	if d.automationError(rw, "replay automation rule", err) {
		return
	}
	writeJSON(rw, http.StatusOK, dec)
}

// ruleOf reads the rule the path's {id} names among those of the principal's business units
// and notes its unit for the audit line. Another unit's rule answers 404 exactly as one that
// does not exist; ok is false once an answer was written.
func (d *server) ruleOf(rw http.ResponseWriter, r *http.Request) (*automations.Rule, bool) {
	id := r.PathValue("id")
	rule, err := d.Automations.Get(r.Context(), id)
	switch {
	case errors.Is(err, platform.ErrNotFound) || (err == nil && !principal(r).Sees(rule.BusinessUnitID)):
		writeError(rw, http.StatusNotFound, "no automation rule "+strconv.Quote(id))
		return nil, false
	case err != nil:
		d.storageError(rw, "read automation rule", err)
		return nil, false
	}
	noteUnit(r, rule.BusinessUnitID)
	return rule, true
}

// readRule reads a rule definition from the body; unknown fields are refused, naming them.
func readRule(rw http.ResponseWriter, r *http.Request) (automations.NewRule, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxRuleBody))
	if err != nil {
		writeError(rw, http.StatusBadRequest, "body: "+err.Error())
		return automations.NewRule{}, false
	}
	nr, err := automations.ParseRule(body)
	if err != nil {
		writeError(rw, http.StatusBadRequest, err.Error())
		return automations.NewRule{}, false
	}
	return nr, true
}

// eventKeyParam checks an event key given by the caller: 400 naming the field when it is not
// one.
func eventKeyParam(rw http.ResponseWriter, key string) (string, bool) {
	if key == "" {
		writeError(rw, http.StatusBadRequest, "event: want an event key")
		return "", false
	}
	if _, err := platform.ParseEventKey(key); err != nil {
		writeError(rw, http.StatusBadRequest, "event: "+err.Error())
		return "", false
	}
	return key, true
}

// automationError answers err of the automations concern, and reports whether it did:
// invalid input is 400 with the whole message (a CEL error spans lines: the source and a
// caret), an unknown rule or event 404, a rule changed meanwhile 409, anything else 502.
func (d *server) automationError(rw http.ResponseWriter, what string, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, platform.ErrInvalidInput):
		writeError(rw, http.StatusBadRequest, err.Error())
	case errors.Is(err, platform.ErrNotFound):
		writeError(rw, http.StatusNotFound, err.Error())
	case errors.Is(err, platform.ErrConflict):
		writeError(rw, http.StatusConflict, err.Error()+"; read the rule again and retry")
	default:
		d.storageError(rw, what, err)
	}
	return true
}
