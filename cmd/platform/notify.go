package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/settings"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/notify"
)

func runNotify(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	var (
		cfg            config
		idempotencyKey string
	)
	fs := newFlagSet("notify", "FILE|-")
	cfg.register(fs, false)
	fs.StringVar(&idempotencyKey, "idempotency-key", "", "makes the job key deterministic: the same key again is the same job")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one FILE (or - for standard input)")
	}
	data, err := readInput(fs.Arg(0), stdin)
	if err != nil {
		return err
	}
	var d notify.DirectJob
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return usagef("%s: %v", fs.Arg(0), err)
	}
	tracing, stopTracing, err := startTracing(ctx, "notify", nil)
	if err != nil {
		return err
	}
	defer stopTracingSoon(stopTracing)
	cfg.tracer = tracing.Provider // the job's first message starts its trace
	w, err := cfg.worker(nil)
	if err != nil {
		return err
	}
	if err := w.Setup(ctx); err != nil {
		return err
	}
	job, _, err := w.Notify().CreateJob(ctx, d, idempotencyKey)
	if errors.Is(err, platform.ErrInvalidInput) || errors.Is(err, notify.ErrJobConflict) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, clean(job.Key))
	return nil
}

func runCancel(ctx context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	var (
		cfg          config
		businessUnit int64
	)
	fs := newFlagSet("cancel", "CANCELLATION_KEY [--business-unit N]")
	cfg.register(fs, false)
	fs.Int64Var(&businessUnit, "business-unit", 0, "cancel only this business unit's jobs (0: every business unit's)")
	positional, err := parseInterspersed(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(positional) != 1 || positional[0] == "" {
		return usagef("want one CANCELLATION_KEY")
	}
	key := positional[0]
	if businessUnit < 0 {
		return usagef("--business-unit: want 0 (every business unit) or a positive id, got %d", businessUnit)
	}
	w, err := cfg.worker(nil)
	if err != nil {
		return err
	}
	if err := w.Setup(ctx); err != nil {
		return err
	}
	err = w.Notify().Cancel(ctx, key, businessUnit)
	if errors.Is(err, platform.ErrInvalidInput) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	where := "in every business unit"
	if businessUnit > 0 {
		where = fmt.Sprintf("in business unit %d", businessUnit)
	}
	fmt.Fprintf(stdout, "cancelled %s %s: jobs carrying it that are not generated yet will be skipped\n", clean(key), where)
	return nil
}

// parseInterspersed parses fs's flags wherever they are among args (platform cancel KEY
// --business-unit 7, as well as before the key) and returns the other arguments.
func parseInterspersed(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	var positional []string
	for len(args) > 0 {
		if err := parseFlags(fs, args, stdout); err != nil {
			return nil, err
		}
		if args = fs.Args(); len(args) > 0 {
			positional, args = append(positional, args[0]), args[1:]
		}
	}
	return positional, nil
}

func runSeed(ctx context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	var cfg config
	fs := newFlagSet("seed", "FILE...")
	cfg.register(fs, false)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("want one or more SQL files")
	}
	scripts := make([]string, fs.NArg())
	for i, f := range fs.Args() {
		b, err := os.ReadFile(f)
		if err != nil {
			return usageError{err}
		}
		scripts[i] = string(b)
	}
	db, err := settings.Open(ctx, cfg.settingsDSN)
	if err != nil {
		return err
	}
	defer db.Close()
	for i, script := range scripts {
		if err := db.Exec(ctx, script); err != nil {
			return fmt.Errorf("%s: %w (nothing of it was applied)", fs.Arg(i), err)
		}
		fmt.Fprintf(stdout, "applied %s\n", clean(fs.Arg(i)))
	}
	// Best effort, and brief: a seed needs no storage account, and must not wait on one that
	// is not there.
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := announceSettings(actx, &cfg); err != nil {
		fmt.Fprintf(stdout, "running workers were not told (%v): they see the change within PLATFORM_SETTINGS_CACHE_TTL\n", err)
	}
	return nil
}

// runSettings: settings changed tells every running worker that the settings database changed
// (an edit made in SQL by hand or by the business application): each drops its cached options
// and subscribers within a change-bus poll, instead of within PLATFORM_SETTINGS_CACHE_TTL.
func runSettings(ctx context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "changed" {
		return usagef("want the subcommand changed")
	}
	var cfg config
	fs := newFlagSet("settings changed", "")
	cfg.register(fs, false)
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("settings changed takes no argument, got %q", fs.Arg(0))
	}
	// Within 3 s: a signal that committed later than the change bus's 5 s lateness (less a
	// poll) might be read by no replica.
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := announceSettings(actx, &cfg); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "told every running worker: cached settings dropped within a second")
	return nil
}

// announceSettings writes settings.SignalTopic on the change bus.
func announceSettings(ctx context.Context, cfg *config) error {
	ns, err := cfg.ns()
	if err != nil {
		return err
	}
	acct, err := cfg.account()
	if err != nil {
		return err
	}
	tc, err := tables.New(acct, ns)
	if err != nil {
		return err
	}
	return tc.Changes().PutSignal(ctx, settings.SignalTopic)
}

func runTrace(ctx context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	var (
		cfg      config
		asJSON   bool
		showBody bool
	)
	fs := newFlagSet("trace", "KEY [--json] [--show-body]")
	cfg.register(fs, false)
	fs.BoolVar(&asJSON, "json", false, "print the chain as JSON")
	fs.BoolVar(&showBody, "show-body", false, "include what the messages say and the jobs' event data (withheld by default: a body may hold a secret; the access is logged)")
	// Accept the flags after the key too: platform trace KEY --json.
	positional, err := parseInterspersed(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return usagef("want one KEY: an event key, a job key, a message key or a delivery key")
	}
	log, err := cfg.logger(os.Stderr)
	if err != nil {
		return err
	}
	w, err := cfg.worker(log)
	if err != nil {
		return err
	}
	// The worker reads the webhook endpoints when it starts; the trace needs them too, to
	// list an event's deliveries.
	endpoints := w.Webhooks().Refresher()
	if err := endpoints.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = endpoints.Stop(context.WithoutCancel(ctx)) }()
	t, err := w.Notify().Trace(ctx, positional[0], &notify.TraceOptions{ShowBody: showBody, Requester: "cli"})
	if errors.Is(err, platform.ErrInvalidInput) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, t)
	}
	printTrace(stdout, t)
	return nil
}

// printTrace prints t for a person; every value it did not write itself goes through clean.
func printTrace(out io.Writer, t *notify.Trace) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	step := func(indent string, s platform.Step) {
		fmt.Fprintf(tw, "%s%s\t%s %s %s\n", indent, s.At.Format("15:04:05.000"), clean(s.Stage), clean(s.Decision), clean(s.Reason))
	}
	message := func(label string, m *platform.OutgoingMessage) {
		fmt.Fprintf(tw, "  %s\t%s\n", label, clean(m.Key))
		line := fmt.Sprintf("%s, %d attempt(s)", m.State, m.Attempts)
		if m.ProviderID != "" {
			line += ", provider id " + m.ProviderID
		}
		fmt.Fprintf(tw, "    state\t%s\n", clean(line))
		if m.LastError != "" {
			fmt.Fprintf(tw, "    last error\t%s\n", clean(strings.Join(strings.Fields(m.LastError), " ")))
		}
		for _, body := range []struct{ name, text string }{{"subject", m.Subject}, {"text", m.Text}, {"html", m.HTML}} {
			if body.text != "" {
				fmt.Fprintf(tw, "    %s\t%s\n", body.name, clean(body.text))
			}
		}
		for _, s := range m.Trail {
			step("    ", s)
		}
	}
	if t.Answer != nil {
		fmt.Fprintf(tw, "answer\t%s\n", clean(t.Answer.Text))
	}
	if e := t.Event; e != nil {
		fmt.Fprintf(tw, "event\t%s\n", clean(e.EventKey))
		if h := e.History; h != nil {
			fmt.Fprintf(tw, "  history\t%s (%s: %s)\n", clean(h.HistoryEventKey), clean(h.Action), clean(h.Summary))
		}
		if e.Hint != 0 {
			fmt.Fprintf(tw, "  hint\t%d\n", e.Hint)
		}
		if len(e.Derived) > 0 {
			fmt.Fprintf(tw, "  notifies\t%v\n", e.Derived)
		}
	}
	for _, tj := range t.Jobs {
		fmt.Fprintf(tw, "job\t%s\n", clean(tj.JobKey))
		j := tj.Job
		if j == nil {
			fmt.Fprintf(tw, "  state\t(not created)\n")
			continue
		}
		state := string(j.State)
		if j.Reason != "" {
			state += " (" + j.Reason + ")"
		}
		fmt.Fprintf(tw, "  state\t%s\n", clean(state))
		fmt.Fprintf(tw, "  type\t%d, business unit %d, created %s\n", j.NotificationEventTypeID, j.BusinessUnitID, j.CreatedAt.Format(time.RFC3339))
		if len(j.EventData) > 0 {
			fmt.Fprintf(tw, "  event data\t%s\n", clean(string(j.EventData)))
		}
		for _, s := range j.Trail {
			step("  ", s)
		}
		for _, m := range tj.Messages {
			message("message", m)
		}
	}
	for _, m := range t.Deliveries {
		message("delivery", m)
	}
	for _, d := range t.Automations {
		line := fmt.Sprintf("%s (version %d)", d.Outcome, d.RuleVersion)
		if d.Detail != "" {
			line += ": " + d.Detail
		}
		fmt.Fprintf(tw, "rule\t%s\t%s\n", clean(d.RuleID), clean(line))
		if d.DedupeKey != "" {
			fmt.Fprintf(tw, "  dedupe key\t%s\n", clean(d.DedupeKey))
		}
	}
	for _, n := range t.Notes {
		fmt.Fprintf(tw, "note\t%s\n", clean(n))
	}
}
