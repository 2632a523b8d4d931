package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/platform/platform/worker"
)

// defaultStopTimeout is how long a stop lets in-flight work finish before it cancels it
// (PLATFORM_STOP_TIMEOUT). A container platform usually waits 30 s between SIGTERM and SIGKILL:
// 20 s for the work leaves time to cancel what is left, close the HTTP server (5 s at most) and
// say what was cut, before then. A runs process, whose agents may work for minutes, is given
// a longer grace period and a longer timeout (deploy/azure: 600 s and 570 s).
const defaultStopTimeout = 20 * time.Second

func runWorker(ctx context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	var (
		cfg   config
		drain bool
	)
	fs := newFlagSet("worker", "[--role all|api,events,notifications,runs] [--drain]")
	cfg.register(fs, true)
	fs.BoolVar(&drain, "drain", false, "exit 0 once every work queue of its roles is empty and nothing is in flight")
	fs.StringVar(&cfg.roles, "role", envOr("PLATFORM_ROLE", string(worker.RoleAll)), "the parts this process runs: all, or a comma-separated list of api, events, notifications, runs (PLATFORM_ROLE)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	log, err := cfg.logger(os.Stderr)
	if err != nil {
		return err
	}
	stopTimeout, err := durationEnv("PLATFORM_STOP_TIMEOUT", "20s")
	if err != nil {
		return err
	}
	if stopTimeout == 0 {
		stopTimeout = defaultStopTimeout
	}
	tracing, stopTracing, err := startTracing(ctx, cfg.roles, log)
	if err != nil {
		return err
	}
	defer stopTracingSoon(stopTracing) // a start that failed; after a stop, a no-op
	cfg.tracer = tracing.Provider
	w, err := cfg.worker(log)
	if err != nil {
		return err
	}
	acct, _ := cfg.account() // resolved by cfg.worker
	log.WithFields(map[string]any{
		"storage": acct.Describe(),
		"roles":   cfg.roles,
		"drain":   drain,
		"smtp":    os.Getenv("PLATFORM_SMTP_ADDR") != "",
		"tracing": tracing.Enabled(),
	}).Info("starting")
	if roles, _ := worker.ParseRoles(cfg.roles); roles.Has(worker.RoleNotifications) && os.Getenv("PLATFORM_SMTP_ADDR") == "" {
		log.Warn("PLATFORM_SMTP_ADDR is not set: email is written to the log, not sent")
	}

	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err = w.Start(startCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	log.WithField("http", w.HTTPAddr()).Info("listening")

	var runErr error
	if drain {
		runErr = w.WaitDrained(ctx, 250*time.Millisecond)
		if runErr == nil {
			log.Info("drained: every work queue of this process's roles is empty and nothing is in flight")
		}
	} else {
		<-ctx.Done()
		log.WithField("timeout", stopTimeout.String()).Info("stop requested; finishing in-flight work (a second signal stops at once)")
	}
	// The first signal is spent: a second one cancels what is left of the stop.
	stopCtx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	stopCtx, stopNow := signal.NotifyContext(stopCtx, os.Interrupt, syscall.SIGTERM)
	defer stopNow()
	err = w.Stop(stopCtx)
	stopTracing(stopCtx) // the worker flushed its spans last; this exports what its stop added
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if drain && runErr != nil && ctx.Err() != nil {
		return errors.New("interrupted before the queues drained")
	}
	return runErr
}
