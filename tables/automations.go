package tables

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// Automation tables.
const (
	// TableAutomationDecisions holds, per event, what each rule whose event type matched
	// decided and why ("why did this rule (not) fire?"): see Decisions.
	TableAutomationDecisions = "AutomationDecisions"
	// TableAutomationClaims holds one insert-only row per (rule, generation, dedupe key): the
	// rule's one effect for that key.
	TableAutomationClaims = "AutomationClaims"
)

// Decision is what one rule decided for one event.
type Decision struct {
	EventKey    string    `json:"eventKey"`
	RuleID      string    `json:"ruleId"`
	RuleVersion int       `json:"ruleVersion"`
	Outcome     string    `json:"outcome"`
	Detail      string    `json:"detail,omitempty"`    // the effect's id, the filter's error, the first effect, …
	DedupeKey   string    `json:"dedupeKey,omitempty"` // as evaluated (clipped for display)
	Generation  int       `json:"generation,omitempty"`
	DecidedAt   time.Time `json:"decidedAt"`
}

// DecidedEvent is the event a set of decisions was made on, kept beside them so that a
// decision can be explained and replayed later: Event is its canonical JSON, or empty when
// the JSON lives in blob Blob (event-payloads: over a property's limit).
type DecidedEvent struct {
	Event []byte
	Blob  string
}

// Decisions is the AutomationDecisions table: a partition per event (its escaped key) whose
// row "d0" holds the event as decided (properties Event, EventBlob) and one property per
// decision, named by the rule's id (a replay's by {ruleId}_g{n}), its value the decision as
// compact JSON. Past propsPerRow decisions, rows "d1", "d2"… hold the rest.
//
// Why properties, not a row per rule: the SDK encodes every row of a transaction as a
// request of its own, and with 100 rules that encoding cost about 80 µs of CPU per row
// (make bench's automations phase, profiled) — eight times the whole evaluation. A decision
// is still addressed by (event, rule): one partition read lists them all.
type Decisions struct{ t *aztables.Client }

// Decisions returns the namespace's decision log.
func (c *Client) Decisions() *Decisions { return &Decisions{t: c.table(TableAutomationDecisions)} }

// maxDecisionText bounds a decision's free text (a filter error, a dedupe key) well inside a
// property.
const maxDecisionText = 1024

// propsPerRow is how many decisions one row holds: an entity has at most 252 properties,
// PartitionKey, RowKey, Timestamp, Event and EventBlob among them.
const propsPerRow = 240

// decisionValue is a decision as its property holds it.
type decisionValue struct {
	Version    int    `json:"v"`
	Outcome    string `json:"o"`
	Detail     string `json:"d,omitempty"`
	DedupeKey  string `json:"k,omitempty"`
	Generation int    `json:"g,omitempty"`
	DecidedAt  string `json:"t"`
}

// propertyOf names ruleID's decision property: a replay's {ruleId}~g{n} as {ruleId}_g{n}
// (a property name is an identifier).
func propertyOf(ruleID string) string { return strings.Replace(ruleID, "~", "_", 1) }

// ruleOf reads a property name back; ok is false for a property that is no decision.
func ruleOf(property string) (ruleID string, ok bool) {
	if !strings.HasPrefix(property, "rul") || strings.Contains(property, "@") {
		return "", false
	}
	return strings.Replace(property, "_", "~", 1), true
}

// Put writes ds, all of one event, with the event they were made on: one request (one
// upsert, or one transaction past propsPerRow decisions). Rows are merged, not replaced: a
// decision written again (a redelivery) replaces its own property only, and a replay's
// decision joins the others.
func (s *Decisions) Put(ctx context.Context, eventKey string, ev DecidedEvent, ds []Decision) error {
	pk := platform.EscapeKey(eventKey)
	var rows []map[string]any
	for i, d := range ds {
		if i%propsPerRow == 0 {
			rows = append(rows, map[string]any{"PartitionKey": pk, "RowKey": fmt.Sprintf("d%d", len(rows))})
		}
		v, err := json.Marshal(decisionValue{Version: d.RuleVersion, Outcome: d.Outcome, Detail: clipText(d.Detail),
			DedupeKey: clipText(d.DedupeKey), Generation: d.Generation, DecidedAt: d.DecidedAt.UTC().Format(timeLayout)})
		if err != nil {
			return err
		}
		rows[len(rows)-1][propertyOf(d.RuleID)] = string(v)
	}
	if len(rows) == 0 {
		rows = append(rows, map[string]any{"PartitionKey": pk, "RowKey": "d0"})
	}
	if len(ev.Event) > 0 {
		rows[0]["Event"] = string(ev.Event)
	}
	if ev.Blob != "" {
		rows[0]["EventBlob"] = ev.Blob
	}
	actions := make([]aztables.TransactionAction, 0, len(rows))
	for _, r := range rows {
		body, err := json.Marshal(r)
		if err != nil {
			return err
		}
		actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeInsertMerge, Entity: body})
	}
	if len(actions) == 1 {
		if err := checkEntity(actions[0].Entity); err != nil {
			return fmt.Errorf("decisions of %s: %w", eventKey, err)
		}
		if _, err := s.t.UpsertEntity(ctx, actions[0].Entity, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeMerge}); err != nil {
			return fmt.Errorf("decisions of %s: %w", eventKey, storage.Translate(err))
		}
		return nil
	}
	groups, err := splitBatch(actions)
	if err != nil {
		return fmt.Errorf("decisions of %s: %w", eventKey, err)
	}
	for _, g := range groups {
		if _, err := s.t.SubmitTransaction(ctx, g, nil); err != nil {
			return fmt.Errorf("decisions of %s: %w", eventKey, storage.Translate(err))
		}
	}
	return nil
}

// List reads the decisions made on eventKey, by rule id, and the event they were made on
// (nil Event and empty Blob: none recorded). No decision is an empty list.
func (s *Decisions) List(ctx context.Context, eventKey string) ([]Decision, DecidedEvent, error) {
	filter := "PartitionKey eq " + odataQuote(platform.EscapeKey(eventKey))
	pager := s.t.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter})
	out := []Decision{}
	var ev DecidedEvent
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
				return out, ev, nil
			}
			return nil, ev, fmt.Errorf("read decisions of %s: %w", eventKey, err)
		}
		for _, raw := range page.Entities {
			var props map[string]any
			if err := json.Unmarshal(raw, &props); err != nil {
				return nil, ev, fmt.Errorf("decision row of %s: %w", eventKey, err)
			}
			if e, ok := props["Event"].(string); ok {
				ev.Event = []byte(e)
			}
			if b, ok := props["EventBlob"].(string); ok {
				ev.Blob = b
			}
			for name, value := range props {
				ruleID, ok := ruleOf(name)
				text, isText := value.(string)
				if !ok || !isText {
					continue
				}
				var v decisionValue
				if err := json.Unmarshal([]byte(text), &v); err != nil {
					return nil, ev, fmt.Errorf("decision %s of %s: %w", name, eventKey, err)
				}
				at, _ := time.Parse(timeLayout, v.DecidedAt)
				out = append(out, Decision{EventKey: eventKey, RuleID: ruleID, RuleVersion: v.Version, Outcome: v.Outcome,
					Detail: v.Detail, DedupeKey: v.DedupeKey, Generation: v.Generation, DecidedAt: at})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RuleID < out[j].RuleID })
	return out, ev, nil
}

// Claim is a rule's one effect for one dedupe key (in one generation): the first event to
// claim it owns it, forever.
type Claim struct {
	RuleID     string    `json:"ruleId"`
	Generation int       `json:"generation"`
	DedupeKey  string    `json:"dedupeKey"` // as evaluated (clipped for display; the row key holds its hash)
	EventKey   string    `json:"eventKey"`  // the event that claimed it
	EffectID   string    `json:"effectId"`  // the job, delivery, run or event it fired
	ClaimedAt  time.Time `json:"claimedAt"`
}

type claimEntity struct {
	PartitionKey, RowKey string
	DedupeKey            string
	EventKey             string
	EffectID             string
	ClaimedAt            string
	ClaimedAtType        string `json:"ClaimedAt@odata.type"`
}

// Claims is the AutomationClaims table: a partition per rule, a row per (generation, dedupe
// key hash), written only by insert. A dedupe key may hold any character (Tables refuse some
// in a key): the row key is its SHA-256.
type Claims struct{ t *aztables.Client }

// Claims returns the namespace's claim table.
func (c *Client) Claims() *Claims { return &Claims{t: c.table(TableAutomationClaims)} }

// ClaimRowKey is the row of (generation, dedupeKey) in its rule's partition.
func ClaimRowKey(generation int, dedupeKey string) string {
	sum := sha256.Sum256([]byte(dedupeKey))
	return fmt.Sprintf("g%06d-%s", generation, hex.EncodeToString(sum[:16]))
}

// Take inserts c. When the key was claimed before, it returns that claim and
// platform.ErrExists: the caller compares its event key to tell its own earlier claim (a
// redelivery) from another event's.
func (s *Claims) Take(ctx context.Context, c *Claim) (*Claim, error) {
	body, err := json.Marshal(claimEntity{PartitionKey: c.RuleID, RowKey: ClaimRowKey(c.Generation, c.DedupeKey),
		DedupeKey: clipText(c.DedupeKey), EventKey: c.EventKey, EffectID: c.EffectID,
		ClaimedAt: c.ClaimedAt.UTC().Format(timeLayout), ClaimedAtType: edmDateTime})
	if err != nil {
		return nil, err
	}
	_, err = s.t.AddEntity(ctx, body, nil)
	if err == nil {
		return c, nil
	}
	if err = storage.Translate(err); !errors.Is(err, platform.ErrExists) {
		return nil, fmt.Errorf("claim %s for rule %s: %w", ClaimRowKey(c.Generation, c.DedupeKey), c.RuleID, err)
	}
	first, gerr := s.Get(ctx, c.RuleID, c.Generation, c.DedupeKey)
	if gerr != nil {
		return nil, fmt.Errorf("read the claim that exists: %w", gerr)
	}
	return first, platform.ErrExists
}

// Get reads the claim of (ruleID, generation, dedupeKey); platform.ErrNotFound when none.
func (s *Claims) Get(ctx context.Context, ruleID string, generation int, dedupeKey string) (*Claim, error) {
	resp, err := s.t.GetEntity(ctx, ruleID, ClaimRowKey(generation, dedupeKey), nil)
	if err != nil {
		return nil, storage.Translate(err)
	}
	var e claimEntity
	if err := json.Unmarshal(resp.Value, &e); err != nil {
		return nil, err
	}
	at, _ := time.Parse(timeLayout, e.ClaimedAt)
	return &Claim{RuleID: ruleID, Generation: generation, DedupeKey: e.DedupeKey, EventKey: e.EventKey, EffectID: e.EffectID, ClaimedAt: at}, nil
}

// clipText bounds a free text kept in a row.
func clipText(s string) string {
	if len(s) <= maxDecisionText {
		return s
	}
	n := maxDecisionText
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
