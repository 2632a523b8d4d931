package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
)

// Support's actions from the command line: each needs a reason and says what it did; a state
// the action does not take, a key that does not exist, or a missing reason is exit 2 with one
// line. redrive --message moves that one poison message.
func TestSupportCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := testenv.Namespace(t)
	tc, err := tables.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.CreateTables(ctx, tables.TableNotificationJobs, tables.TableOutgoingMessages); err != nil {
		t.Fatal(err)
	}
	message := func(job string, state platform.MessageState) string {
		r := platform.Recipient{Channel: "email", Address: "a@example.com"}
		m := &platform.OutgoingMessage{Key: platform.MessageKey(job, r), JobKey: job, NotificationEventTypeID: 201, BusinessUnitID: 42,
			Recipient: r, Subject: "s", Text: "t", State: state, Attempts: 1}
		if _, _, _, err := tc.Messages().Ensure(ctx, m); err != nil {
			t.Fatal(err)
		}
		return m.Key
	}
	unknown, failed := message("job-u", platform.MessageUnknown), message("job-f", platform.MessageFailed)
	scheduled := &platform.NotificationJob{Key: "notification-job:cli", NotificationEventTypeID: 201, BusinessUnitID: 42,
		State: platform.JobScheduled, DueAt: time.Now().Add(time.Hour)}
	if _, _, _, err := tc.Jobs().Ensure(ctx, scheduled); err != nil {
		t.Fatal(err)
	}
	n := string(ns)
	ok := func(want string, args ...string) {
		t.Helper()
		if code, out, errOut := cli(t, "", args...); code != 0 || !strings.Contains(out, want) {
			t.Errorf("%v: %d %q %q, want 0 and %q", args, code, out, errOut, want)
		}
	}
	refused := func(want string, args ...string) {
		t.Helper()
		code, _, errOut := cli(t, "", args...)
		if code != 2 || !strings.Contains(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: %d %q, want 2 with one line saying %q", args, code, errOut, want)
		}
	}
	ok("marked Sent", "messages", "mark-sent", "--namespace", n, unknown, "--reason", "the provider has it")
	refused("it is Sent", "messages", "mark-sent", "--namespace", n, unknown, "--reason", "again")
	refused("reason: required", "messages", "mark-sent", "--namespace", n, unknown)
	refused("control character U+000A", "messages", "resend", "--namespace", n, failed, "--reason", "a\nb")
	ok("Pending again", "messages", "resend", "--namespace", n, failed, "--reason", "the receiver is fixed")
	refused("it is Sent", "messages", "resend", "--namespace", n, unknown, "--reason", "twice")
	refused("mark-sent or resend", "messages", "forget", unknown)
	ok("Skipped (cancelled-by-support)", "jobs", "cancel", "--namespace", n, scheduled.Key, "--reason", "the customer asked")
	refused("settled already", "jobs", "cancel", "--namespace", n, scheduled.Key, "--reason", "again")
	refused("no such key", "jobs", "cancel", "--namespace", n, "notification-job:none", "--reason", "r")
	for key, want := range map[string]platform.MessageState{unknown: platform.MessageSent, failed: platform.MessagePending} {
		if m, _, err := tc.Messages().Get(ctx, key); err != nil || m.State != want || !strings.Contains(m.Trail[len(m.Trail)-1].Reason, "(by cli") {
			t.Errorf("%s: %+v (%v), want %s with a step by the CLI", key, m, err, want)
		}
	}

	q, err := queues.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"one", "two"} {
		if err := q.Enqueue(ctx, platform.PoisonQueue(platform.QueueEntityEvents), `{"reason":"r","queue":"entity-events","body":"`+body+`"}`, 0); err != nil {
			t.Fatal(err)
		}
	}
	peeked, err := q.PeekPoison(ctx, platform.QueueEntityEvents)
	if err != nil || len(peeked) != 2 {
		t.Fatalf("peeked %d (%v)", len(peeked), err)
	}
	ok("moved message "+peeked[1].ID, "redrive", "--namespace", n, "entity-events", "--message", peeked[1].ID)
	refused("not found", "redrive", "--namespace", n, "entity-events", "--message", peeked[1].ID)
	if texts, err := q.Peek(ctx, platform.QueueEntityEvents); err != nil || len(texts) != 1 || texts[0] != peeked[1].Record.Body {
		t.Fatalf("work queue %q (%v), want only %q", texts, err, peeked[1].Record.Body)
	}
}
