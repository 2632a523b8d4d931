package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/platform/platform/internal/storage"
)

func runWorker(ctx context.Context, args []string, _ io.Reader, stdout io.Writer) error {
	var (
		cfg   config
		drain bool
	)
	fs := newFlagSet("worker", "[--drain]")
	cfg.register(fs, true)
	fs.BoolVar(&drain, "drain", false, "exit 0 once every work queue is empty and nothing is in flight")
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
	w, err := cfg.worker(log)
	if err != nil {
		return err
	}
	// Bind before starting, so a port in use is a clear failure and not a half-started worker.
	ln, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	srv := &http.Server{Handler: w.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Error("http server stopped")
		}
	}()
	log.WithFields(map[string]any{
		"storage": storage.Redacted(cfg.account().ResolvedConnectionString()),
		"http":    ln.Addr().String(),
		"drain":   drain,
		"smtp":    os.Getenv("PLATFORM_SMTP_ADDR") != "",
	}).Info("starting")
	if os.Getenv("PLATFORM_SMTP_ADDR") == "" {
		log.Warn("PLATFORM_SMTP_ADDR is not set: email is written to the log, not sent")
	}

	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err = w.Start(startCtx)
	cancel()
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("start: %w", err)
	}

	var runErr error
	if drain {
		runErr = w.WaitDrained(ctx, 250*time.Millisecond)
		if runErr == nil {
			log.Info("drained: every work queue is empty and nothing is in flight")
		}
	} else {
		<-ctx.Done()
		log.Info("stop requested; finishing in-flight work")
	}
	// The signal context is done by now (or drain finished): give the soft stop its own time.
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = w.Stop(stopCtx)
	_ = srv.Shutdown(stopCtx)
	log.Info("stopped")
	if drain && runErr != nil && ctx.Err() != nil {
		return errors.New("interrupted before the queues drained")
	}
	return runErr
}
