package tables

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// TableWebhookDeliveries is the delivery log: an index of each endpoint's deliveries, newest
// first.
const TableWebhookDeliveries = "WebhookDeliveries"

// Deliveries is the WebhookDeliveries table: a row per webhook delivery, in its endpoint's
// partition, keyed by the inverted instant the delivery was created (a partition reads newest
// first), and carrying what its log shows — never the URL or the body. The delivery itself
// (OutgoingMessages, keyed by the delivery key) stays the authority: a row is rewritten after
// each step the distributor records, so it may lag that by one step when a write fails.
//
// Without it an endpoint's latest deliveries would be a range scan over every delivery it ever
// had in OutgoingMessages, in event-key order, not time.
type Deliveries struct{ t *aztables.Client }

// Deliveries returns the namespace's delivery log.
func (c *Client) Deliveries() *Deliveries { return &Deliveries{t: c.table(TableWebhookDeliveries)} }

// Delivery is one line of an endpoint's delivery log.
type Delivery struct {
	DeliveryKey string                `json:"deliveryKey"` // webhook:{endpointId}:{eventKey}, the Idempotency-Key
	EndpointID  string                `json:"endpointId"`
	EventKey    string                `json:"eventKey"`
	State       platform.MessageState `json:"state"`
	Attempts    int                   `json:"attempts"`
	// ResponseCode is the receiver's status on success ("http {code}" as the provider id),
	// 0 otherwise: LastError then says what the last attempt met.
	ResponseCode int       `json:"responseCode,omitempty"`
	LastError    string    `json:"lastError,omitempty"`
	LatencyMs    int64     `json:"latencyMs,omitempty"` // of the last attempt
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

type deliveryEntity struct {
	PartitionKey, RowKey string
	DeliveryKey          string
	EventKey             string
	State                string
	Attempts             int32
	ProviderId           string `json:",omitempty"`
	LastError            string `json:",omitempty"`
	LatencyMs            int32  `json:",omitempty"`
	CreatedAt            string
	CreatedAtType        string `json:"CreatedAt@odata.type"`
	UpdatedAt            string
	UpdatedAtType        string `json:"UpdatedAt@odata.type"`
}

// deliveryRowKey orders an endpoint's deliveries newest first: the inverted creation instant,
// then a hash of the key for two created in the same 100 ns.
func deliveryRowKey(createdAt time.Time, key string) string {
	sum := sha256.Sum256([]byte(key))
	return fmt.Sprintf("%019d-%s", math.MaxInt64-createdAt.UnixNano(), hex.EncodeToString(sum[:8]))
}

// Put writes m's line in its endpoint's log, as m is now. A message that is no delivery, or
// was stored without a creation time (by an earlier version), has none.
func (s *Deliveries) Put(ctx context.Context, m *platform.OutgoingMessage) error {
	endpointID, eventKey, ok := platform.ParseDeliveryKey(m.Key)
	if !ok || m.CreatedAt.IsZero() {
		return nil
	}
	body, err := json.Marshal(deliveryEntity{PartitionKey: endpointID, RowKey: deliveryRowKey(m.CreatedAt, m.Key),
		DeliveryKey: m.Key, EventKey: eventKey, State: string(m.State), Attempts: int32(m.Attempts),
		ProviderId: m.ProviderID, LastError: m.LastError, LatencyMs: int32(min(m.LastLatencyMs, math.MaxInt32)),
		CreatedAt: m.CreatedAt.UTC().Format(timeLayout), CreatedAtType: edmDateTime,
		UpdatedAt: time.Now().UTC().Format(timeLayout), UpdatedAtType: edmDateTime})
	if err != nil {
		return err
	}
	if _, err := s.t.UpsertEntity(ctx, body, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace}); err != nil {
		return fmt.Errorf("delivery log of %s: %w", m.Key, storage.Translate(err))
	}
	return nil
}

// DeliveriesOptions selects lines of a delivery log.
type DeliveriesOptions struct {
	Limit  int  // at most this many (1-1000)
	Failed bool // only deliveries in state Failed
}

// List reads the latest deliveries of endpointID, newest first. Only Failed, the table
// service filters the partition (it reads the endpoint's log until it has Limit of them).
func (s *Deliveries) List(ctx context.Context, endpointID string, o DeliveriesOptions) ([]Delivery, error) {
	if o.Limit < 1 || o.Limit > 1000 {
		return nil, fmt.Errorf("%w: limit: want 1-1000, got %d", platform.ErrInvalidInput, o.Limit)
	}
	filter := "PartitionKey eq " + odataQuote(endpointID)
	if o.Failed {
		filter += " and State eq " + odataQuote(string(platform.MessageFailed))
	}
	pager := s.t.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Top: to.Ptr(int32(o.Limit))})
	out := []Delivery{}
	for pager.More() && len(out) < o.Limit {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
				return out, nil
			}
			return nil, fmt.Errorf("delivery log of endpoint %s: %w", endpointID, err)
		}
		for _, raw := range page.Entities {
			var e deliveryEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, err
			}
			d := Delivery{DeliveryKey: e.DeliveryKey, EndpointID: e.PartitionKey, EventKey: e.EventKey, State: platform.MessageState(e.State),
				Attempts: int(e.Attempts), LastError: e.LastError, LatencyMs: int64(e.LatencyMs)}
			if code, ok := strings.CutPrefix(e.ProviderId, "http "); ok {
				d.ResponseCode, _ = strconv.Atoi(code)
			}
			d.CreatedAt, _ = parseTime(e.CreatedAt)
			d.UpdatedAt, _ = parseTime(e.UpdatedAt)
			out = append(out, d)
		}
	}
	return out[:min(len(out), o.Limit)], nil
}
