package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	neturl "net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/webhooks"
)

func runWebhooks(ctx context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("want a subcommand: add, list, disable, enable, rotate-secret, deliveries, replay or recipient-secret")
	}
	var (
		cfg          config
		url, secret  string
		businessUnit int64
		eventTypes   string
		asJSON       bool
		expireOld    time.Duration
		replay       replayFlags
	)
	fs := newFlagSet("webhooks "+args[0], "")
	cfg.register(fs, false)
	switch args[0] {
	case "add":
		fs.StringVar(&url, "url", "", "the endpoint's URL (http or https)")
		fs.Int64Var(&businessUnit, "business-unit", 0, "the business unit whose events it receives")
		fs.StringVar(&eventTypes, "event-types", "", "comma-separated event type ids, e.g. 11,12")
		fs.StringVar(&secret, "secret", "", "the HMAC secret, at least 128 bits by length and characters used (e.g. 32 random hex digits) or whsec_ and the base64 of at least 16 random bytes; default: whsec_ and 32 random bytes, generated and printed once on standard error")
	case "list":
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	case "disable", "enable":
	case "rotate-secret":
		fs.DurationVar(&expireOld, "expire-old-after", 24*time.Hour, "how long the old secret keeps signing besides the new one (0: revoked at once)")
	case "deliveries":
		return runWebhookDeliveries(ctx, args[1:], stdout)
	case "replay":
		replay.register(fs)
	case "recipient-secret":
		fs.StringVar(&url, "url", "", "a webhook-channel recipient's URL, exactly as its address")
	default:
		return usagef("unknown subcommand %q: want add, list, disable, enable, rotate-secret, deliveries, replay or recipient-secret", args[0])
	}
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return err
	}
	var id string
	if args[0] == "rotate-secret" { // ID [--expire-old-after D]: flags after the ID too
		if fs.NArg() == 0 {
			return usagef("rotate-secret: want one endpoint ID")
		}
		id = fs.Arg(0)
		if err := parseFlags(fs, fs.Args()[1:], stdout); err != nil {
			return err
		}
		if fs.NArg() != 0 {
			return usagef("rotate-secret: want one endpoint ID, got more")
		}
		if expireOld < 0 || expireOld > webhooks.MaxExpireOldAfter {
			return usagef("--expire-old-after: %s, want 0 (revoke the old secret at once) up to %s", expireOld, webhooks.MaxExpireOldAfter)
		}
	}
	if args[0] == "recipient-secret" {
		return printRecipientSecret(url, stdout)
	}
	w, err := cfg.worker(nil)
	if err != nil {
		return err
	}
	if err := w.Setup(ctx); err != nil {
		return err
	}
	switch args[0] {
	case "replay":
		return runReplay(ctx, w, fs, &replay, stdout)
	case "add":
		var types []int
		for _, s := range strings.Split(eventTypes, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			n, err := strconv.Atoi(s)
			if err != nil {
				return usagef("--event-types: %q is not an event type id", s)
			}
			types = append(types, n)
		}
		e, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: url, BusinessUnitID: businessUnit, EventTypes: types, Secret: secret})
		if errors.Is(err, platform.ErrInvalidInput) {
			return usageError{err}
		}
		if err != nil {
			return err
		}
		if secret == "" {
			fmt.Fprintf(os.Stderr, "secret (shown once; verify webhook-signature with it): %s\n", e.Secret)
		}
		fmt.Fprintln(stdout, e.ID)
	case "list":
		all, err := w.Webhooks().List(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, all)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tBUSINESS UNIT\tEVENT TYPES\tENABLED\tURL\tDISABLED REASON")
		for _, e := range all {
			fmt.Fprintf(tw, "%s\t%d\t%v\t%t\t%s\t%s\n", clean(e.ID), e.BusinessUnitID, e.EventTypes, e.Enabled, clean(e.URL), clean(e.DisabledReason))
		}
		return tw.Flush()
	case "disable", "enable":
		if fs.NArg() != 1 {
			return usagef("%s: want one endpoint ID", args[0])
		}
		change := w.Webhooks().Disable
		if args[0] == "enable" {
			change = w.Webhooks().Enable
		}
		err := change(ctx, fs.Arg(0))
		if errors.Is(err, platform.ErrInvalidInput) {
			return usageError{err}
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%sd %s\n", args[0], clean(fs.Arg(0)))
	case "rotate-secret":
		r, err := w.Webhooks().RotateSecret(ctx, id, expireOld)
		switch {
		case errors.Is(err, platform.ErrInvalidInput):
			return usageError{err}
		case errors.Is(err, platform.ErrNotFound):
			return usagef("rotate-secret: no webhook endpoint %s", clean(id))
		case err != nil:
			return err
		}
		fmt.Fprintln(stdout, r.Secret) // shown once
		if expireOld > 0 {
			fmt.Fprintf(os.Stderr, "new secret shown once; the old one signs too until %s\n", r.OldSecretExpiresAt.Format(time.RFC3339))
		} else {
			fmt.Fprintln(os.Stderr, "new secret shown once; the old one is revoked")
		}
	}
	return nil
}

// printRecipientSecret prints the secret a webhook-channel recipient verifies its deliveries
// with, derived from PLATFORM_WEBHOOK_SECRET and its URL: the operator hands it over.
func printRecipientSecret(raw string, stdout io.Writer) error {
	master := os.Getenv("PLATFORM_WEBHOOK_SECRET")
	if master == "" {
		return usagef("PLATFORM_WEBHOOK_SECRET is not set: recipients' secrets are derived from it")
	}
	if raw == "" {
		return usagef("--url: want the recipient's http(s) URL")
	}
	u, err := neturl.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return usagef("--url: %s: want the recipient's http(s) URL", webhooks.RedactURL(raw))
	}
	fmt.Fprintln(stdout, webhooks.RecipientSecret(master, raw))
	return nil
}
