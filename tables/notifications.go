package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
)

// Table names of the notification platform, before the namespace prefix.
const (
	TableNotificationJobs = "NotificationJobs"
	TableOutgoingMessages = "OutgoingMessages"
	TableCancellations    = "NotificationCancellations"
	maxTrail              = 30
	edmDateTime           = "Edm.DateTime"
	edmInt64              = "Edm.Int64"
	singleRowKey          = ""
	timeLayout            = "2006-01-02T15:04:05.0000000Z"
)

// ETag is a row version for conditional updates.
type ETag string

// Jobs is the NotificationJobs table: one row per job, keyed by the job key.
type Jobs struct{ t *aztables.Client }

// Messages is the OutgoingMessages table: one row per (job, channel, recipient).
type Messages struct{ t *aztables.Client }

// Jobs returns the namespace's NotificationJobs store.
func (c *Client) Jobs() *Jobs { return &Jobs{t: c.table(TableNotificationJobs)} }

// Messages returns the namespace's OutgoingMessages store.
func (c *Client) Messages() *Messages { return &Messages{t: c.table(TableOutgoingMessages)} }

type jobEntity struct {
	PartitionKey, RowKey    string
	JobKey                  string
	NotificationEventTypeId int32
	BusinessUnitId          int64  `json:",string"`
	BusinessUnitIdType      string `json:"BusinessUnitId@odata.type"`
	EventKey                string `json:",omitempty"`
	EventData               string `json:",omitempty"`
	EventDataBlob           string `json:",omitempty"`
	Recipients              string `json:",omitempty"`
	SendAt                  string `json:",omitempty"`
	SendAtType              string `json:"SendAt@odata.type,omitempty"`
	CancellationKey         string `json:",omitempty"`
	ContentHash             string
	State                   string
	Reason                  string `json:",omitempty"`
	CreatedAt               string
	CreatedAtType           string `json:"CreatedAt@odata.type"`
	DueAt                   string `json:",omitempty"`
	DueAtType               string `json:"DueAt@odata.type,omitempty"`
	MessageKeys             string `json:",omitempty"`
	Trail                   string `json:",omitempty"`
	CausedByRule            string `json:",omitempty"`
	ChainDepth              int32  `json:",omitempty"`
}

// Ensure creates job j in state Created unless its key exists. It returns the stored job: j
// itself when created, else the row found, which the caller compares by ContentHash (equal:
// the same request again; different: a conflict).
func (s *Jobs) Ensure(ctx context.Context, j *platform.NotificationJob) (stored *platform.NotificationJob, etag ETag, created bool, err error) {
	if j.State == "" {
		j.State = platform.JobCreated
	}
	if j.CreatedAt.IsZero() {
		j.CreatedAt = time.Now().UTC()
	}
	body, err := json.Marshal(toJobEntity(j))
	if err != nil {
		return nil, "", false, err
	}
	resp, err := addEntity(ctx, s.t, platform.EscapeKey(j.Key), singleRowKey, body)
	if err == nil {
		return j, etagOf(resp.ETag), true, nil
	}
	if err = storage.Translate(err); !errors.Is(err, platform.ErrExists) {
		return nil, "", false, fmt.Errorf("ensure notification job %s: %w", j.Key, err)
	}
	stored, etag, err = s.Get(ctx, j.Key)
	return stored, etag, false, err
}

// Get reads job key; platform.ErrNotFound when there is none.
func (s *Jobs) Get(ctx context.Context, key string) (*platform.NotificationJob, ETag, error) {
	resp, err := s.t.GetEntity(ctx, platform.EscapeKey(key), singleRowKey, nil)
	if err != nil {
		return nil, "", fmt.Errorf("read notification job %s: %w", key, storage.Translate(err))
	}
	var e jobEntity
	if err := json.Unmarshal(resp.Value, &e); err != nil {
		return nil, "", fmt.Errorf("read notification job %s: %w", key, err)
	}
	j, err := e.job()
	return j, etagOf(resp.ETag), err
}

// Update replaces job j if it is still at version etag: platform.ErrConflict when another
// writer got there first. It returns the new version.
func (s *Jobs) Update(ctx context.Context, j *platform.NotificationJob, etag ETag) (ETag, error) {
	j.Trail = lastSteps(j.Trail)
	body, err := json.Marshal(toJobEntity(j))
	if err != nil {
		return "", err
	}
	tag := azcore.ETag(etag)
	resp, err := updateEntity(ctx, s.t, platform.EscapeKey(j.Key), singleRowKey, body, &aztables.UpdateEntityOptions{IfMatch: &tag, UpdateMode: aztables.UpdateModeReplace})
	if err != nil {
		return "", fmt.Errorf("update notification job %s: %w", j.Key, storage.Translate(err))
	}
	return etagOf(resp.ETag), nil
}

func toJobEntity(j *platform.NotificationJob) *jobEntity {
	e := &jobEntity{
		PartitionKey: platform.EscapeKey(j.Key), RowKey: singleRowKey,
		JobKey: j.Key, NotificationEventTypeId: int32(j.NotificationEventTypeID),
		BusinessUnitId: j.BusinessUnitID, BusinessUnitIdType: edmInt64,
		EventKey: j.EventKey, EventData: string(j.EventData), EventDataBlob: j.EventDataBlob,
		CancellationKey: j.CancellationKey, ContentHash: j.ContentHash(),
		State: string(j.State), Reason: j.Reason,
		CreatedAt: j.CreatedAt.UTC().Format(timeLayout), CreatedAtType: edmDateTime,
		Recipients: jsonString(j.Recipients), MessageKeys: jsonString(j.MessageKeys), Trail: jsonString(j.Trail),
		CausedByRule: j.CausedByRule, ChainDepth: int32(j.ChainDepth),
	}
	e.SendAt, e.SendAtType = optionalTime(j.SendAt)
	e.DueAt, e.DueAtType = optionalTime(j.DueAt)
	return e
}

func (e *jobEntity) job() (*platform.NotificationJob, error) {
	j := &platform.NotificationJob{
		Key: e.JobKey, NotificationEventTypeID: int(e.NotificationEventTypeId), BusinessUnitID: e.BusinessUnitId,
		EventKey: e.EventKey, EventDataBlob: e.EventDataBlob, CancellationKey: e.CancellationKey,
		State: platform.JobState(e.State), Reason: e.Reason, CausedByRule: e.CausedByRule, ChainDepth: int(e.ChainDepth),
	}
	if e.EventData != "" {
		j.EventData = json.RawMessage(e.EventData)
	}
	var err error
	if j.CreatedAt, err = parseTime(e.CreatedAt); err != nil {
		return nil, err
	}
	if j.SendAt, err = parseTime(e.SendAt); err != nil {
		return nil, err
	}
	if j.DueAt, err = parseTime(e.DueAt); err != nil {
		return nil, err
	}
	err = errors.Join(fromJSONString(e.Recipients, &j.Recipients), fromJSONString(e.MessageKeys, &j.MessageKeys), fromJSONString(e.Trail, &j.Trail))
	return j, err
}

type messageEntity struct {
	PartitionKey, RowKey    string
	MessageKey              string
	JobKey                  string
	NotificationEventTypeId int32
	BusinessUnitId          int64  `json:",string"`
	BusinessUnitIdType      string `json:"BusinessUnitId@odata.type"`
	Channel                 string
	Address                 string
	Name                    string `json:",omitempty"`
	Subject                 string
	Text                    string
	HTML                    string `json:",omitempty"`
	BodyBlob                string `json:",omitempty"`
	ContentHash             string
	State                   string
	Attempts                int32
	LastError               string `json:",omitempty"`
	ProviderId              string `json:",omitempty"`
	LeaseUntil              string `json:",omitempty"`
	LeaseUntilType          string `json:"LeaseUntil@odata.type,omitempty"`
	Claim                   string `json:",omitempty"`
	Trail                   string `json:",omitempty"`
	RetryAt                 string `json:",omitempty"`
	RetryAtType             string `json:"RetryAt@odata.type,omitempty"`
	CreatedAt               string `json:",omitempty"`
	CreatedAtType           string `json:"CreatedAt@odata.type,omitempty"`
	LastLatencyMs           int32  `json:",omitempty"`
	CausedByRule            string `json:",omitempty"`
	ChainDepth              int32  `json:",omitempty"`
}

// Ensure creates message m in state Pending unless its key exists, and returns the stored one
// (compare by ContentHash, as for jobs).
func (s *Messages) Ensure(ctx context.Context, m *platform.OutgoingMessage) (stored *platform.OutgoingMessage, etag ETag, created bool, err error) {
	if m.State == "" {
		m.State = platform.MessagePending
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now().UTC()
	}
	body, err := json.Marshal(toMessageEntity(m))
	if err != nil {
		return nil, "", false, err
	}
	resp, err := addEntity(ctx, s.t, platform.EscapeKey(m.Key), singleRowKey, body)
	if err == nil {
		return m, etagOf(resp.ETag), true, nil
	}
	if err = storage.Translate(err); !errors.Is(err, platform.ErrExists) {
		return nil, "", false, fmt.Errorf("ensure outgoing message %s: %w", m.Key, err)
	}
	stored, etag, err = s.Get(ctx, m.Key)
	return stored, etag, false, err
}

// Get reads message key; platform.ErrNotFound when there is none.
func (s *Messages) Get(ctx context.Context, key string) (*platform.OutgoingMessage, ETag, error) {
	resp, err := s.t.GetEntity(ctx, platform.EscapeKey(key), singleRowKey, nil)
	if err != nil {
		return nil, "", fmt.Errorf("read outgoing message %s: %w", key, storage.Translate(err))
	}
	var e messageEntity
	if err := json.Unmarshal(resp.Value, &e); err != nil {
		return nil, "", fmt.Errorf("read outgoing message %s: %w", key, err)
	}
	m, err := e.message()
	return m, etagOf(resp.ETag), err
}

// messageStateEntity is the part of a message row that changes after it is written: its state,
// attempts, lease, claim, outcome and trail. A message's content (recipient, subject, body,
// content hash) is written once, by Ensure, and never again. A field without a value is written
// empty, not left out, so that a merge clears it.
type messageStateEntity struct {
	PartitionKey, RowKey string
	State                string
	Attempts             int32
	LastError            string
	ProviderId           string
	LeaseUntil           string
	LeaseUntilType       string `json:"LeaseUntil@odata.type,omitempty"`
	Claim                string
	Trail                string
	RetryAt              string
	RetryAtType          string `json:"RetryAt@odata.type,omitempty"`
	LastLatencyMs        int32
}

// Update writes message m's state (messageStateEntity) if the row is still at version etag:
// platform.ErrConflict when another writer got there first (the claim of claim-before-send).
// It merges: the content, written once by Ensure, is not sent again.
func (s *Messages) Update(ctx context.Context, m *platform.OutgoingMessage, etag ETag) (ETag, error) {
	m.Trail = lastSteps(m.Trail)
	e := messageStateEntity{PartitionKey: platform.EscapeKey(m.Key), RowKey: singleRowKey,
		State: string(m.State), Attempts: int32(m.Attempts), LastError: m.LastError, ProviderId: m.ProviderID,
		Claim: m.Claim, Trail: jsonString(m.Trail), LastLatencyMs: int32(min(m.LastLatencyMs, math.MaxInt32))}
	e.LeaseUntil, e.LeaseUntilType = optionalTime(m.LeaseUntil)
	e.RetryAt, e.RetryAtType = optionalTime(m.RetryAt)
	body, err := json.Marshal(&e)
	if err != nil {
		return "", err
	}
	tag := azcore.ETag(etag)
	resp, err := updateEntity(ctx, s.t, e.PartitionKey, e.RowKey, body, &aztables.UpdateEntityOptions{IfMatch: &tag, UpdateMode: aztables.UpdateModeMerge})
	if err != nil {
		return "", fmt.Errorf("update outgoing message %s: %w", m.Key, storage.Translate(err))
	}
	return etagOf(resp.ETag), nil
}

func toMessageEntity(m *platform.OutgoingMessage) *messageEntity {
	e := &messageEntity{
		PartitionKey: platform.EscapeKey(m.Key), RowKey: singleRowKey,
		MessageKey: m.Key, JobKey: m.JobKey, NotificationEventTypeId: int32(m.NotificationEventTypeID),
		BusinessUnitId: m.BusinessUnitID, BusinessUnitIdType: edmInt64,
		Channel: m.Recipient.Channel, Address: m.Recipient.Address, Name: m.Recipient.Name,
		Subject: m.Subject, Text: m.Text, HTML: m.HTML, BodyBlob: m.BodyBlob, ContentHash: m.ContentHash(),
		State: string(m.State), Attempts: int32(m.Attempts), LastError: m.LastError, ProviderId: m.ProviderID,
		Claim: m.Claim, Trail: jsonString(m.Trail), CausedByRule: m.CausedByRule, ChainDepth: int32(m.ChainDepth),
	}
	e.LeaseUntil, e.LeaseUntilType = optionalTime(m.LeaseUntil)
	e.RetryAt, e.RetryAtType = optionalTime(m.RetryAt)
	e.CreatedAt, e.CreatedAtType = optionalTime(m.CreatedAt)
	e.LastLatencyMs = int32(min(m.LastLatencyMs, math.MaxInt32))
	return e
}

func (e *messageEntity) message() (*platform.OutgoingMessage, error) {
	m := &platform.OutgoingMessage{
		Key: e.MessageKey, JobKey: e.JobKey, NotificationEventTypeID: int(e.NotificationEventTypeId), BusinessUnitID: e.BusinessUnitId,
		Recipient: platform.Recipient{Channel: e.Channel, Address: e.Address, Name: e.Name},
		Subject:   e.Subject, Text: e.Text, HTML: e.HTML, BodyBlob: e.BodyBlob,
		State: platform.MessageState(e.State), Attempts: int(e.Attempts), LastError: e.LastError, ProviderID: e.ProviderId,
		Claim: e.Claim, CausedByRule: e.CausedByRule, ChainDepth: int(e.ChainDepth),
	}
	var err error
	if m.LeaseUntil, err = parseTime(e.LeaseUntil); err != nil {
		return nil, err
	}
	if m.RetryAt, err = parseTime(e.RetryAt); err != nil {
		return nil, err
	}
	if m.CreatedAt, err = parseTime(e.CreatedAt); err != nil {
		return nil, err
	}
	m.LastLatencyMs = int64(e.LastLatencyMs)
	return m, fromJSONString(e.Trail, &m.Trail)
}

// Cancellations is the NotificationCancellations table: a cancellation key, once cancelled,
// stops every job carrying it that was created before the cancellation. A key's partition
// has a row for a cancellation in every business unit (RowKey empty, the one row of a key
// before cancellations were scoped) and one per business unit cancelled alone (RowKey bu-{N}).
type Cancellations struct{ t *aztables.Client }

// Cancellations returns the namespace's cancellation store.
func (c *Client) Cancellations() *Cancellations {
	return &Cancellations{t: c.table(TableCancellations)}
}

type cancellationEntity struct {
	PartitionKey, RowKey string
	CancellationKey      string
	CancelledAt          string
	CancelledAtType      string `json:"CancelledAt@odata.type"`
}

// cancellationRowKey is the row of a cancellation in businessUnitID; 0: in every unit.
func cancellationRowKey(businessUnitID int64) string {
	if businessUnitID == 0 {
		return singleRowKey
	}
	return "bu-" + strconv.FormatInt(businessUnitID, 10)
}

// Cancel records that cancellation key was cancelled now in businessUnitID (0: in every
// business unit). A negative unit is a platform.ErrInvalidInput.
func (s *Cancellations) Cancel(ctx context.Context, key string, businessUnitID int64) (time.Time, error) {
	if businessUnitID < 0 {
		return time.Time{}, fmt.Errorf("cancel %s: %w: business unit %d: want 0 (every unit) or > 0", key, platform.ErrInvalidInput, businessUnitID)
	}
	now := time.Now().UTC()
	body, _ := json.Marshal(cancellationEntity{PartitionKey: platform.EscapeKey(key), RowKey: cancellationRowKey(businessUnitID),
		CancellationKey: key, CancelledAt: now.Format(timeLayout), CancelledAtType: edmDateTime})
	if _, err := s.t.UpsertEntity(ctx, body, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace}); err != nil {
		return time.Time{}, fmt.Errorf("cancel %s: %w", key, storage.Translate(err))
	}
	return now, nil
}

// CancelledAt is when key was last cancelled for a job of businessUnitID: the later of its
// cancellation in every business unit and in that one; zero when neither happened. Both rows
// come in one request (a query of the key's partition for the two of them).
func (s *Cancellations) CancelledAt(ctx context.Context, key string, businessUnitID int64) (time.Time, error) {
	filter := "PartitionKey eq " + odataQuote(platform.EscapeKey(key)) + " and (RowKey eq " + odataQuote(singleRowKey)
	if businessUnitID > 0 {
		filter += " or RowKey eq " + odataQuote(cancellationRowKey(businessUnitID))
	}
	filter += ")"
	pager := s.t.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Top: to.Ptr(int32(2))})
	var latest time.Time
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if err = storage.Translate(err); errors.Is(err, platform.ErrNotFound) {
				return time.Time{}, nil
			}
			return time.Time{}, fmt.Errorf("read cancellation %s: %w", key, err)
		}
		for _, raw := range page.Entities {
			var e cancellationEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				return time.Time{}, fmt.Errorf("read cancellation %s: %w", key, err)
			}
			at, err := parseTime(e.CancelledAt)
			if err != nil {
				return time.Time{}, fmt.Errorf("read cancellation %s: %w", key, err)
			}
			if at.After(latest) {
				latest = at
			}
		}
	}
	return latest, nil
}

func etagOf(t azcore.ETag) ETag { return ETag(t) }

func jsonString[T any](v []T) string {
	if len(v) == 0 {
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func fromJSONString[T any](s string, into *[]T) error {
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), into)
}

func optionalTime(t time.Time) (value, annotation string) {
	if t.IsZero() {
		return "", ""
	}
	return t.UTC().Format(timeLayout), edmDateTime
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t.UTC(), err
}

// lastSteps keeps a trail within a row's limits: the most recent steps are the ones asked about.
func lastSteps(trail []platform.Step) []platform.Step {
	if len(trail) <= maxTrail {
		return trail
	}
	return trail[len(trail)-maxTrail:]
}

// azcoreETagAny matches any version: an update that must find the row, whatever its version.
var azcoreETagAny = azcore.ETagAny
