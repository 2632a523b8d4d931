package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/webhooks"
)

// replayFlags are the flags of webhooks replay.
type replayFlags struct {
	since, until, after string
	max                 int
}

func (f *replayFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.since, "since", "", "the start of the window of processing time: an RFC 3339 time, or a duration ago (e.g. 24h)")
	fs.StringVar(&f.until, "until", "", "the end of the window, as --since (default now)")
	fs.StringVar(&f.after, "after", "", "resume an interrupted replay after this cursor (the last \"next\" it printed)")
	fs.IntVar(&f.max, "max", webhooks.DefaultReplayMax, fmt.Sprintf("events handled per batch, 1-%d", webhooks.MaxReplayMax))
}

// replayTime reads a --since or --until value: an RFC 3339 time, or a duration before now.
func replayTime(name, v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("--%s: %q: want an RFC 3339 time (2026-11-22T10:00:00Z) or a duration ago (24h)", name, v)
}

// runReplay replays endpoint fs.Arg(0) batch by batch until the window is done, printing a
// line per batch with its cursor (--after resumes from it) and a total.
func runReplay(ctx context.Context, w *worker.Worker, fs *flag.FlagSet, f *replayFlags, stdout io.Writer) error {
	if fs.NArg() != 1 {
		return usagef("replay: want one endpoint ID")
	}
	if f.since == "" {
		return usagef("--since: want the start of the window")
	}
	if f.max < 1 || f.max > webhooks.MaxReplayMax {
		return usagef("--max: want 1-%d", webhooks.MaxReplayMax)
	}
	now := time.Now().UTC()
	opts := webhooks.ReplayOptions{After: f.after, Max: f.max, Until: now} // one window for every batch
	var err error
	if opts.Since, err = replayTime("since", f.since, now); err != nil {
		return err
	}
	if f.until != "" {
		if opts.Until, err = replayTime("until", f.until, now); err != nil {
			return err
		}
	}
	total := webhooks.ReplayResult{SkippedReasons: map[string]int{}}
	for batch := 1; ; batch++ {
		res, err := w.WebhookReplay().Replay(ctx, fs.Arg(0), opts)
		if errors.Is(err, platform.ErrInvalidInput) {
			return usageError{err}
		}
		if err != nil {
			if opts.After != "" {
				return fmt.Errorf("replay stopped (resume with --after %s): %w", opts.After, err)
			}
			return err
		}
		total.Resent, total.Created, total.Skipped = total.Resent+res.Resent, total.Created+res.Created, total.Skipped+res.Skipped
		for why, n := range res.SkippedReasons {
			total.SkippedReasons[why] += n
		}
		if res.Next == "" {
			break
		}
		fmt.Fprintf(stdout, "batch %d: resent %d, created %d, skipped %d; next %s\n", batch, res.Resent, res.Created, res.Skipped, res.Next)
		opts.After = res.Next
	}
	fmt.Fprintf(stdout, "replayed: resent %d, created %d, skipped %d%s\n", total.Resent, total.Created, total.Skipped, reasons(total.SkippedReasons))
	return nil
}

func reasons(m map[string]int) string {
	var parts []string
	for _, why := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", why, m[why]))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
