package channels_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker/channels"
)

// Messages in turn share one kept session; a session the relay ended while idle is replaced
// without losing the message; Stop ends the kept sessions.
func TestSMTPKeepsASessionForMessageAfterMessage(t *testing.T) {
	t.Parallel()
	srv := testenv.StartSMTP(t)
	ch := channels.NewSMTP(channels.SMTPConfig{Addr: srv.Addr, From: "platform@example.com", TLS: srv.ClientTLS})
	send := func(i int) {
		t.Helper()
		m := &platform.OutgoingMessage{Key: fmt.Sprintf("job-%d|email|a@example.com", i), Recipient: platform.Recipient{Channel: "email", Address: "a@example.com"},
			Subject: fmt.Sprintf("message %d", i), Text: "text"}
		if _, err := ch.Send(context.Background(), m); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for i := range 5 {
		send(i)
	}
	if n, s := len(srv.Mails()), srv.Sessions(); n != 5 || s != 1 {
		t.Fatalf("%d mails over %d sessions, want 5 over 1", n, s)
	}
	for _, m := range srv.Mails() {
		if !m.OverTLS {
			t.Fatal("a message of a kept session went out without TLS")
		}
	}
	srv.HangUp()
	time.Sleep(50 * time.Millisecond)
	send(5)
	if n, s := len(srv.Mails()), srv.Sessions(); n != 6 || s != 2 {
		t.Fatalf("after the relay hung up: %d mails over %d sessions, want 6 over 2", n, s)
	}
	if srv.OpenSessions() != 1 {
		t.Fatalf("%d sessions open before Stop, want the kept one", srv.OpenSessions())
	}
	if err := ch.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "the kept session ended by Stop", func() bool { return srv.OpenSessions() == 0 })
	send(6) // a send after Stop works, and its session is not kept
	testenv.Eventually(t, 5*time.Second, "the session of a send after Stop ended", func() bool { return srv.OpenSessions() == 0 })
	if s := srv.Sessions(); s != 3 {
		t.Fatalf("%d sessions, want 3", s)
	}
}
