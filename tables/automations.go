package tables

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// Automation tables.
const (
	// TableAutomationDecisions holds, per event, one row per rule whose event type matched: what
	// the rule decided and why ("why did this rule (not) fire?").
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

// eventRow is the RowKey of the decided event's row: '~' sorts after every rule id.
const eventRow = "~event"

type decisionEntity struct {
	PartitionKey, RowKey string
	RuleVersion          int32  `json:",omitempty"`
	Outcome              string `json:",omitempty"`
	Detail               string `json:",omitempty"`
	DedupeKey            string `json:",omitempty"`
	Generation           int32  `json:",omitempty"`
	DecidedAt            string `json:",omitempty"`
	DecidedAtType        string `json:"DecidedAt@odata.type,omitempty"`
	Event                string `json:",omitempty"`
	EventBlob            string `json:",omitempty"`
}

// Decisions is the AutomationDecisions table: a partition per event (its escaped key), a row
// per rule, and the event itself in row "~event" (or on the first rule's row: see Put).
type Decisions struct{ t *aztables.Client }

// Decisions returns the namespace's decision log.
func (c *Client) Decisions() *Decisions { return &Decisions{t: c.table(TableAutomationDecisions)} }

// maxDecisionText bounds a decision's free text (a filter error, a dedupe key) well inside a
// property.
const maxDecisionText = 1024

// Put writes ds, all of one event, with the event they were made on: one entity group
// transaction whatever the number of rules (more only past MaxBatchOperations rules). The
// event has a row of its own ("~event"), except when the rules' rows alone fill a
// transaction: then it rides on the first rule's row, which keeps 100 rules one request. A
// row rewritten by a redelivery is replaced.
func (s *Decisions) Put(ctx context.Context, eventKey string, ev DecidedEvent, ds []Decision) error {
	pk := platform.EscapeKey(eventKey)
	actions := make([]aztables.TransactionAction, 0, len(ds)+1)
	onFirst := len(ds) >= MaxBatchOperations
	if !onFirst {
		body, err := json.Marshal(decisionEntity{PartitionKey: pk, RowKey: eventRow, Event: string(ev.Event), EventBlob: ev.Blob})
		if err != nil {
			return err
		}
		actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeInsertReplace, Entity: body})
	}
	for i, d := range ds {
		e := decisionEntity{PartitionKey: pk, RowKey: d.RuleID, RuleVersion: int32(d.RuleVersion),
			Outcome: d.Outcome, Detail: clipText(d.Detail), DedupeKey: clipText(d.DedupeKey), Generation: int32(d.Generation),
			DecidedAt: d.DecidedAt.UTC().Format(timeLayout), DecidedAtType: edmDateTime}
		if onFirst && i == 0 {
			e.Event, e.EventBlob = string(ev.Event), ev.Blob
		}
		body, err := json.Marshal(e)
		if err != nil {
			return err
		}
		actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeInsertReplace, Entity: body})
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
			var e decisionEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, ev, fmt.Errorf("decision row of %s: %w", eventKey, err)
			}
			if e.Event != "" || e.EventBlob != "" { // its own row, or the first rule's (Put)
				ev = DecidedEvent{Event: []byte(e.Event), Blob: e.EventBlob}
			}
			if e.RowKey == eventRow {
				continue
			}
			at, _ := time.Parse(timeLayout, e.DecidedAt)
			out = append(out, Decision{EventKey: eventKey, RuleID: e.RowKey, RuleVersion: int(e.RuleVersion), Outcome: e.Outcome,
				Detail: e.Detail, DedupeKey: e.DedupeKey, Generation: int(e.Generation), DecidedAt: at})
		}
	}
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
