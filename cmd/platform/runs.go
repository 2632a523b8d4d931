package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	neturl "net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/api"
	"github.com/platform/platform/worker/runs"
	"github.com/platform/platform/worker/webhooks"
)

const runsSubcommands = "list, show, cancel or replay"

func runRuns(ctx context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("want a subcommand: %s", runsSubcommands)
	}
	var (
		cfg    config
		f      = tables.RunFilter{Limit: 50}
		state  string
		asJSON bool
	)
	fs := newFlagSet("runs "+args[0], "")
	cfg.register(fs, false)
	switch args[0] {
	case "list":
		fs.StringVar(&f.Agent, "agent", "", "only this agent's runs")
		fs.StringVar(&state, "state", "", "only runs in this state: "+fmt.Sprint(tables.RunStates))
		fs.Int64Var(&f.BusinessUnitID, "business-unit", 0, "only this business unit's runs")
		fs.IntVar(&f.Limit, "limit", 50, fmt.Sprintf("at most this many, newest first (1-%d)", api.MaxRuns))
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	case "show":
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	case "cancel", "replay":
	default:
		return usagef("unknown subcommand %q: want %s", args[0], runsSubcommands)
	}
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return err
	}
	var id string
	if args[0] != "list" { // ID [flags]: flags after the ID too
		if fs.NArg() == 0 {
			return usagef("%s: want one run ID", args[0])
		}
		id = fs.Arg(0)
		if err := parseFlags(fs, fs.Args()[1:], stdout); err != nil {
			return err
		}
		if fs.NArg() != 0 {
			return usagef("%s: want one run ID, got more", args[0])
		}
	} else {
		if fs.NArg() != 0 {
			return usagef("list: unexpected argument %q", fs.Arg(0))
		}
		f.State = tables.RunState(state)
		switch {
		case f.Agent != "" && runs.CheckAgentName(f.Agent) != nil:
			return usagef("--agent: %v", runs.CheckAgentName(f.Agent))
		case state != "" && !slices.Contains(tables.RunStates, f.State):
			return usagef("--state %q: want one of %v", state, tables.RunStates)
		case f.BusinessUnitID < 0:
			return usagef("--business-unit %d: want a positive id", f.BusinessUnitID)
		case f.Limit < 1 || f.Limit > api.MaxRuns:
			return usagef("--limit %d: want 1-%d", f.Limit, api.MaxRuns)
		}
	}
	w, err := cfg.worker(nil)
	if err != nil {
		return err
	}
	if err := w.Setup(ctx); err != nil {
		return err
	}
	svc := w.Runs()
	var run *runs.Run
	switch args[0] {
	case "list":
		list, err := svc.List(ctx, f)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tAGENT\tSTATE\tBUSINESS UNIT\tATTEMPTS\tCREATED\tKEY")
		for _, r := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.ID, clean(r.Agent), clean(string(r.State)), r.BusinessUnitID, r.Attempts,
				r.CreatedAt.Format(time.RFC3339), clean(r.Key))
		}
		return tw.Flush()
	case "show":
		run, err = svc.Get(ctx, id)
	case "cancel":
		run, err = svc.Cancel(ctx, id)
	case "replay":
		run, err = svc.Replay(ctx, id)
	}
	switch {
	case errors.Is(err, platform.ErrNotFound):
		return usagef("%s: no run %s", args[0], clean(id))
	case errors.Is(err, runs.ErrFinished), errors.Is(err, platform.ErrInvalidInput):
		return usageError{err}
	case err != nil:
		return err
	}
	switch {
	case asJSON:
		return printJSON(stdout, run)
	case args[0] == "show":
		return printRun(stdout, run)
	case args[0] == "cancel":
		fmt.Fprintf(stdout, "%s %s\n", run.ID, run.State)
	default:
		fmt.Fprintln(stdout, run.ID) // the new run
	}
	return nil
}

// printRun writes what support asks of a run: who started it, its attempts and lease, its
// timings, its result or error.
func printRun(stdout io.Writer, r *runs.Run) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, clean(v))
		}
	}
	at := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(time.RFC3339Nano)
	}
	line("run", r.ID)
	line("agent", r.Agent)
	line("key", r.Key)
	line("business unit", fmt.Sprint(r.BusinessUnitID))
	line("state", string(r.State))
	o := r.Origin
	if o.RuleID != "" {
		line("started by", fmt.Sprintf("rule %s version %d", o.RuleID, o.RuleVersion))
	}
	line("event", o.EventKey)
	line("correlation", o.CorrelationID)
	if o.ReplayOf != "" {
		line("replay of", fmt.Sprintf("%s (generation %d)", o.ReplayOf, r.Generation))
	}
	line("attempts", fmt.Sprintf("%d (epoch %d)", r.Attempts, r.Epoch))
	line("lease holder", r.LeaseHolder)
	line("lease until", at(r.LeaseUntil))
	line("created", at(r.CreatedAt))
	line("started", at(r.StartedAt))
	line("finished", at(r.FinishedAt))
	line("next attempt", at(r.NextAttemptAt))
	line("input", string(r.Input))
	line("output", string(r.Output))
	line("error", r.Error)
	return tw.Flush()
}

// agentsFromEnv reads PLATFORM_AGENTS ("name=https://host/path,name2=…") and
// PLATFORM_AGENT_SECRET, which signs the requests to every one of them (the webhook secret
// rule applies). Unset: no HTTP agents.
//
// A process that does not execute runs (no runs role: api, events) still needs the agents'
// names, to check rules and start runs, but never calls them: it needs no secret, and its
// agents refuse to run.
func agentsFromEnv(executes bool) (map[string]runs.Agent, error) {
	list := strings.TrimSpace(os.Getenv("PLATFORM_AGENTS"))
	if list == "" {
		return nil, nil
	}
	secret := os.Getenv("PLATFORM_AGENT_SECRET")
	if secret == "" && executes {
		return nil, usagef("PLATFORM_AGENTS is set but PLATFORM_AGENT_SECRET is not: requests to agents are signed")
	}
	if secret != "" {
		if err := webhooks.CheckSecret(secret); err != nil {
			return nil, usagef("PLATFORM_AGENT_SECRET: %v", err)
		}
	}
	agents := map[string]runs.Agent{}
	for item := range strings.SplitSeq(list, ",") {
		name, raw, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return nil, usagef("PLATFORM_AGENTS: %q: want name=URL", item)
		}
		if err := runs.CheckAgentName(name); err != nil {
			return nil, usagef("PLATFORM_AGENTS: %v", err)
		}
		if _, dup := agents[name]; dup {
			return nil, usagef("PLATFORM_AGENTS: agent %s is listed twice", name)
		}
		u, err := neturl.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, usagef("PLATFORM_AGENTS: agent %s: %s: want an http(s) URL", name, webhooks.RedactURL(raw))
		}
		if !executes {
			agents[name] = runs.AgentFunc(func(context.Context, *runs.Run) (json.RawMessage, error) {
				return nil, fmt.Errorf("agent %s: runs execute in a process with the runs role, not this one", name)
			})
			continue
		}
		agents[name] = runs.HTTPAgent{URL: raw, Secret: secret}
	}
	return agents, nil
}
