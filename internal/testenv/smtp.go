package testenv

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mail is one message an SMTPServer accepted.
type Mail struct {
	From    string
	To      []string
	Data    string
	Header  mail.Header
	OverTLS bool
}

// SMTPServer is a real SMTP server on 127.0.0.1 for tests: EHLO, STARTTLS (with a certificate
// made for it), MAIL, RCPT, DATA, RSET, NOOP, QUIT. It is small, but the client speaks the
// real protocol to it over a real socket.
type SMTPServer struct {
	Addr string
	// ClientTLS trusts the server's certificate; give it to the SMTP client.
	ClientTLS *tls.Config
	// OnMail, if set, runs after a mail is accepted (before the client hears 250).
	OnMail func(Mail)
	// Delay holds each mail this long before accepting it (to widen race windows).
	Delay time.Duration
	// HangUpAfterData keeps each mail, then closes the connection without a reply: the
	// client cannot know whether it was accepted.
	HangUpAfterData bool
	// Username and Password, when set, are required (AUTH PLAIN, offered only over TLS).
	Username, Password string

	serverTLS *tls.Config
	ln        net.Listener
	mu        sync.Mutex
	mails     []Mail
	sessions  int                   // connections accepted
	open      map[net.Conn]struct{} // sessions not ended
}

// Sessions is how many connections the server has accepted.
func (s *SMTPServer) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// OpenSessions is how many sessions are open now.
func (s *SMTPServer) OpenSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// HangUp closes every open session without a word, as a relay ends sessions idle too long.
func (s *SMTPServer) HangUp() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.open {
		c.Close()
	}
}

// StartSMTP starts a server that offers STARTTLS; it stops when t ends.
func StartSMTP(t testing.TB) *SMTPServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &SMTPServer{Addr: ln.Addr().String(), ln: ln}
	s.serverTLS, s.ClientTLS = selfSigned(t)
	go s.serve()
	t.Cleanup(func() { ln.Close() })
	return s
}

// StartPlainSMTP starts a server that does not offer STARTTLS, for a client that cannot be
// told to trust the test certificate (a worker run as a separate process).
func StartPlainSMTP(t testing.TB) *SMTPServer {
	t.Helper()
	s := StartSMTP(t)
	s.mu.Lock()
	s.serverTLS = nil
	s.mu.Unlock()
	return s
}

// Mails is what the server accepted so far.
func (s *SMTPServer) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

func (s *SMTPServer) serve() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.sessions++
		if s.open == nil {
			s.open = map[net.Conn]struct{}{}
		}
		s.open[conn] = struct{}{}
		s.mu.Unlock()
		go s.session(conn)
	}
}

func (s *SMTPServer) offersTLS() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serverTLS != nil
}

func (s *SMTPServer) session(conn net.Conn) {
	raw := conn
	defer func() {
		conn.Close()
		s.mu.Lock()
		delete(s.open, raw)
		s.mu.Unlock()
	}()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
	reply := func(line string) { w.WriteString(line + "\r\n"); w.Flush() }
	reply("220 testenv SMTP ready")
	var cur Mail
	overTLS, authed := false, false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch verb {
		case "EHLO", "HELO":
			if overTLS && s.Username != "" {
				reply("250-testenv\r\n250-8BITMIME\r\n250 AUTH PLAIN")
			} else if overTLS {
				reply("250-testenv\r\n250 8BITMIME")
			} else if s.offersTLS() {
				reply("250-testenv\r\n250-8BITMIME\r\n250 STARTTLS")
			} else {
				reply("250-testenv\r\n250 8BITMIME")
			}
		case "STARTTLS":
			if !s.offersTLS() {
				reply("454 TLS not available")
				continue
			}
			reply("220 go ahead")
			tlsConn := tls.Server(conn, s.serverTLS)
			if err := tlsConn.Handshake(); err != nil {
				return
			}
			conn, overTLS = tlsConn, true
			r, w = bufio.NewReader(conn), bufio.NewWriter(conn)
		case "AUTH":
			f := strings.Fields(line)
			raw, err := base64.StdEncoding.DecodeString(f[len(f)-1])
			creds := strings.Split(string(raw), "\x00")
			if !overTLS || err != nil || len(f) != 3 || len(creds) != 3 || creds[1] != s.Username || creds[2] != s.Password {
				reply("535 authentication failed")
				continue
			}
			authed = true
			reply("235 authenticated")
		case "MAIL":
			if s.Username != "" && !authed {
				reply("530 authentication required")
				continue
			}
			cur = Mail{From: addrOf(line), OverTLS: overTLS}
			reply("250 ok")
		case "RCPT":
			cur.To = append(cur.To, addrOf(line))
			reply("250 ok")
		case "DATA":
			reply("354 end with <CRLF>.<CRLF>")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			cur.Data = b.String()
			if m, err := mail.ReadMessage(strings.NewReader(cur.Data)); err == nil {
				cur.Header = m.Header
			}
			time.Sleep(s.Delay)
			s.mu.Lock()
			s.mails = append(s.mails, cur)
			s.mu.Unlock()
			if s.OnMail != nil {
				s.OnMail(cur)
			}
			if s.HangUpAfterData {
				return
			}
			reply("250 accepted")
		case "RSET":
			cur = Mail{}
			reply("250 ok")
		case "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 not implemented")
		}
	}
}

func addrOf(line string) string {
	if i, j := strings.IndexByte(line, '<'), strings.IndexByte(line, '>'); i >= 0 && j > i {
		return line[i+1 : j]
	}
	return ""
}

func selfSigned(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	c := NewCert(t)
	return c.ServerTLS(), c.ClientTLS()
}
