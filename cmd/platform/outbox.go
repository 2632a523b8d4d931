package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/outbox"
)

func runOutbox(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("want a subcommand: append [FILE|-], confirm KEY or discard KEY")
	}
	var cfg config
	fs := newFlagSet("outbox "+args[0], "")
	cfg.register(fs, false)
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return err
	}
	c, err := cfg.outboxClient(ctx)
	if err != nil {
		return err
	}
	switch args[0] {
	case "append":
		if fs.NArg() > 1 {
			return usagef("append: want at most one FILE")
		}
		data, err := readInput(fs.Arg(0), stdin)
		if err != nil {
			return err
		}
		var extra struct {
			SourceRow *platform.SourceRow `json:"sourceRow"`
		}
		if err := json.Unmarshal(data, &extra); err != nil {
			return usagef("append: %v", err)
		}
		ev, err := platform.DecodeEvent(data)
		if err != nil {
			return usagef("append: %v", err)
		}
		in, err := c.AppendIntent(ctx, ev, extra.SourceRow)
		if errors.Is(err, platform.ErrInvalidInput) {
			return usagef("append: %v", err)
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, clean(in.SourceKey))
		return nil
	case "confirm", "discard":
		if fs.NArg() != 1 {
			return usagef("%s: want one SourceKey", args[0])
		}
		if _, ok := platform.SourceKeyTime(fs.Arg(0)); !ok {
			return usagef("%s: %q is not a SourceKey (a 26-character ULID)", args[0], fs.Arg(0))
		}
		move := c.ConfirmIntent
		if args[0] == "discard" {
			move = c.DiscardIntent
		}
		in, err := move(ctx, fs.Arg(0))
		switch {
		case errors.Is(err, platform.ErrNotFound), errors.Is(err, tables.ErrIntentSettled):
			return usageError{err}
		case err != nil:
			return err
		}
		fmt.Fprintf(stdout, "%s %s\n", clean(in.SourceKey), clean(string(in.State)))
		return nil
	}
	return usagef("unknown subcommand %q: want append, confirm or discard", args[0])
}

func runReconcile(ctx context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	var (
		cfg      config
		provider string
		since    string
	)
	fs := newFlagSet("reconcile", "[--provider NAME] [--since T]")
	cfg.register(fs, false)
	fs.StringVar(&provider, "provider", "", `scan-repair provider; "event-log" re-publishes what PlatformEventLog holds`)
	fs.StringVar(&since, "since", "", "start from this RFC 3339 instant instead of the provider's watermark")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	var from time.Time
	if since != "" {
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			return usagef("--since: want RFC 3339, e.g. 2026-11-22T10:00:00Z")
		}
		from = t
	}
	w, err := cfg.worker(nil)
	if err != nil {
		return err
	}
	if err := w.Setup(ctx); err != nil {
		return err
	}
	if provider == "" {
		n, err := w.Outbox().Reconcile(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "stale intents settled: %d\n", n)
	}
	results, err := w.Outbox().ScanRepair(ctx, provider, from)
	if errors.Is(err, platform.ErrInvalidInput) {
		return usageError{err}
	}
	for _, r := range results {
		fmt.Fprintf(stdout, "%s: published %d events from %s; watermark now %s\n", clean(r.Provider), r.Published, r.From.Format(time.RFC3339), r.Watermark.Format(time.RFC3339))
	}
	return err
}

// outboxClient is the outbox's service-facing client: no worker is built for it.
func (c *config) outboxClient(ctx context.Context) (*outbox.Client, error) {
	ns, err := c.ns()
	if err != nil {
		return nil, err
	}
	acct, err := c.account()
	if err != nil {
		return nil, err
	}
	t, err := tables.New(acct, ns)
	if err != nil {
		return nil, err
	}
	b, err := blobs.New(acct, ns)
	if err != nil {
		return nil, err
	}
	maxPayload, err := positiveEnv("PLATFORM_MAX_PAYLOAD_BYTES")
	if err != nil {
		return nil, err
	}
	b.SetMaxPayloadBytes(maxPayload) // an intent the worker would refuse is refused at append
	if err := t.CreateTables(ctx, tables.TableOutboxIntents); err != nil {
		return nil, err
	}
	return outbox.NewClient(t, b), nil
}
