package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/platform/platform"
	"github.com/platform/platform/queues"
)

func runRedrive(ctx context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	var (
		cfg config
		id  string
	)
	fs := newFlagSet("redrive", "QUEUE [--message ID]")
	cfg.register(fs, false)
	fs.StringVar(&id, "message", "", "move only the poison message with this id (as GET /v1/attention or the console shows it)")
	positional, err := parseInterspersed(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return usagef("want one QUEUE, one of: %s", strings.Join(platform.WorkQueues, ", "))
	}
	queue := strings.TrimSuffix(positional[0], platform.PoisonSuffix)
	if !slices.Contains(platform.WorkQueues, queue) {
		return usagef("unknown queue %q: want one of %s", positional[0], strings.Join(platform.WorkQueues, ", "))
	}
	ns, err := cfg.ns()
	if err != nil {
		return err
	}
	acct, err := cfg.account()
	if err != nil {
		return err
	}
	client, err := queues.New(acct, ns)
	if err != nil {
		return err
	}
	if id != "" {
		err := client.RedriveOne(ctx, queue, id)
		if errors.Is(err, platform.ErrNotFound) {
			return usageError{err}
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "moved message %s from %s back to %s\n", clean(id), clean(platform.PoisonQueue(queue)), clean(queue))
		return nil
	}
	n, err := client.Redrive(ctx, queue)
	if err != nil {
		return fmt.Errorf("moved %d messages, then: %w", n, err)
	}
	fmt.Fprintf(stdout, "moved %d messages from %s back to %s\n", n, clean(platform.PoisonQueue(queue)), clean(queue))
	return nil
}
