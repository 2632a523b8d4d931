package webhooks

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/platform/platform"
)

// RecipientChannel is the delivery channel of a notification recipient's URL ("webhook"): the
// message is POSTed as JSON (WebhookPayload), signed with one secret (PLATFORM_WEBHOOK_SECRET),
// to a URL that must pass the SSRF rule when the job is created and again on every connection.
type RecipientChannel struct {
	Secret  string
	Targets *Targets
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
	return Post(ctx, c.Targets.Client(), m.Recipient.Address, c.Secret, body,
		map[string]string{"Idempotency-Key": m.Key, "X-Platform-Message-Key": m.Key})
}
