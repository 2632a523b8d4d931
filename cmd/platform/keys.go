package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
)

// runKeys manages the API keys services and tools send as "Authorization: Bearer plk_…". Like
// every command that talks to storage, it holds the storage credential: the HTTP API is the
// surface for everyone else.
func runKeys(ctx context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("want a subcommand: create, list or revoke")
	}
	var (
		cfg                  config
		role, units, expires string
		name                 string
		asJSON               bool
	)
	fs := newFlagSet("keys "+args[0], "")
	cfg.register(fs, false)
	switch args[0] {
	case "create":
		fs.StringVar(&role, "role", "", "the key's role: "+roleNames())
		fs.StringVar(&units, "business-units", "", "the business units it may see: a list such as 42,43, or * for every unit (required unless --role admin)")
		fs.StringVar(&expires, "expires", "", "how long it is valid, e.g. 90d or 12h (default: until revoked)")
		fs.StringVar(&name, "name", "", "whom the key is for, shown by keys list")
	case "list":
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	case "revoke":
	default:
		return usagef("unknown subcommand %q: want create, list or revoke", args[0])
	}
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return err
	}
	nk := auth.NewKey{Role: auth.Role(role), Name: name}
	switch args[0] {
	case "create":
		if role == "" {
			return usagef("--role: want one of %s", roleNames())
		}
		var err error
		if units != "" {
			if nk.Units, err = auth.ParseUnits(units); err != nil {
				return usagef("--business-units: %v", err)
			}
		}
		if nk.TTL, err = parseDuration(expires); err != nil {
			return usagef("--expires: %v", err)
		}
	case "revoke":
		if fs.NArg() != 1 {
			return usagef("revoke: want one key ID (keys list shows them)")
		}
	}
	if fs.NArg() > 0 && args[0] != "revoke" {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	w, err := cfg.worker(nil)
	if err != nil {
		return err
	}
	if err := w.Setup(ctx); err != nil {
		return err
	}
	switch args[0] {
	case "create":
		secret, key, err := w.Keys().Create(ctx, nk)
		if errors.Is(err, platform.ErrInvalidInput) {
			return usageError{err}
		}
		if err != nil {
			return err
		}
		exp := "never"
		if key.ExpiresAt != nil {
			exp = key.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(os.Stderr, "API key %s (role %s, business units %s, expires %s): shown once, store it now\n",
			key.ID, key.Role, cmp.Or(key.Units, "all"), exp)
		fmt.Fprintln(stdout, secret)
	case "list":
		all, err := w.Keys().List(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, all)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tROLE\tBUSINESS UNITS\tCREATED\tEXPIRES\tREVOKED\tNAME")
		for _, k := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, clean(k.Role), clean(cmp.Or(k.Units, "all")),
				k.CreatedAt.Format(time.RFC3339), timeOr(k.ExpiresAt, "never"), timeOr(k.RevokedAt, "-"), clean(k.Name))
		}
		return tw.Flush()
	case "revoke":
		key, err := w.Keys().Revoke(ctx, fs.Arg(0))
		if errors.Is(err, platform.ErrInvalidInput) {
			return usageError{err}
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s at %s (refused by every replica within %s)\n", key.ID, key.RevokedAt.Format(time.RFC3339), auth.DefaultKeyCacheTTL)
	}
	return nil
}

func roleNames() string {
	names := make([]string, len(auth.Roles))
	for i, r := range auth.Roles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

func timeOr(t *time.Time, def string) string {
	if t == nil {
		return def
	}
	return t.Format(time.RFC3339)
}
