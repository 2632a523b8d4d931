// Package channels holds the built-in delivery channels that need nothing of a concern, one
// file each: email over SMTP, and email to the log for local development. (The two webhook
// channels live with the SSRF rule and signing they use, in package webhooks.) A channel is a
// delivery.Channel registered by name; the distributor calls it after claiming a message and
// records what it answers. A channel must not retry by itself: the distributor owns attempts.
package channels

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/delivery"
)

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

// SMTP is the email channel over an SMTP relay. It keeps up to 16 sessions open between
// messages (each ended after 30 s idle, and all when the worker stops): a message costs its
// MAIL, RCPT and DATA, not a connection, greeting, EHLO, STARTTLS and AUTH each.
type SMTP struct {
	cfg SMTPConfig

	mu      sync.Mutex
	idle    []*smtpSession // kept between messages, most recently used last
	stopped bool
}

// NewSMTP returns the email channel that sends through the relay cfg names.
func NewSMTP(cfg SMTPConfig) *SMTP { return &SMTP{cfg: cfg} }

// CheckAddress implements delivery.Channel: one bare address (checkEmail).
func (*SMTP) CheckAddress(_ context.Context, address string) error { return checkEmail(address) }

// maxEmail is the longest address SMTP carries (RFC 5321: a 256-octet path, brackets included).
const maxEmail = 254

// checkEmail accepts one bare address, such as ada@example.com, and nothing else: no display
// name, angle brackets, comment, group or list (a name in event data must not choose where the
// mail goes: "Victim" <attacker@evil.com>), no line break (a header injection), no domain
// literal (ada@[127.0.0.1] names a host, not a mailbox a business would write to), and a
// domain that is a domain name: at least two labels (ada@localhost names a host of the
// relay's own network), each a host label, the last not a number (ada@127.0.0.1 is an
// address without its brackets); at most 254 characters.
func checkEmail(address string) error {
	if len(address) > maxEmail {
		return fmt.Errorf("%.40q…: an email address has at most %d characters, got %d", address, maxEmail, len(address))
	}
	if a, err := mail.ParseAddress(address); err != nil || a.Address != address {
		return fmt.Errorf("%q is not one bare email address such as ada@example.com (no display name, angle brackets, comment or list)", address)
	}
	domain := address[strings.LastIndexByte(address, '@')+1:]
	if strings.HasPrefix(domain, "[") {
		return fmt.Errorf("%q: a domain literal is not accepted; want a domain name such as example.com", address)
	}
	if why := domainProblem(domain); why != "" {
		return fmt.Errorf("%q: %s; want a domain name such as example.com", address, why)
	}
	return nil
}

// domainProblem says why domain is not a domain name a mailbox lives under, or "" when it is.
func domainProblem(domain string) string {
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return "the domain has no dot (a local host name)"
	}
	for _, l := range labels {
		if !hostLabel(l) {
			return fmt.Sprintf("the domain's label %q is not a host label (letters, digits and inner hyphens, at most 63)", l)
		}
	}
	if tld := labels[len(labels)-1]; strings.Trim(tld, "0123456789") == "" {
		return "the domain is an IP address, not a domain name"
	}
	return ""
}

// hostLabel reports whether l is one label of a host name: 1-63 bytes of letters (an
// internationalised name's too), digits and hyphens, not starting or ending with a hyphen.
func hostLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		if r != '-' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

// Send speaks SMTP to the relay. The message carries X-Platform-Message-Key, so a support
// engineer can go from any received email back to its trace.
func (p *SMTP) Send(ctx context.Context, m *platform.OutgoingMessage) (string, error) {
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

	for attempt := 0; ; attempt++ {
		sess, reused, err := p.session(ctx, host)
		if err != nil {
			return "", err
		}
		// net/smtp does not watch ctx: a cancel (a stop cut short) unblocks the conversation by
		// expiring the connection's deadline.
		if deadline, ok := ctx.Deadline(); ok {
			_ = sess.conn.SetDeadline(deadline)
		}
		stop := context.AfterFunc(ctx, func() { _ = sess.conn.SetDeadline(time.Now()) })
		err = transaction(sess.c, from.Address, to.Address, body)
		if !stop() || err != nil {
			sess.close() // a session whose deadline fired is not fit to keep
			if err == nil {
				return messageID, nil // accepted before the cancel
			}
			if reused && attempt == 0 && errors.Is(err, errStaleSession) {
				continue // the relay ended the kept session: nothing of this message was sent
			}
			return "", err
		}
		p.release(sess)
		return messageID, nil
	}
}

// errStaleSession: a kept session failed at MAIL FROM, before anything of the message was
// sent (the relay closed it while it was idle, or said 421: closing).
var errStaleSession = errors.New("smtp: the kept session was closed by the relay")

// transaction sends one message on an open session: MAIL FROM, RCPT TO, DATA.
func transaction(c *smtp.Client, from, to string, body []byte) error {
	if err := c.Mail(from); err != nil {
		var te *textproto.Error
		if !errors.As(err, &te) || te.Code == 421 {
			return fmt.Errorf("%w: %w", errStaleSession, smtpError("MAIL FROM", err))
		}
		return smtpError("MAIL FROM", err)
	}
	if err := c.Rcpt(to); err != nil {
		return smtpError("RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return smtpError("DATA", err)
	}
	if _, err := w.Write(body); err != nil {
		return smtpError("DATA", err)
	}
	if err := w.Close(); err != nil {
		var te *textproto.Error
		if !errors.As(err, &te) {
			// The whole message went out and the server's verdict was lost: it may have it.
			return delivery.Ambiguous(fmt.Errorf("smtp end of DATA: %w", err))
		}
		return smtpError("end of DATA", err)
	}
	return nil
}

// smtpSession is a connection to the relay past its greeting, EHLO, STARTTLS and AUTH: it
// carries one message after another, as relays expect of a client that sends many.
type smtpSession struct {
	conn net.Conn
	c    *smtp.Client
	used time.Time
}

func (s *smtpSession) close() { _ = s.c.Close() }

const (
	smtpMaxIdle = 16
	// smtpIdleTimeout: a session idle longer is ended, not reused; relays end idle sessions
	// themselves after a minute or more (RFC 5321 gives the server 5 minutes).
	smtpIdleTimeout = 30 * time.Second
)

// session is a kept session (reused), or a new one.
func (p *SMTP) session(ctx context.Context, host string) (s *smtpSession, reused bool, err error) {
	p.mu.Lock()
	for len(p.idle) > 0 {
		s = p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if time.Since(s.used) < smtpIdleTimeout {
			p.mu.Unlock()
			return s, true, nil
		}
		go s.quit()
	}
	p.mu.Unlock()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.cfg.Addr)
	if err != nil {
		return nil, false, fmt.Errorf("smtp dial: %w", err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	defer context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return nil, false, smtpError("greeting", err)
	}
	s = &smtpSession{conn: conn, c: c}
	if err := c.Hello("platform"); err != nil {
		s.close()
		return nil, false, smtpError("EHLO", err)
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
			s.close()
			return nil, false, smtpError("STARTTLS", err)
		}
	}
	if p.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", p.cfg.Username, p.cfg.Password, host)); err != nil {
			s.close()
			return nil, false, smtpError("AUTH", err)
		}
	}
	return s, false, nil
}

// release keeps a session that ended its message cleanly for the next one.
func (p *SMTP) release(s *smtpSession) {
	_ = s.conn.SetDeadline(time.Time{})
	s.used = time.Now()
	var stale []*smtpSession
	p.mu.Lock()
	for len(p.idle) > 0 && time.Since(p.idle[0].used) >= smtpIdleTimeout { // the least recently used first
		stale, p.idle = append(stale, p.idle[0]), p.idle[1:]
	}
	if !p.stopped && len(p.idle) < smtpMaxIdle {
		p.idle = append(p.idle, s)
		s = nil
	}
	p.mu.Unlock()
	for _, old := range stale {
		go old.quit()
	}
	if s != nil {
		s.quit()
	}
}

// quit ends a session politely, within a second.
func (s *smtpSession) quit() {
	_ = s.conn.SetDeadline(time.Now().Add(time.Second))
	_ = s.c.Quit()
	s.close()
}

// Start implements lifecycle.Component: nothing to start.
func (p *SMTP) Start(context.Context) error { return nil }

// Stop ends the kept sessions; a send still under way ends its own.
func (p *SMTP) Stop(context.Context) error {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.stopped = nil, true
	p.mu.Unlock()
	for _, s := range idle {
		s.quit()
	}
	return nil
}

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
