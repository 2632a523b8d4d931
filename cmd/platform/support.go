package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/api"
	"github.com/platform/platform/worker/delivery"
)

// What support does by hand, from the command line as from the console (POST
// /v1/messages/mark-sent, /v1/messages/resend, /v1/notification-jobs/cancel): each needs a
// reason, which goes into the row's trail with who (cli:$USER). A key that does not exist, or
// a state the action does not take, is exit 2 with one line.

const (
	messagesUsage = "mark-sent KEY --reason R | resend KEY --reason R"
	jobsUsage     = "cancel KEY --reason R"
)

func runMessages(ctx context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	if len(args) == 0 || (args[0] != "mark-sent" && args[0] != "resend") {
		return usagef("want a subcommand: mark-sent or resend")
	}
	key, reason, cfg, err := supportArgs("messages "+args[0], "KEY --reason R", args[1:], stdout)
	if err != nil {
		return err
	}
	w, err := cfg.worker(nil)
	if err != nil {
		return err
	}
	a := delivery.Actor{By: cliActor(), Reason: reason}
	var m *platform.OutgoingMessage
	if args[0] == "mark-sent" {
		m, err = w.Distributor().MarkSent(ctx, key, a)
	} else {
		m, err = w.Distributor().Resend(ctx, key, a)
	}
	if err != nil {
		return supportError(err)
	}
	what := "marked Sent (nothing was sent)"
	if args[0] == "resend" {
		what = "Pending again: the worker sends it once more"
	}
	fmt.Fprintf(stdout, "%s: %s\n", clean(platform.ShownKey(m.Key)), what)
	return nil
}

func runJobs(ctx context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "cancel" {
		return usagef("want a subcommand: cancel")
	}
	key, reason, cfg, err := supportArgs("jobs cancel", "KEY --reason R", args[1:], stdout)
	if err != nil {
		return err
	}
	w, err := cfg.worker(nil)
	if err != nil {
		return err
	}
	j, err := w.Notify().CancelJob(ctx, key, delivery.Actor{By: cliActor(), Reason: reason})
	if err != nil {
		return supportError(err)
	}
	fmt.Fprintf(stdout, "%s: %s (%s): it will not be sent\n", clean(j.Key), j.State, j.Reason)
	return nil
}

// supportArgs reads KEY and --reason (flags before or after the key).
func supportArgs(name, usage string, args []string, stdout io.Writer) (key, reason string, cfg config, err error) {
	fs := newFlagSet(name, usage)
	cfg.register(fs, false)
	fs.StringVar(&reason, "reason", "", "why, for the trail (required; at most 500 characters, one line)")
	positional, err := parseInterspersed(fs, args, stdout)
	if err != nil {
		return "", "", cfg, err
	}
	if len(positional) != 1 || positional[0] == "" {
		return "", "", cfg, usagef("want one KEY")
	}
	if err := platform.CheckKeyLength("KEY", positional[0]); err != nil {
		return "", "", cfg, usageError{err}
	}
	if err := api.CheckReason(reason); err != nil {
		return "", "", cfg, usagef("--%s", err)
	}
	return positional[0], reason, cfg, nil
}

// supportError makes a refusal exit 2 with one line: no such key, or a state the action does
// not take. Storage failing is exit 1.
func supportError(err error) error {
	var se *delivery.StateError
	if errors.As(err, &se) || errors.Is(err, platform.ErrNotFound) {
		return usageError{err}
	}
	return err
}
