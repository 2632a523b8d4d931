//go:build chaos

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform/internal/faults"
	"github.com/platform/platform/internal/lifecycle"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/runs"
)

// The chaos build reads, besides the normal configuration:
//
//	PLATFORM_CHAOS_FAULT_RATE   share of storage requests to fail (0 to 1; default 0)
//	PLATFORM_CHAOS_SEED         the fault draw's seed (default: the process id)
//	PLATFORM_CHAOS_SEND_LEASE   the distributor's send lease (default: the worker's, 2m)
//	PLATFORM_CHAOS_VISIBILITY   how long a dequeued message stays hidden (default 30s)
//	PLATFORM_CHAOS_RUN_LEASE    an agent run's lease (default: the worker's, 30s)
//	PLATFORM_CHAOS_RUN_ATTEMPTS every agent's MaxAttempts (default 3): a lost lease counts as
//	                            an attempt, and a run whose runner is killed that many times
//	                            ends Failed — make chaos kills far more often than any host dies
//	PLATFORM_CHAOS_COUNT_FILE   count the storage requests by kind and time them; write
//	                            {"counts":{kind:n},"elapsed_ns":{kind:ns}} there every 500 ms
//	                            (make bench reads it)
//	PLATFORM_CHAOS_NO_CHANGE_STREAM  1: the change stream off (realtime.Config.Disabled), so
//	                            that make bench measures the history concern alone
//	PLATFORM_CHAOS_CPU_PROFILE  on SIGUSR1 start a CPU profile, on the next SIGUSR1 write it
//	                            there (make bench profiles exactly its measured window)
func init() {
	chaos = func(cfg *worker.Config) error {
		if path := os.Getenv("PLATFORM_CHAOS_COUNT_FILE"); path != "" {
			counter := &storage.Counter{}
			cfg.Account.Counter = counter
			var last []byte
			cfg.Components = append(cfg.Components, lifecycle.Every("chaos count file", 500*time.Millisecond, func(context.Context) {
				b, _ := json.Marshal(map[string]any{"counts": counter.Snapshot(), "elapsed_ns": counter.Elapsed()})
				if bytes.Equal(b, last) {
					return
				}
				if err := os.WriteFile(path+".tmp", b, 0o644); err == nil && os.Rename(path+".tmp", path) == nil {
					last = b
				}
			}))
		}
		if s := os.Getenv("PLATFORM_CHAOS_FAULT_RATE"); s != "" {
			rate, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return fmt.Errorf("PLATFORM_CHAOS_FAULT_RATE %q: want a number from 0 to 1", s)
			}
			seed := uint64(os.Getpid())
			if s := os.Getenv("PLATFORM_CHAOS_SEED"); s != "" {
				if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
					return fmt.Errorf("PLATFORM_CHAOS_SEED %q: want an unsigned integer", s)
				}
			}
			inj, err := faults.New(rate, seed)
			if err != nil {
				return fmt.Errorf("PLATFORM_CHAOS_FAULT_RATE: %w", err)
			}
			cfg.Account.Policies = append(cfg.Account.Policies, inj)
			cfg.Logger.WithField("rate", rate).Warn("chaos build: failing storage requests on purpose")
		}
		if path := os.Getenv("PLATFORM_CHAOS_CPU_PROFILE"); path != "" {
			cfg.Components = append(cfg.Components, lifecycle.Go("chaos cpu profile", func(ctx context.Context) { profileOnSignal(ctx, path, cfg.Logger) }))
		}
		for name, d := range map[string]*time.Duration{
			"PLATFORM_CHAOS_SEND_LEASE": &cfg.Delivery.SendLease,
			"PLATFORM_CHAOS_VISIBILITY": &cfg.Consumer.VisibilityTimeout,
			"PLATFORM_CHAOS_RUN_LEASE":  &cfg.Runs.LeaseTTL,
		} {
			if s := os.Getenv(name); s != "" {
				v, err := time.ParseDuration(s)
				if err != nil || v <= 0 {
					return fmt.Errorf("%s %q: want a positive duration such as 10s", name, s)
				}
				*d = v
			}
		}
		if os.Getenv("PLATFORM_CHAOS_NO_CHANGE_STREAM") == "1" {
			cfg.Realtime.Disabled = true
		}
		if s := os.Getenv("PLATFORM_CHAOS_RUN_ATTEMPTS"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return fmt.Errorf("PLATFORM_CHAOS_RUN_ATTEMPTS %q: want a positive integer", s)
			}
			for name, a := range cfg.Agents {
				cfg.Agents[name] = runs.WithOptions(a, runs.Options{MaxAttempts: n})
			}
		}
		return nil
	}
}

// profileOnSignal toggles a CPU profile on each SIGUSR1: the first starts it, the second
// writes it to path, and so on (each profile replaces the last).
func profileOnSignal(ctx context.Context, path string, log logrus.FieldLogger) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	defer signal.Stop(sig)
	var f *os.File
	for {
		select {
		case <-ctx.Done():
			if f != nil {
				pprof.StopCPUProfile()
				f.Close()
			}
			return
		case <-sig:
		}
		if f == nil {
			var err error
			if f, err = os.Create(path); err != nil {
				log.WithError(err).Error("chaos build: cannot write the CPU profile")
				continue
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				log.WithError(err).Error("chaos build: cannot start the CPU profile")
				f.Close()
				f = nil
			}
			continue
		}
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.WithError(err).Error("chaos build: cannot write the CPU profile")
		}
		f = nil
	}
}
