package tables

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
// row "d0" holds the event as decided (properties Event, EventBlob) and its decisions, as a
// JSON array of compact objects (one per rule) in property Decisions — continued in
// Decisions1, Decisions2… (DecisionChunks says how many), each within a property's limit, and
// in rows "d1", "d2"… past a row's. A replay's decision is a property of its own,
// Replay_{ruleId}_g{n}. Rows are merged, not replaced: a replay's decision joins the others.
//
// Why not a row per rule: the SDK encodes every row of a transaction as a request of its
// own, and with 100 rules that cost about 80 µs of CPU per row (make bench's automations
// phase, profiled), eight times the whole evaluation; a property per rule still cost the SDK
// a map entry each way. One string property is one value to it. A decision is still
// addressed by (event, rule): one partition read lists an event's.
type Decisions struct{ t *aztables.Client }

// Decisions returns the namespace's decision log.
func (c *Client) Decisions() *Decisions { return &Decisions{t: c.table(TableAutomationDecisions)} }

// maxDecisionText bounds a decision's free text (a filter error, a dedupe key) well inside a
// property.
const maxDecisionText = 1024

// Sizes of the packing, in bytes of UTF-8, which Azure stores as UTF-16 — at most twice as
// many bytes: a chunk stays within a string property (30,000 bytes of UTF-8 are at most 60,000
// of UTF-16, under 64 KiB), a row within an entity's 1 MiB (450,000 of UTF-8, at most 900,000).
const (
	maxChunkBytes       = 30_000
	maxDecisionRowBytes = 450_000
)

// decisionValue is one decision as stored.
type decisionValue struct {
	RuleID     string `json:"r"`
	Version    int    `json:"v"`
	Outcome    string `json:"o"`
	Detail     string `json:"d,omitempty"`
	DedupeKey  string `json:"k,omitempty"`
	Generation int    `json:"g,omitempty"`
	DecidedAt  string `json:"t,omitempty"` // empty: the row's DecidedAt
}

// appendDecision appends d as its JSON object (decisionValue's form), written by hand: an
// event's decisions are written for every event, a hundred of them under a hundred rules, and
// encoding/json's reflection was most of their cost. The time is left out when it is the
// row's.
func appendDecision(b []byte, d Decision, rowTime time.Time) []byte {
	b = append(b, `{"r":`...)
	b = appendJSONString(b, d.RuleID)
	b = append(b, `,"v":`...)
	b = strconv.AppendInt(b, int64(d.RuleVersion), 10)
	b = append(b, `,"o":`...)
	b = appendJSONString(b, d.Outcome)
	if d.Detail != "" {
		b = append(b, `,"d":`...)
		b = appendJSONString(b, clipText(d.Detail))
	}
	if d.DedupeKey != "" {
		b = append(b, `,"k":`...)
		b = appendJSONString(b, clipText(d.DedupeKey))
	}
	if d.Generation != 0 {
		b = append(b, `,"g":`...)
		b = strconv.AppendInt(b, int64(d.Generation), 10)
	}
	if at := d.DecidedAt.UTC(); !at.Equal(rowTime) {
		b = append(b, `,"t":"`...)
		b = at.AppendFormat(b, timeLayout)
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string (invalid UTF-8 replaced, as encoding/json does).
func appendJSONString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func chunkProperty(i int) string {
	if i == 0 {
		return "Decisions"
	}
	return fmt.Sprintf("Decisions%d", i)
}

const replayPrefix = "Replay_"

// Put writes ds, all of one event, with the event they were made on: one request (an
// upsert; a transaction only past a row's worth). A decision of a replay (RuleID
// {ruleId}~g{n}) is a property of its own, so it joins the event's others.
func (s *Decisions) Put(ctx context.Context, eventKey string, ev DecidedEvent, ds []Decision) error {
	pk := platform.EscapeKey(eventKey)
	rows := []map[string]any{{"PartitionKey": pk, "RowKey": "d0"}}
	if len(ev.Event) > 0 {
		rows[0]["Event"] = string(ev.Event)
	}
	if ev.Blob != "" {
		rows[0]["EventBlob"] = ev.Blob
	}
	var chunk bytes.Buffer
	chunks, rowBytes := 0, len(ev.Event)
	flush := func() {
		if chunk.Len() == 0 {
			return
		}
		chunk.WriteByte(']')
		row := rows[len(rows)-1]
		row[chunkProperty(chunks)] = chunk.String()
		chunks++
		row["DecisionChunks"] = chunks
		chunk.Reset()
	}
	// Each row's DecidedAt is its first decision's; a decision decided then omits its own. A
	// replay's decision always carries its own, and leaves the row's as it was.
	var rowTime time.Time
	for _, d := range ds {
		if !strings.Contains(d.RuleID, "~g") {
			rowTime = d.DecidedAt.UTC()
			rows[0]["DecidedAt"] = rowTime.Format(timeLayout)
			break
		}
	}
	for _, d := range ds {
		if base, gen, ok := strings.Cut(d.RuleID, "~g"); ok {
			rows[0][replayPrefix+base+"_g"+gen] = string(appendDecision(nil, d, time.Time{}))
			continue
		}
		v := appendDecision(nil, d, rowTime)
		if chunk.Len()+len(v)+2 > maxChunkBytes {
			flush()
		}
		if rowBytes+len(v) > maxDecisionRowBytes {
			flush()
			rows = append(rows, map[string]any{"PartitionKey": pk, "RowKey": fmt.Sprintf("d%d", len(rows)), "DecidedAt": rowTime.Format(timeLayout)})
			chunks, rowBytes = 0, 0
		}
		if chunk.Len() == 0 {
			chunk.WriteByte('[')
		} else {
			chunk.WriteByte(',')
		}
		chunk.Write(v)
		rowBytes += len(v)
	}
	flush()
	if chunks > 0 || len(rows) > 1 {
		rows[0]["DecisionRows"] = len(rows) // rows past it are a longer write's leftovers
	}
	// Every property is within its limit by construction (chunks and clipped texts), and
	// every row within an entity's: no row needs checking.
	if len(rows) == 1 {
		body, err := json.Marshal(rows[0])
		if err != nil {
			return err
		}
		if _, err := s.t.UpsertEntity(ctx, body, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeMerge}); err != nil {
			return fmt.Errorf("decisions of %s: %w", eventKey, storage.Translate(err))
		}
		return nil
	}
	actions := make([]aztables.TransactionAction, 0, len(rows))
	for _, r := range rows {
		body, err := json.Marshal(r)
		if err != nil {
			return err
		}
		actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeInsertMerge, Entity: body})
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
	add := func(v decisionValue, rowTime string) {
		if v.DecidedAt == "" {
			v.DecidedAt = rowTime
		}
		at, _ := time.Parse(timeLayout, v.DecidedAt)
		out = append(out, Decision{EventKey: eventKey, RuleID: v.RuleID, RuleVersion: v.Version, Outcome: v.Outcome,
			Detail: v.Detail, DedupeKey: v.DedupeKey, Generation: v.Generation, DecidedAt: at})
	}
	var rows []map[string]any
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
			rows = append(rows, props)
		}
	}
	current := 1 // rows d0…d{current-1}, as d0 says
	for _, props := range rows {
		if props["RowKey"] == "d0" {
			if n, ok := props["DecisionRows"].(float64); ok {
				current = int(n)
			}
		}
	}
	for _, props := range rows {
		var row int
		if _, err := fmt.Sscanf(fmt.Sprint(props["RowKey"]), "d%d", &row); err != nil || row >= current {
			continue
		}
		rowTime, _ := props["DecidedAt"].(string)
		if e, ok := props["Event"].(string); ok {
			ev.Event = []byte(e)
		}
		if b, ok := props["EventBlob"].(string); ok {
			ev.Blob = b
		}
		n, _ := props["DecisionChunks"].(float64) // chunks past it are a longer write's leftovers
		for i := range int(n) {
			text, _ := props[chunkProperty(i)].(string)
			var vs []decisionValue
			if err := json.Unmarshal([]byte(text), &vs); err != nil {
				return nil, ev, fmt.Errorf("decisions of %s, %s: %w", eventKey, chunkProperty(i), err)
			}
			for _, v := range vs {
				add(v, rowTime)
			}
		}
		for name, value := range props {
			text, ok := value.(string)
			if !ok || !strings.HasPrefix(name, replayPrefix) {
				continue
			}
			var v decisionValue
			if err := json.Unmarshal([]byte(text), &v); err != nil {
				return nil, ev, fmt.Errorf("decision %s of %s: %w", name, eventKey, err)
			}
			add(v, rowTime)
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

// Release deletes claim c, which its event took and whose effect was refused for good: the
// key may fire again. A claim already gone is no error.
func (s *Claims) Release(ctx context.Context, c *Claim) error {
	_, err := s.t.DeleteEntity(ctx, c.RuleID, ClaimRowKey(c.Generation, c.DedupeKey), nil)
	if err = storage.Translate(err); err != nil && !errors.Is(err, platform.ErrNotFound) {
		return fmt.Errorf("release claim %s of rule %s: %w", ClaimRowKey(c.Generation, c.DedupeKey), c.RuleID, err)
	}
	return nil
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
