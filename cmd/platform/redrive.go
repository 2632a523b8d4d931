package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/platform/platform"
	"github.com/platform/platform/queues"
)

func runRedrive(ctx context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	var cfg config
	fs := newFlagSet("redrive", "QUEUE")
	cfg.register(fs, false)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one QUEUE, one of: %s", strings.Join(platform.WorkQueues, ", "))
	}
	queue := strings.TrimSuffix(fs.Arg(0), platform.PoisonSuffix)
	if !slices.Contains(platform.WorkQueues, queue) {
		return usagef("unknown queue %q: want one of %s", fs.Arg(0), strings.Join(platform.WorkQueues, ", "))
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
	n, err := client.Redrive(ctx, queue)
	if err != nil {
		return fmt.Errorf("moved %d messages, then: %w", n, err)
	}
	fmt.Fprintf(stdout, "moved %d messages from %s back to %s\n", n, clean(platform.PoisonQueue(queue)), clean(queue))
	return nil
}
