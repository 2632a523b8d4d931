package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"

	"github.com/platform/platform"
)

// RecipientChannel is the delivery channel of a notification recipient's URL ("webhook"): the
// message is POSTed as JSON (WebhookPayload) to a URL that must pass the SSRF rule when the job
// is created and again on every connection, signed as endpoint deliveries are, with the
// recipient's own secret (RecipientSecret): a recipient cannot forge or replay a delivery to
// another.
type RecipientChannel struct {
	// Secret is PLATFORM_WEBHOOK_SECRET, the key every recipient's secret is derived from; it
	// never signs a delivery itself.
	Secret  string
	Targets *Targets
}

// RecipientSecret is the secret a webhook-channel recipient verifies X-Platform-Signature
// with: hex HMAC-SHA256(master, "platform recipient secret\x00" + url), url exactly as the
// recipient's address. Derived, it needs no storage; the operator hands it to the recipient
// (platform webhooks recipient-secret --url URL). Another master secret changes them all.
func RecipientSecret(master, url string) string {
	mac := hmac.New(sha256.New, []byte(master))
	mac.Write([]byte("platform recipient secret\x00" + url))
	return hex.EncodeToString(mac.Sum(nil))
}

// WebhookPayload is the JSON body of a webhook-channel notification.
type WebhookPayload struct {
	MessageKey              string `json:"messageKey"`
	JobKey                  string `json:"jobKey"`
	NotificationEventTypeID int    `json:"notificationEventTypeId"`
	BusinessUnitID          int64  `json:"businessUnitId"`
	Subject                 string `json:"subject"`
	Text                    string `json:"text"`
	HTML                    string `json:"html,omitempty"`
}

// CheckAddress implements delivery.Channel: the SSRF rule.
func (c *RecipientChannel) CheckAddress(ctx context.Context, address string) error {
	return c.Targets.CheckURL(ctx, address)
}

// Send implements delivery.Channel.
func (c *RecipientChannel) Send(ctx context.Context, m *platform.OutgoingMessage) (string, error) {
	if c.Secret == "" {
		return "", platform.Permanent(errors.New("PLATFORM_WEBHOOK_SECRET is not set: refusing to send an unsigned webhook"))
	}
	body, err := json.Marshal(WebhookPayload{MessageKey: m.Key, JobKey: m.JobKey, NotificationEventTypeID: m.NotificationEventTypeID,
		BusinessUnitID: m.BusinessUnitID, Subject: m.Subject, Text: m.Text, HTML: m.HTML})
	if err != nil {
		return "", platform.Permanent(err)
	}
	return Post(ctx, c.Targets.Client(), m.Recipient.Address, m.Key, []string{RecipientSecret(c.Secret, m.Recipient.Address)}, body,
		map[string]string{"Idempotency-Key": m.Key, "X-Platform-Message-Key": m.Key})
}
