package channels

import (
	"context"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
)

// LogMail is the email channel when no SMTP relay is configured (local development): it writes
// who and what about to the log, never the body.
type LogMail struct{ Log logrus.FieldLogger }

// CheckAddress implements delivery.Channel as SMTP does.
func (*LogMail) CheckAddress(_ context.Context, address string) error { return checkEmail(address) }

// Send implements delivery.Channel.
func (p *LogMail) Send(_ context.Context, m *platform.OutgoingMessage) (string, error) {
	p.Log.WithFields(logrus.Fields{"messageKey": m.Key, "to": m.Recipient.Address, "subject": m.Subject}).
		Info("email (no SMTP configured: written to the log instead of sent)")
	return "log", nil
}
