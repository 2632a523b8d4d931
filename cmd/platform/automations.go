package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/automations"
)

// automationsUsage is every subcommand of automations, as main's table and -h show them.
const automationsUsage = "add FILE|- [--json] | update RULE FILE|- [--json] | list [--json] | show RULE [--json] | enable RULE [--shadow] | disable RULE | " +
	"test (RULE | --rule FILE) EVENTFILE|- [--json] | explain RULE EVENT_KEY [--json] | replay RULE EVENT_KEY [--json]"

// automationsArgs is how many arguments each subcommand takes, and what they are.
var automationsArgs = map[string]struct {
	n     int
	names string
}{
	"add": {1, "FILE|-"}, "update": {2, "RULE FILE|-"}, "list": {0, ""}, "show": {1, "RULE"}, "enable": {1, "RULE"},
	"disable": {1, "RULE"}, "test": {2, "RULE EVENTFILE|- (or --rule FILE EVENTFILE|-)"}, "explain": {2, "RULE EVENT_KEY"},
	"replay": {2, "RULE EVENT_KEY"},
}

// runAutomations manages automation rules, which live in the settings database: it opens it,
// and the storage account where rule changes are announced to running workers.
func runAutomations(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("want a subcommand: add, update, list, show, enable, disable, test, explain or replay")
	}
	sub := args[0]
	want, ok := automationsArgs[sub]
	if !ok {
		return usagef("unknown subcommand %q: want add, update, list, show, enable, disable, test, explain or replay", sub)
	}
	var (
		cfg            config
		asJSON, shadow bool
		ruleFile       string
	)
	fs := newFlagSet("automations "+sub, want.names)
	cfg.register(fs, false)
	switch sub {
	case "enable":
		fs.BoolVar(&shadow, "shadow", false, "evaluate and record what it would do, and do nothing")
	case "disable":
	case "test":
		fs.StringVar(&ruleFile, "rule", "", "test the rule of this file (or - for standard input), not a stored one")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	default:
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	}
	pos, err := parseInterleaved(fs, args[1:], stdout)
	if err != nil {
		return err
	}
	if sub == "test" && ruleFile != "" {
		want.n = 1
	}
	if len(pos) != want.n {
		return usagef("%s: want %s, got %d arguments", sub, cmp.Or(want.names, "no argument"), len(pos))
	}
	// Read what the command acts on before touching storage: a bad file is exit 2 at once.
	var (
		nr automations.NewRule
		ev *platform.EntityEvent
	)
	switch sub {
	case "add", "update":
		if nr, err = readRule(pos[len(pos)-1], stdin); err != nil {
			return err
		}
	case "test":
		if ruleFile != "" {
			if nr, err = readRule(ruleFile, stdin); err != nil {
				return err
			}
		}
		if ruleFile == "-" && pos[len(pos)-1] == "-" {
			return usagef("test: the rule and the event cannot both come from standard input")
		}
		if ev, err = readEvent(pos[len(pos)-1], stdin); err != nil {
			return err
		}
	case "explain", "replay":
		if _, err := platform.ParseEventKey(pos[1]); err != nil {
			return usagef("EVENT_KEY: %s", firstLine(err))
		}
	}
	w, err := cfg.worker(nil)
	if err != nil {
		return err
	}
	if err := w.Setup(ctx); err != nil {
		return err
	}
	closeSettings, err := w.OpenSettings(ctx)
	if err != nil {
		return err
	}
	defer closeSettings()
	s, by := w.Automations(), cliActor()
	switch sub {
	case "add":
		r, err := s.Add(ctx, nr, by)
		if err != nil {
			return ruleError(err)
		}
		if asJSON {
			return printJSON(stdout, r)
		}
		fmt.Fprintln(stdout, r.ID)
	case "update":
		r, err := s.Update(ctx, pos[0], nr, by)
		if err != nil {
			return ruleError(err)
		}
		if asJSON {
			return printJSON(stdout, r)
		}
		fmt.Fprintf(stdout, "%s version %d\n", r.ID, r.Version)
	case "list":
		all, err := s.List(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, all)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tVERSION\tBUSINESS UNIT\tSTATE\tEVENT TYPES\tACTION\tNAME")
		for _, r := range all {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%v\t%s\t%s\n", r.ID, r.Version, r.BusinessUnitID, ruleState(r), r.EventTypes, clean(r.Action.Describe()), clean(r.Name))
		}
		return tw.Flush()
	case "show":
		vs, err := s.Versions(ctx, pos[0])
		if err != nil {
			return ruleError(err)
		}
		if asJSON {
			return printJSON(stdout, vs)
		}
		return printRule(stdout, vs)
	case "enable", "disable":
		var r *automations.Rule
		if sub == "enable" {
			r, err = s.Enable(ctx, pos[0], shadow, by)
		} else {
			r, err = s.Disable(ctx, pos[0], by)
		}
		if err != nil {
			return ruleError(err)
		}
		fmt.Fprintf(stdout, "%s: %s (version %d)\n", r.ID, ruleState(r), r.Version)
	case "test":
		r := ruleOf(nr)
		if ruleFile == "" {
			if r, err = s.Get(ctx, pos[0]); err != nil {
				return ruleError(err)
			}
		}
		e, err := s.Test(ctx, r, ev)
		if err != nil {
			return ruleError(err)
		}
		if asJSON {
			return printJSON(stdout, e)
		}
		return printEvaluation(stdout, e, false)
	case "explain":
		e, err := s.Explain(ctx, pos[0], pos[1])
		if err != nil {
			return ruleError(err)
		}
		if asJSON {
			return printJSON(stdout, e)
		}
		return printEvaluation(stdout, e, true)
	case "replay":
		d, err := s.Replay(ctx, pos[0], pos[1], by)
		if err != nil {
			return ruleError(err)
		}
		if asJSON {
			return printJSON(stdout, d)
		}
		return printDecision(stdout, "decision", d)
	}
	return nil
}

// parseInterleaved parses flags wherever they stand among the arguments (show RULE --json as
// well as show --json RULE) and returns the arguments.
func parseInterleaved(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args, stdout); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
}

// cliActor names who changes a rule from the command line, in its versions' history.
func cliActor() string {
	if u := os.Getenv("USER"); u != "" {
		return "cli:" + u
	}
	return "cli"
}

// ruleError turns the concern's refusals into exit 2 with one line: a bad rule (a CEL error's
// first line names the field, line and column; the lines after it repeat the source with a
// caret), an unknown rule or event. A rule changed meanwhile, or storage failing, is exit 1.
func ruleError(err error) error {
	if errors.Is(err, platform.ErrInvalidInput) || errors.Is(err, platform.ErrNotFound) {
		return usageError{errors.New(firstLine(err))}
	}
	if errors.Is(err, platform.ErrConflict) {
		return fmt.Errorf("%w: the rule changed meanwhile; run the command again", err)
	}
	return err
}

func firstLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return strings.TrimSpace(line)
}

func readRule(name string, stdin io.Reader) (automations.NewRule, error) {
	data, err := readInput(name, stdin)
	if err != nil {
		return automations.NewRule{}, err
	}
	nr, err := automations.ParseRule(data)
	if err != nil {
		return automations.NewRule{}, usagef("%s: %s", name, firstLine(err))
	}
	return nr, nil
}

func readEvent(name string, stdin io.Reader) (*platform.EntityEvent, error) {
	data, err := readInput(name, stdin)
	if err != nil {
		return nil, err
	}
	ev, err := platform.DecodeEvent(data)
	if err != nil {
		return nil, usagef("%s: %s", name, firstLine(err))
	}
	return ev, nil
}

// ruleOf is the rule a definition would store (enabled, version 0, no id): what test --rule
// evaluates.
func ruleOf(nr automations.NewRule) *automations.Rule {
	return &automations.Rule{Name: nr.Name, BusinessUnitID: nr.BusinessUnitID, ProjectID: nr.ProjectID, Enabled: true, Shadow: nr.Shadow,
		EventTypes: nr.EventTypes, Filter: nr.Filter, DedupeKey: nr.DedupeKey, RateLimit: nr.RateLimit, Action: nr.Action}
}

func ruleState(r *automations.Rule) string {
	switch {
	case !r.Enabled:
		return "disabled"
	case r.Shadow:
		return "shadow"
	}
	return "enabled"
}

// printRule prints a rule's newest version, then every version with its note, who and when.
func printRule(w io.Writer, vs []*automations.Rule) error {
	r := vs[len(vs)-1]
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "rule\t%s\n", r.ID)
	if r.Name != "" {
		fmt.Fprintf(tw, "name\t%s\n", clean(r.Name))
	}
	fmt.Fprintf(tw, "business unit\t%d\n", r.BusinessUnitID)
	if r.ProjectID != "" {
		fmt.Fprintf(tw, "project\t%s\n", clean(r.ProjectID))
	}
	fmt.Fprintf(tw, "state\t%s (version %d)\n", ruleState(r), r.Version)
	fmt.Fprintf(tw, "event types\t%v\n", r.EventTypes)
	fmt.Fprintf(tw, "filter\t%s\n", clean(cmp.Or(r.Filter, "(none: every event)")))
	fmt.Fprintf(tw, "dedupe key\t%s\n", clean(cmp.Or(r.DedupeKey, "(the event's key)")))
	if rl := r.RateLimit; rl != nil {
		fmt.Fprintf(tw, "rate limit\t%d per %s%s\n", rl.Count, rl.Per, clean(prefixed(" by ", rl.Key)))
	}
	fmt.Fprintf(tw, "action\t%s\n", clean(r.Action.Describe()))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tAT\tBY\tNOTE")
	for _, v := range vs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", v.Version, ruleState(v), v.CreatedAt.Format(time.RFC3339), clean(v.CreatedBy), clean(v.Note))
	}
	return tw.Flush()
}

// printEvaluation prints what a rule decides on an event, each clause of its filter, and the
// decision recorded when the event was processed (explain).
func printEvaluation(w io.Writer, e *automations.Evaluation, explained bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "event\t%s\n", clean(e.EventKey))
	if e.RuleID != "" {
		fmt.Fprintf(tw, "rule\t%s (version %d)\n", e.RuleID, e.RuleVersion)
	}
	fmt.Fprintf(tw, "outcome\t%s\n", e.Outcome)
	if e.DedupeKey != "" {
		fmt.Fprintf(tw, "dedupe key\t%s\n", clean(e.DedupeKey))
	}
	if e.Detail != "" {
		fmt.Fprintf(tw, "detail\t%s\n", clean(e.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(e.Clauses) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLAUSE\tRESULT")
		for _, c := range e.Clauses {
			fmt.Fprintf(tw, "%s\t%s\n", clean(c.Expr), clean(c.Result))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if !explained {
		return nil
	}
	fmt.Fprintln(w)
	if e.Recorded == nil {
		_, err := fmt.Fprintln(w, "recorded  none: the rule made no decision on this event (it did not exist, or did not name the event's type or unit, when the event was processed)")
		return err
	}
	return printDecision(w, "recorded", e.Recorded)
}

// printDecision prints a recorded decision under title.
func printDecision(w io.Writer, title string, d *tables.Decision) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\t%s (rule version %d, generation %d) at %s\n", title, d.Outcome, d.RuleVersion, d.Generation, d.DecidedAt.Format(time.RFC3339))
	if d.DedupeKey != "" {
		fmt.Fprintf(tw, "dedupe key\t%s\n", clean(d.DedupeKey))
	}
	if d.Detail != "" {
		fmt.Fprintf(tw, "detail\t%s\n", clean(d.Detail))
	}
	return tw.Flush()
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
