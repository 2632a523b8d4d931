package worker

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
)

// Provider delivers one outgoing message. It returns the provider's id for it, a
// platform.Permanent error when no retry can help, or another error to retry.
type Provider interface {
	Send(ctx context.Context, m *platform.OutgoingMessage) (providerID string, err error)
}

// SMTPConfig is an SMTP relay (PLATFORM_SMTP_*). STARTTLS is used whenever the server offers
// it; credentials are sent only over TLS.
type SMTPConfig struct {
	Addr     string // host:port
	From     string
	Username string
	Password string
	// TLS configures STARTTLS; default: verify the server against the system roots.
	TLS *tls.Config
}

type smtpProvider struct{ cfg SMTPConfig }

// Send speaks SMTP to the relay. The message carries X-Platform-Message-Key, so a support
// engineer can go from any received email back to its trace.
func (p *smtpProvider) Send(ctx context.Context, m *platform.OutgoingMessage) (string, error) {
	to, err := mail.ParseAddress(m.Recipient.Address)
	if err != nil {
		return "", platform.Permanent(fmt.Errorf("recipient %q: %v", m.Recipient.Address, err))
	}
	from, err := mail.ParseAddress(p.cfg.From)
	if err != nil {
		return "", platform.Permanent(fmt.Errorf("PLATFORM_SMTP_FROM %q: %v", p.cfg.From, err))
	}
	host, _, err := net.SplitHostPort(p.cfg.Addr)
	if err != nil {
		return "", platform.Permanent(fmt.Errorf("PLATFORM_SMTP_ADDR %q: %v", p.cfg.Addr, err))
	}
	sum := sha256.Sum256([]byte(m.Key))
	messageID := "<" + hex.EncodeToString(sum[:16]) + "@platform>"
	body, err := buildMIME(from, to, messageID, m)
	if err != nil {
		return "", platform.Permanent(err)
	}

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.cfg.Addr)
	if err != nil {
		return "", fmt.Errorf("smtp dial: %w", err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return "", smtpError("greeting", err)
	}
	defer c.Close()
	if err := c.Hello("platform"); err != nil {
		return "", smtpError("EHLO", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if p.cfg.TLS != nil {
			cfg = p.cfg.TLS.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName = host
			}
		}
		if err := c.StartTLS(cfg); err != nil {
			return "", smtpError("STARTTLS", err)
		}
	}
	if p.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", p.cfg.Username, p.cfg.Password, host)); err != nil {
			return "", smtpError("AUTH", err)
		}
	}
	if err := c.Mail(from.Address); err != nil {
		return "", smtpError("MAIL FROM", err)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return "", smtpError("RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return "", smtpError("DATA", err)
	}
	if _, err := w.Write(body); err != nil {
		return "", smtpError("DATA", err)
	}
	if err := w.Close(); err != nil {
		var te *textproto.Error
		if !errors.As(err, &te) {
			// The whole message went out and the server's verdict was lost: it may have it.
			return "", &ambiguousError{fmt.Errorf("smtp end of DATA: %w", err)}
		}
		return "", smtpError("end of DATA", err)
	}
	_ = c.Quit()
	return messageID, nil
}

// ambiguousError: the provider may or may not have the message (the request went out whole and
// its answer was lost). Retrying could send it twice, so the message becomes Unknown.
type ambiguousError struct{ err error }

func (e *ambiguousError) Error() string { return e.err.Error() }
func (e *ambiguousError) Unwrap() error { return e.err }

// smtpError: a 5xx reply is permanent (the server refused), a 4xx or a network error is not.
func smtpError(step string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return platform.Permanent(fmt.Errorf("smtp %s: %w", step, err))
	}
	return fmt.Errorf("smtp %s: %w", step, err)
}

func buildMIME(from, to *mail.Address, messageID string, m *platform.OutgoingMessage) ([]byte, error) {
	var b bytes.Buffer
	header := func(k, v string) {
		// No header value may carry a line break: that is how headers get injected.
		v = strings.Join(strings.Fields(v), " ")
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	to.Name = m.Recipient.Name
	header("From", from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	header("Date", time.Now().UTC().Format(time.RFC1123Z))
	header("Message-ID", messageID)
	header("X-Platform-Message-Key", m.Key)
	header("MIME-Version", "1.0")
	mw := multipart.NewWriter(&b)
	header("Content-Type", `multipart/alternative; boundary="`+mw.Boundary()+`"`)
	b.WriteString("\r\n")
	part := func(contentType, content string) error {
		w, err := mw.CreatePart(map[string][]string{"Content-Type": {contentType}, "Content-Transfer-Encoding": {"quoted-printable"}})
		if err != nil {
			return err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(content)); err != nil {
			return err
		}
		return qp.Close()
	}
	if err := part("text/plain; charset=utf-8", m.Text); err != nil {
		return nil, err
	}
	if m.HTML != "" {
		if err := part("text/html; charset=utf-8", m.HTML); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// logProvider writes email to the log when no SMTP relay is configured (local development).
// It logs who and what about, never the body.
type logProvider struct{ log logrus.FieldLogger }

func (p *logProvider) Send(_ context.Context, m *platform.OutgoingMessage) (string, error) {
	p.log.WithFields(logrus.Fields{"messageKey": m.Key, "to": m.Recipient.Address, "subject": m.Subject}).
		Info("email (no SMTP configured: written to the log instead of sent)")
	return "log", nil
}

// webhookProvider POSTs a message as JSON, signed with HMAC-SHA256 of the body.
type webhookProvider struct {
	secret string
	client *http.Client
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

// Sign is the X-Platform-Signature value of body: "sha256=" + hex HMAC-SHA256 with secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (p *webhookProvider) Send(ctx context.Context, m *platform.OutgoingMessage) (string, error) {
	if p.secret == "" {
		return "", platform.Permanent(errors.New("PLATFORM_WEBHOOK_SECRET is not set: refusing to send an unsigned webhook"))
	}
	body, err := json.Marshal(WebhookPayload{MessageKey: m.Key, JobKey: m.JobKey, NotificationEventTypeID: m.NotificationEventTypeID,
		BusinessUnitID: m.BusinessUnitID, Subject: m.Subject, Text: m.Text, HTML: m.HTML})
	if err != nil {
		return "", platform.Permanent(err)
	}
	return postSigned(ctx, p.client, m.Recipient.Address, p.secret, body, map[string]string{"Idempotency-Key": m.Key, "X-Platform-Message-Key": m.Key})
}

// postSigned POSTs body, signed with secret, and sorts the answer: 2xx sent; 408, 429 and 5xx
// (and network errors) worth a retry; anything else refused for good.
func postSigned(ctx context.Context, client *http.Client, target, secret string, body []byte, headers map[string]string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return "", platform.Permanent(fmt.Errorf("webhook %q: %v", target, err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "platform-webhooks")
	req.Header.Set("X-Platform-Signature", Sign(secret, body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, ErrForbiddenTarget) {
			return "", platform.Permanent(err)
		}
		return "", fmt.Errorf("webhook POST: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return fmt.Sprintf("http %d", code), nil
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return "", fmt.Errorf("webhook answered %d", code)
	default:
		return "", platform.Permanent(fmt.Errorf("webhook answered %d", code))
	}
}
