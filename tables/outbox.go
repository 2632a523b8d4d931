package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// Table names of the event substrate, before the namespace prefix.
const (
	TableOutboxIntents    = "OutboxIntents"
	TablePlatformEventLog = "PlatformEventLog"
	TableWatermarks       = "Watermarks"
)

// Outbox is the OutboxIntents table. Each intent lives in the partition of its state
// ("Pending", "Confirmed", "Discarded", "Materialized", "Parked"), keyed by its SourceKey, so the
// materializer reads one partition and the reconciler a key range of another: no table scans.
// A state change writes the new row and then deletes the old one; a crash in between leaves
// both, which every reader tolerates (the later state wins).
type Outbox struct {
	c *Client
	t *aztables.Client
}

// Outbox returns the namespace's outbox.
func (c *Client) Outbox() *Outbox { return &Outbox{c: c, t: c.table(TableOutboxIntents)} }

type intentEntity struct {
	PartitionKey, RowKey string
	SourceKey            string
	Event                string // canonical EntityEvent JSON
	SourceTable          string `json:",omitempty"`
	SourcePartitionKey   string `json:",omitempty"`
	SourceRowKey         string `json:",omitempty"`
	State                string
	Reason               string `json:",omitempty"`
	CreatedAt            string
	CreatedAtType        string `json:"CreatedAt@odata.type"`
}

func toIntentEntity(in *platform.OutboxIntent) (*intentEntity, error) {
	ev, err := json.Marshal(in.Event)
	if err != nil {
		return nil, err
	}
	if len(ev) > MaxInlineSnapshot+4096 {
		return nil, fmt.Errorf("event of %d bytes is too large for an intent row: move its payload to the claim-check first (Worker.AppendIntent does)", len(ev))
	}
	e := &intentEntity{PartitionKey: string(in.State), RowKey: in.SourceKey, SourceKey: in.SourceKey, Event: string(ev),
		State: string(in.State), Reason: in.Reason, CreatedAt: in.CreatedAt.UTC().Format(timeLayout), CreatedAtType: edmDateTime}
	if r := in.SourceRow; r != nil {
		e.SourceTable, e.SourcePartitionKey, e.SourceRowKey = r.Table, r.PartitionKey, r.RowKey
	}
	return e, nil
}

func (e *intentEntity) intent() (*platform.OutboxIntent, error) {
	// The worker's own row: a payloadBlob named as older versions named it is still read.
	ev, err := platform.DecodeStoredEvent([]byte(e.Event))
	if err != nil {
		return nil, fmt.Errorf("intent %s: stored event: %w", e.SourceKey, err)
	}
	in := &platform.OutboxIntent{SourceKey: e.SourceKey, Event: ev, State: platform.IntentState(e.State), Reason: e.Reason}
	if e.SourceTable != "" {
		in.SourceRow = &platform.SourceRow{Table: e.SourceTable, PartitionKey: e.SourcePartitionKey, RowKey: e.SourceRowKey}
	}
	in.CreatedAt, err = parseTime(e.CreatedAt)
	return in, err
}

// Append writes a new Pending intent for ev, under a fresh SourceKey, and returns it.
func (o *Outbox) Append(ctx context.Context, ev *platform.EntityEvent, source *platform.SourceRow) (*platform.OutboxIntent, error) {
	in := &platform.OutboxIntent{SourceKey: platform.NewSourceKey(), Event: ev, SourceRow: source, State: platform.IntentPending, CreatedAt: time.Now().UTC()}
	if err := o.insert(ctx, in); err != nil {
		return nil, fmt.Errorf("append intent: %w", err)
	}
	return in, nil
}

func (o *Outbox) insert(ctx context.Context, in *platform.OutboxIntent) error {
	e, err := toIntentEntity(in)
	if err != nil {
		return err
	}
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = o.t.AddEntity(ctx, body, nil)
	return storage.Translate(err)
}

// Get finds intent key in whichever state it is. A key found in two states (a crash during a
// move) is reported in the later one.
func (o *Outbox) Get(ctx context.Context, key string) (*platform.OutboxIntent, error) {
	var found *platform.OutboxIntent
	for _, st := range []platform.IntentState{platform.IntentPending, platform.IntentConfirmed, platform.IntentDiscarded, platform.IntentMaterialized, platform.IntentParked} {
		resp, err := o.t.GetEntity(ctx, string(st), key, nil)
		if err != nil {
			if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
				continue
			}
			return nil, fmt.Errorf("read intent %s: %w", key, err)
		}
		var e intentEntity
		if err := json.Unmarshal(resp.Value, &e); err != nil {
			return nil, err
		}
		if found, err = e.intent(); err != nil {
			return nil, err
		}
	}
	if found == nil {
		return nil, fmt.Errorf("intent %s: %w", key, platform.ErrNotFound)
	}
	return found, nil
}

// ErrIntentSettled: the intent was already decided the other way (confirming a discarded one,
// or discarding one that was confirmed).
var ErrIntentSettled = errors.New("intent already settled")

// Move moves intent key from Pending to Confirmed or Discarded, with a reason; moved says
// whether this call moved it. Moving it where it already is succeeds, moved false; moving it
// the other way is ErrIntentSettled.
func (o *Outbox) Move(ctx context.Context, key string, to platform.IntentState, reason string) (in *platform.OutboxIntent, moved bool, err error) {
	in, err = o.Get(ctx, key)
	if err != nil {
		return nil, false, err
	}
	switch {
	case in.State == to || (to == platform.IntentConfirmed && in.State == platform.IntentMaterialized):
		return in, false, o.cleanup(ctx, in)
	case in.State != platform.IntentPending:
		return in, false, fmt.Errorf("%w: %s is %s", ErrIntentSettled, key, in.State)
	}
	err = o.transition(ctx, in, to, reason)
	return in, err == nil, err
}

// transition writes in under state to, then deletes its row in its present state.
func (o *Outbox) transition(ctx context.Context, in *platform.OutboxIntent, to platform.IntentState, reason string) error {
	from := in.State
	in.State, in.Reason = to, reason
	if err := o.insert(ctx, in); err != nil && !errors.Is(err, platform.ErrExists) {
		in.State = from
		return fmt.Errorf("move intent %s to %s: %w", in.SourceKey, to, err)
	}
	if _, err := o.t.DeleteEntity(ctx, string(from), in.SourceKey, nil); err != nil {
		if err = storage.Translate(err); !errors.Is(err, platform.ErrNotFound) {
			return fmt.Errorf("move intent %s from %s: %w", in.SourceKey, from, err)
		}
	}
	return nil
}

// cleanup deletes the rows an interrupted move left in earlier states.
func (o *Outbox) cleanup(ctx context.Context, in *platform.OutboxIntent) error {
	earlier := map[platform.IntentState][]platform.IntentState{
		platform.IntentConfirmed:    {platform.IntentPending},
		platform.IntentDiscarded:    {platform.IntentPending},
		platform.IntentMaterialized: {platform.IntentPending, platform.IntentConfirmed},
		platform.IntentParked:       {platform.IntentPending, platform.IntentConfirmed},
	}[in.State]
	for _, st := range earlier {
		if _, err := o.t.DeleteEntity(ctx, string(st), in.SourceKey, nil); err != nil {
			if err = storage.Translate(err); !errors.Is(err, platform.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// MarkMaterialized moves a Confirmed intent to Materialized.
func (o *Outbox) MarkMaterialized(ctx context.Context, in *platform.OutboxIntent) error {
	return o.transition(ctx, in, platform.IntentMaterialized, "")
}

// Park moves intent in to Parked with the reason its event can never be published: left for
// support, out of the way of the intents behind it.
func (o *Outbox) Park(ctx context.Context, in *platform.OutboxIntent, reason string) error {
	return o.transition(ctx, in, platform.IntentParked, reason)
}

// ParkedIntent is a row List could not read: it was moved to Parked with Reason.
type ParkedIntent struct {
	SourceKey, Reason string
}

// List reads up to limit intents in state st with SourceKey below before ("" for all), oldest
// first. A row that cannot be read is moved to Parked with the reason (ListParked's parked),
// so that one bad row never stops the partition.
func (o *Outbox) List(ctx context.Context, st platform.IntentState, before string, limit int) ([]*platform.OutboxIntent, error) {
	out, _, err := o.ListParked(ctx, st, before, limit)
	return out, err
}

// ListParked is List, and also says which rows it parked on the way (they do not count
// toward limit).
func (o *Outbox) ListParked(ctx context.Context, st platform.IntentState, before string, limit int) ([]*platform.OutboxIntent, []ParkedIntent, error) {
	filter := "PartitionKey eq " + odataQuote(string(st))
	if before != "" {
		filter += " and RowKey lt " + odataQuote(before)
	}
	pager := o.t.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Top: to.Ptr(int32(min(limit, 1000)))})
	var out []*platform.OutboxIntent
	var parked []ParkedIntent
	for pager.More() && len(out) < limit {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
				return nil, nil, nil
			}
			return nil, parked, fmt.Errorf("list %s intents: %w", st, err)
		}
		for _, raw := range page.Entities {
			var e intentEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, parked, fmt.Errorf("list %s intents: %w", st, err)
			}
			in, err := e.intent()
			if err != nil {
				reason := "unreadable: " + err.Error()
				if err := o.parkRow(ctx, &e, reason); err != nil {
					return nil, parked, err
				}
				parked = append(parked, ParkedIntent{SourceKey: e.RowKey, Reason: reason})
				continue
			}
			if len(out) < limit {
				out = append(out, in)
			}
		}
	}
	return out, parked, nil
}

// parkRow moves a row that cannot be read as an intent to Parked, as it is, with reason.
func (o *Outbox) parkRow(ctx context.Context, e *intentEntity, reason string) error {
	from := e.PartitionKey
	parked := *e
	parked.PartitionKey, parked.State, parked.Reason = string(platform.IntentParked), string(platform.IntentParked), truncateReason(reason)
	parked.CreatedAtType = edmDateTime
	if t, err := parseTime(parked.CreatedAt); err != nil || t.IsZero() {
		parked.CreatedAt = time.Now().UTC().Format(timeLayout)
	}
	body, err := json.Marshal(&parked)
	if err != nil {
		return err
	}
	if _, err := o.t.AddEntity(ctx, body, nil); err != nil {
		if err = storage.Translate(err); !errors.Is(err, platform.ErrExists) {
			return fmt.Errorf("park intent row %s: %w", e.RowKey, err)
		}
	}
	if _, err := o.t.DeleteEntity(ctx, from, e.RowKey, nil); err != nil {
		if err = storage.Translate(err); !errors.Is(err, platform.ErrNotFound) {
			return fmt.Errorf("park intent row %s: remove it from %s: %w", e.RowKey, from, err)
		}
	}
	return nil
}

// truncateReason keeps a reason within a table property, whatever the error quoted.
func truncateReason(s string) string {
	const limit = 4096
	if len(s) <= limit {
		return s
	}
	for i := limit; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return ""
}

// EntityAction is one operation of a service's entity group transaction.
type EntityAction struct {
	Kind    aztables.TransactionType // aztables.TransactionTypeAdd, UpdateMerge, UpsertReplace, Delete, …
	Entity  []byte                   // the entity's JSON, PartitionKey and RowKey included
	IfMatch ETag                     // optional
}

// outboxMarkerPrefix starts the RowKey of the marker row an intent commits with.
const outboxMarkerPrefix = "platform-outbox-"

// AppendWithEntities is the table-transactional outbox: the service's entity actions and a
// marker row for the event commit in one entity group transaction on the service's table, so
// the event exists if and only if the mutation committed. The intent is reserved first
// (Pending, its source row the marker); the transaction's success confirms it; a transaction
// the service refused deletes it again; an outcome that cannot be known is left to the
// reconciler, whose probe looks for the marker.
func (o *Outbox) AppendWithEntities(ctx context.Context, table, partitionKey string, actions []EntityAction, ev *platform.EntityEvent) (*platform.OutboxIntent, error) {
	if len(actions)+1 > MaxBatchOperations {
		return nil, fmt.Errorf("%w: %d operations and the outbox marker, at most %d", ErrBatchLimit, len(actions), MaxBatchOperations)
	}
	for i, a := range actions {
		var keys struct{ PartitionKey, RowKey string }
		if err := json.Unmarshal(a.Entity, &keys); err != nil {
			return nil, fmt.Errorf("action %d: entity JSON: %w", i, err)
		}
		if keys.PartitionKey != partitionKey {
			return nil, fmt.Errorf("%w: action %d is in partition %q, the transaction in %q (one partition only)", ErrBatchLimit, i, keys.PartitionKey, partitionKey)
		}
	}
	sourceKey := platform.NewSourceKey()
	marker, _ := json.Marshal(map[string]string{"PartitionKey": partitionKey, "RowKey": outboxMarkerPrefix + sourceKey, "SourceKey": sourceKey})
	batch := make([]aztables.TransactionAction, 0, len(actions)+1)
	for _, a := range actions {
		ta := aztables.TransactionAction{ActionType: a.Kind, Entity: a.Entity}
		if a.IfMatch != "" {
			tag := azcore.ETag(a.IfMatch)
			ta.IfMatch = &tag
		}
		batch = append(batch, ta)
	}
	batch = append(batch, aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: marker})
	if err := checkBatch(batch); err != nil {
		return nil, err
	}
	in := &platform.OutboxIntent{SourceKey: sourceKey, Event: ev, State: platform.IntentPending, CreatedAt: time.Now().UTC(),
		SourceRow: &platform.SourceRow{Table: table, PartitionKey: partitionKey, RowKey: outboxMarkerPrefix + sourceKey}}
	if err := o.insert(ctx, in); err != nil {
		return nil, fmt.Errorf("append intent: %w", err)
	}
	_, err := o.c.svc.NewClient(table).SubmitTransaction(ctx, batch, nil)
	if err != nil {
		// A refused transaction comes back as a 4xx, or (an operation in it failed) as the
		// batch's own 202 with the failure inside; either way nothing of it committed.
		var re *azcore.ResponseError
		if errors.As(err, &re) && (re.StatusCode == 202 || re.StatusCode >= 400 && re.StatusCode < 500) {
			// The service refused the transaction: nothing of it committed, so no event either.
			if _, derr := o.t.DeleteEntity(ctx, string(platform.IntentPending), sourceKey, nil); derr != nil {
				return nil, errors.Join(fmt.Errorf("transaction: %w", storage.Translate(err)), fmt.Errorf("remove its intent (the reconciler will discard it): %w", storage.Translate(derr)))
			}
			return nil, fmt.Errorf("transaction refused, no event: %w", storage.Translate(err))
		}
		return in, fmt.Errorf("transaction outcome unknown; intent %s stays Pending for the reconciler: %w", sourceKey, storage.Translate(err))
	}
	in, _, err = o.Move(ctx, sourceKey, platform.IntentConfirmed, "transaction committed")
	return in, err
}

// RowExists reports whether row exists: the built-in probe of the reconciler.
func (c *Client) RowExists(ctx context.Context, r platform.SourceRow) (bool, error) {
	_, err := c.svc.NewClient(r.Table).GetEntity(ctx, r.PartitionKey, r.RowKey, nil)
	if err == nil {
		return true, nil
	}
	if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
		return false, nil
	}
	return false, err
}
