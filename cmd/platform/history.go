package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/platform/platform"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/history"
)

func runHistory(ctx context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	var (
		cfg          config
		entityType   int
		guid         string
		entityID     int64
		businessUnit int64
		limit        int
		after        string
		asJSON       bool
	)
	fs := newFlagSet("history", "--entity-type N (--entity-guid G | --entity-id N | --business-unit N) [--limit N] [--after T] [--json]")
	cfg.register(fs, false)
	fs.IntVar(&entityType, "entity-type", 0, "entity type id (required)")
	fs.StringVar(&guid, "entity-guid", "", "the entity's GUID")
	fs.Int64Var(&entityID, "entity-id", 0, "the entity's numeric id")
	fs.Int64Var(&businessUnit, "business-unit", 0, "the business unit, for entities known by it alone (settings)")
	fs.IntVar(&limit, "limit", 20, "rows per page, 1-1000")
	fs.StringVar(&after, "after", "", "continuation token printed by the previous page")
	fs.BoolVar(&asJSON, "json", false, "print a JSON array of rows")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if entityType <= 0 {
		return usagef("--entity-type: want a positive entity type id")
	}
	if limit < 1 || limit > 1000 {
		return usagef("--limit: want 1-1000, got %d", limit)
	}
	identity, err := identityFlag(fs, guid, entityID, businessUnit)
	if err != nil {
		return err
	}
	ns, err := cfg.ns()
	if err != nil {
		return err
	}
	acct, err := cfg.account()
	if err != nil {
		return err
	}
	q, err := queues.New(acct, ns)
	if err != nil {
		return err
	}
	t, err := tables.New(acct, ns)
	if err != nil {
		return err
	}
	maxPayload, err := positiveEnv("PLATFORM_MAX_PAYLOAD_BYTES")
	if err != nil {
		return err
	}
	q.Blobs().SetMaxPayloadBytes(maxPayload)
	rows, next, err := history.Timeline(ctx, t.History(), q.Blobs(), entityType, identity, &tables.TimelineOptions{Limit: limit, After: after})
	if errors.Is(err, tables.ErrInvalidToken) {
		return usagef("--after: %v", err)
	}
	if err != nil {
		return err
	}
	if asJSON {
		if rows == nil {
			rows = []platform.HistoryRecord{}
		}
		if err := printJSON(stdout, rows); err != nil {
			return err
		}
		if next != "" {
			fmt.Fprintf(os.Stderr, "more rows: add --after %s\n", clean(next))
		}
		return nil
	}
	if len(rows) == 0 {
		fmt.Fprintf(stdout, "no history for entity type %d, identity %s\n", entityType, clean(identity))
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CREATED ON (UTC)\tEVENT\tACTION\tSUMMARY\tHISTORY EVENT KEY")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", platform.FormatCreatedOn(r.CreatedOn), r.EventTypeID, clean(r.Action), clean(r.Summary), clean(r.HistoryEventKey))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(stdout, "more rows: add --after %s\n", clean(next))
	}
	return nil
}

// identityFlag is the one identity flag given, canonical as in keys.
func identityFlag(fs *flag.FlagSet, guid string, entityID, businessUnit int64) (string, error) {
	given := 0
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "entity-guid", "entity-id", "business-unit":
			given++
		}
	})
	if given != 1 {
		return "", usagef("give exactly one of --entity-guid, --entity-id, --business-unit")
	}
	switch {
	case guid != "":
		g, err := platform.NormalizeGUID(guid)
		if err != nil || g == "" {
			return "", usagef("--entity-guid: want a non-nil UUID, got %q", guid)
		}
		return g, nil
	case entityID > 0:
		return strconv.FormatInt(entityID, 10), nil
	case businessUnit > 0:
		return strconv.FormatInt(businessUnit, 10), nil
	}
	return "", usagef("--entity-id and --business-unit: want a positive id")
}
