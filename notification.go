package platform

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// JobState is where a notification job is (docs/contracts.md, "Storage names"):
// Created → Scheduled → Generating → Generated | Skipped(reason) | Failed(reason) | Conflict.
type JobState string

const (
	JobCreated    JobState = "Created"
	JobScheduled  JobState = "Scheduled" // held until it is due (a delay or sendAt)
	JobGenerating JobState = "Generating"
	JobGenerated  JobState = "Generated"
	JobSkipped    JobState = "Skipped"
	JobFailed     JobState = "Failed"
	JobConflict   JobState = "Conflict"
)

// Final reports whether nothing more happens to a job in state s.
func (s JobState) Final() bool {
	return s == JobGenerated || s == JobSkipped || s == JobFailed || s == JobConflict
}

// MessageState is where an outgoing message is:
// Pending → Sending → Sent | Failed | Unknown (crashed inside the send window: never resent
// automatically), or Conflict (different content arrived under its key: never sent).
type MessageState string

const (
	MessagePending  MessageState = "Pending"
	MessageSending  MessageState = "Sending"
	MessageSent     MessageState = "Sent"
	MessageFailed   MessageState = "Failed"
	MessageUnknown  MessageState = "Unknown"
	MessageConflict MessageState = "Conflict"
)

// Final reports whether nothing more happens to a message in state s.
func (s MessageState) Final() bool {
	return s == MessageSent || s == MessageFailed || s == MessageUnknown || s == MessageConflict
}

// Reason codes a support engineer reads in a trace: why a job or message stopped where it did.
const (
	ReasonOptionNotSeeded = "option-not-seeded"
	ReasonDisabled        = "disabled"
	ReasonCancelled       = "cancelled"
	// ReasonCancelledBySupport: a person cancelled the job by hand (the console, the API, the
	// CLI) before it was released; the trail's support step names who and why.
	ReasonCancelledBySupport = "cancelled-by-support"
	ReasonNoRecipients       = "no-recipients"
	ReasonRecipientsRefused  = "recipients-refused" // every recipient refused; the trail says why, one by one
	ReasonTooManyRecipients  = "too-many-recipients"
	ReasonNoGeneratorHandler = "no-generator-handler"
	ReasonNoTemplate         = "no-template"
	ReasonTemplateError      = "template-error"
	ReasonNoChannel          = "no-enabled-channel"
	ReasonConflict           = "conflicting-content"
)

// Channels a message goes out on. ChannelEndpoint is an integrator's webhook subscription
// (its address is the endpoint id); ChannelWebhook a notification recipient's URL.
const (
	ChannelEmail    = "email"
	ChannelWebhook  = "webhook"
	ChannelEndpoint = "endpoint"
)

// Recipient is one addressee of a notification.
type Recipient struct {
	Channel string `json:"channel"`
	Address string `json:"address"`
	Name    string `json:"name,omitempty"`
}

// Normalize lowercases the channel, and the address of an email (so that one person is one
// message key however the address was typed).
func (r Recipient) Normalize() Recipient {
	r.Channel = strings.ToLower(strings.TrimSpace(r.Channel))
	r.Address = strings.TrimSpace(r.Address)
	if r.Channel == ChannelEmail {
		r.Address = strings.ToLower(r.Address)
	}
	return r
}

// NotificationJob asks for one notification of one type, to its recipients. Event-derived jobs
// are keyed from their event; direct ones get a random key (or one derived from the caller's
// Idempotency-Key).
type NotificationJob struct {
	Key                     string          `json:"jobKey"`
	NotificationEventTypeID int             `json:"notificationEventTypeId"`
	BusinessUnitID          int64           `json:"businessUnitId"`
	EventKey                string          `json:"eventKey,omitempty"` // event-derived jobs only
	EventData               json.RawMessage `json:"eventData,omitempty"`
	EventDataBlob           string          `json:"eventDataBlob,omitempty"` // event-payloads blob holding EventData when too large for a row
	Recipients              []Recipient     `json:"recipients,omitempty"`    // empty: the generator decides
	SendAt                  time.Time       `json:"sendAt,omitzero"`
	CancellationKey         string          `json:"cancellationKey,omitempty"`

	State     JobState  `json:"state,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
	// DueAt is when the scheduler releases it to the generator (set once scheduled).
	DueAt       time.Time `json:"dueAt,omitzero"`
	MessageKeys []string  `json:"messageKeys,omitempty"`
	// CausedByRule and ChainDepth are set when an automation rule's action made it: the rule,
	// and the chain depth of the effect (the event it acted on, plus one). Its lifecycle events
	// carry them on, for the loop guard. Not part of its content.
	CausedByRule string `json:"causedByRule,omitempty"`
	ChainDepth   int    `json:"chainDepth,omitempty"`
	Trail        []Step `json:"trail,omitempty"`
}

// Step is one decision a stage made about a job or message, and why: the run history that
// `platform trace` shows.
type Step struct {
	At       time.Time `json:"at"`
	Stage    string    `json:"stage"`
	Decision string    `json:"decision"`
	Reason   string    `json:"reason,omitempty"`
}

// NewStep is a step taken now.
func NewStep(stage, decision, reason string) Step {
	return Step{At: time.Now().UTC(), Stage: stage, Decision: decision, Reason: reason}
}

// ContentHash identifies what the job asks for, not where it is: two jobs under one key with
// the same hash are the same request; different hashes are a conflict.
func (j *NotificationJob) ContentHash() string {
	h := sha256.New()
	write := func(s string) { h.Write([]byte(strconv.Itoa(len(s)))); h.Write([]byte{':'}); h.Write([]byte(s)) }
	write(strconv.Itoa(j.NotificationEventTypeID))
	write(strconv.FormatInt(j.BusinessUnitID, 10))
	write(j.EventKey)
	write(canonicalJSON(j.EventData))
	write(j.EventDataBlob)
	for _, r := range j.Recipients {
		r = r.Normalize()
		write(r.Channel + "\x00" + r.Address + "\x00" + r.Name)
	}
	if !j.SendAt.IsZero() {
		write(FormatCreatedOn(j.SendAt))
	}
	write(j.CancellationKey)
	return hex.EncodeToString(h.Sum(nil))
}

// canonicalJSON compacts JSON so that whitespace alone never makes a conflict.
func canonicalJSON(b json.RawMessage) string {
	var v any
	if len(b) == 0 || json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	out, _ := json.Marshal(v) // map keys come out sorted
	return string(out)
}

// EventJobKey is the key of the job that event key eventKey derives for notification type t.
func EventJobKey(notificationTypeID int, eventKey string) string {
	return "notification-job:" + strconv.Itoa(notificationTypeID) + ":" + eventKey
}

// DirectJobKey is the key of a direct job created with the caller's idempotency key: the same
// idempotency key (for the same type and business unit) is the same job.
func DirectJobKey(notificationTypeID int, businessUnitID int64, idempotencyKey string) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(notificationTypeID) + "\x00" + strconv.FormatInt(businessUnitID, 10) + "\x00" + idempotencyKey))
	return "notification-job:direct:" + hex.EncodeToString(sum[:16])
}

// MessageKey is the key of the outgoing message of job jobKey to recipient r: one per (job,
// channel, recipient).
func MessageKey(jobKey string, r Recipient) string {
	r = r.Normalize()
	return jobKey + "|" + r.Channel + "|" + keyAddress(r)
}

// keyAddress is the address part of a message key. A key is logged, traced and sent as a
// header, so a webhook URL that carries a credential (userinfo, a query such as ?token=…, a
// fragment) is not put in it whole: it stands as scheme://host/path#h-{16 hex of SHA-256 of
// the whole URL} — deterministic (the same job and URL are the same key: idempotency holds),
// and distinct for URLs that differ only in their secret. Upgrade safety: every other address,
// a webhook URL without those parts included, is the key's address as before, so the messages
// created before keep their keys.
func keyAddress(r Recipient) string {
	if r.Channel != ChannelWebhook {
		return r.Address
	}
	u, err := url.Parse(r.Address)
	if err == nil && u.Opaque == "" && u.User == nil && u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" && !strings.Contains(r.Address, "#") {
		return r.Address
	}
	sum := sha256.Sum256([]byte(r.Address))
	shown := ""
	if err == nil && u.Opaque == "" {
		shown = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String()
	}
	return shown + "#h-" + hex.EncodeToString(sum[:8])
}

// ShownKey is key as a trace or a log line may show it. A message key made before webhook URLs
// carrying a credential were hashed (keyAddress) holds the URL whole: its address is shown
// redacted. Every other key, today's included, is itself.
func ShownKey(key string) string {
	jobKey, rest, _ := strings.Cut(key, "|")
	channel, address, ok := strings.Cut(rest, "|")
	if !ok || channel != ChannelWebhook || hashedKeyAddress(address) || keyAddress(Recipient{Channel: channel, Address: address}) == address {
		return key
	}
	return jobKey + "|" + channel + "|" + RedactURL(address)
}

// hashedKeyAddress reports an address part that keyAddress made from a URL with a credential.
func hashedKeyAddress(address string) bool {
	i := strings.LastIndex(address, "#h-")
	if i < 0 || len(address)-i != len("#h-")+16 || strings.ContainsAny(address[:i], "?#") {
		return false
	}
	_, err := hex.DecodeString(address[i+3:])
	return err == nil
}

// Shown is r as a trace or an error may show it: a webhook URL redacted (RedactURL), since its
// query or userinfo may carry a credential. The stored recipient stays whole, to send to.
func (r Recipient) Shown() Recipient {
	if r.Channel == ChannelWebhook {
		r.Address = RedactURL(r.Address)
	}
	return r
}

// MessageJobKey is the key of the job a message key belongs to; ok is false when messageKey is
// not a message key.
func MessageJobKey(messageKey string) (jobKey string, ok bool) {
	jobKey, _, ok = strings.Cut(messageKey, "|")
	return jobKey, ok && jobKey != ""
}

// OutgoingMessage is one rendered message to one recipient on one channel.
type OutgoingMessage struct {
	Key                     string       `json:"messageKey"`
	JobKey                  string       `json:"jobKey"`
	NotificationEventTypeID int          `json:"notificationEventTypeId"`
	BusinessUnitID          int64        `json:"businessUnitId"`
	Recipient               Recipient    `json:"recipient"`
	Subject                 string       `json:"subject"`
	Text                    string       `json:"text"`
	HTML                    string       `json:"html,omitempty"`
	BodyBlob                string       `json:"bodyBlob,omitempty"` // event-payloads blob holding Text when too large for a row
	State                   MessageState `json:"state"`
	Attempts                int          `json:"attempts"`
	LastError               string       `json:"lastError,omitempty"`
	ProviderID              string       `json:"providerId,omitempty"`
	LeaseUntil              time.Time    `json:"leaseUntil,omitzero"`
	// Claim identifies the distributor attempt that moved the message to Sending, so that
	// attempt knows the claim is its own when the write's reply was lost.
	Claim string `json:"claim,omitempty"`
	Trail []Step `json:"trail,omitempty"`
	// RetryAt is when a message held after a failed attempt (a Scheduled channel's) is due
	// again; zero when it is not waiting.
	RetryAt time.Time `json:"retryAt,omitzero"`
	// CreatedAt is when the message was first stored (zero for one stored by a version that
	// did not keep it).
	CreatedAt time.Time `json:"createdAt,omitzero"`
	// LastLatencyMs is how long the last send attempt took, in milliseconds (at least 1 once
	// one was made): the provider's answer, or its error.
	LastLatencyMs int64 `json:"lastLatencyMs,omitempty"`
	// CausedByRule and ChainDepth are set when an automation rule's action made it: the rule,
	// and the chain depth of the effect (the event it acted on, plus one). Its lifecycle events
	// carry them on, for the loop guard. Not part of its content.
	CausedByRule string `json:"causedByRule,omitempty"`
	ChainDepth   int    `json:"chainDepth,omitempty"`
}

// ContentHash identifies what the message says and to whom. The recipient is its channel and
// address, not its display name: the key already names the address, and a name dropped
// between two renders (recipients from event data no longer carry one) is not different
// content; a name a template shows still changes the text. Safe across a deploy: the hash is
// computed again from the stored row on every comparison (the stored column is never read),
// so an old row and a new render are compared by this one function.
func (m *OutgoingMessage) ContentHash() string {
	h := sha256.New()
	for _, s := range []string{m.JobKey, m.Recipient.Channel, m.Recipient.Address, m.Subject, m.Text, m.HTML, m.BodyBlob} {
		h.Write([]byte(strconv.Itoa(len(s)) + ":" + s))
	}
	return hex.EncodeToString(h.Sum(nil))
}
