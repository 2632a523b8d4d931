package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/webhooks"
)

// runWebhookDeliveries is `platform webhooks deliveries ID [--failed] [--limit N] [--json]`:
// an endpoint's latest deliveries, newest first, for an integrator's support question.
func runWebhookDeliveries(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		cfg    config
		q      webhooks.DeliveriesQuery
		asJSON bool
	)
	fs := newFlagSet("webhooks deliveries", "ID [--failed] [--limit N] [--json]")
	cfg.register(fs, false)
	fs.BoolVar(&q.Failed, "failed", false, "only the deliveries that failed for good")
	fs.IntVar(&q.Limit, "limit", 20, fmt.Sprintf("how many, 1-%d", webhooks.MaxDeliveries))
	fs.BoolVar(&asJSON, "json", false, "print a JSON array")
	positional, err := parseInterspersed(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(positional) != 1 || positional[0] == "" {
		return usagef("deliveries: want one endpoint ID")
	}
	if q.Limit < 1 || q.Limit > webhooks.MaxDeliveries {
		return usagef("--limit: want 1-%d, got %d", webhooks.MaxDeliveries, q.Limit)
	}
	w, err := cfg.worker(nil)
	if err != nil {
		return err
	}
	if err := w.Setup(ctx); err != nil {
		return err
	}
	log, err := w.Webhooks().Deliveries(ctx, positional[0], q)
	if errors.Is(err, platform.ErrInvalidInput) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, log)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CREATED\tUPDATED\tSTATE\tATTEMPTS\tRESPONSE\tLATENCY\tEVENT KEY\tDELIVERY KEY")
	for _, d := range log {
		response := clean(d.LastError)
		if d.ResponseCode != 0 {
			response = fmt.Sprintf("http %d", d.ResponseCode)
		}
		latency := "-"
		if d.LatencyMs > 0 {
			latency = fmt.Sprintf("%d ms", d.LatencyMs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", d.CreatedAt.Format(time.RFC3339), d.UpdatedAt.Format(time.RFC3339),
			clean(string(d.State)), d.Attempts, response, latency, clean(d.EventKey), clean(d.DeliveryKey))
	}
	return tw.Flush()
}
