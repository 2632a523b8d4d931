package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
		return usagef("want one QUEUE, one of: %s (or one's shard, entity-events-3)", strings.Join(platform.WorkQueues, ", "))
	}
	queue := strings.TrimSuffix(positional[0], platform.PoisonSuffix)
	_, shard, ok := platform.SplitQueue(queue)
	if !ok {
		return usagef("unknown queue %q: want one of %s, or one's shard (entity-events-3)", positional[0], strings.Join(platform.WorkQueues, ", "))
	}
	shards, err := queueShardsEnv()
	if err != nil {
		return err
	}
	// A work queue's name with shards (or after a change of their number) moves each
	// shard's poison back to its shard.
	from, to, fromOne, toOne := platform.PoisonQueue(queue), queue, platform.PoisonQueue(queue), queue
	if shard < 0 && shards > 1 {
		from, to = "the poison queues of "+queue, "the shard each came from"
		fromOne, toOne = "a poison queue of "+queue, "its shard"
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
		fmt.Fprintf(stdout, "moved message %s from %s back to %s\n", clean(id), clean(fromOne), clean(toOne))
		return nil
	}
	n, err := client.Redrive(ctx, queue)
	if err != nil {
		return fmt.Errorf("moved %d messages, then: %w", n, err)
	}
	fmt.Fprintf(stdout, "moved %d messages from %s back to %s\n", n, clean(from), clean(to))
	return nil
}
