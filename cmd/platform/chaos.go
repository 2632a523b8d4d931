//go:build chaos

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/platform/platform/internal/faults"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/worker"
)

// The chaos build reads, besides the normal configuration:
//
//	PLATFORM_CHAOS_FAULT_RATE   share of storage requests to fail (0 to 1; default 0)
//	PLATFORM_CHAOS_SEED         the fault draw's seed (default: the process id)
//	PLATFORM_CHAOS_SEND_LEASE   the distributor's send lease (default: the worker's, 2m)
//	PLATFORM_CHAOS_VISIBILITY   how long a dequeued message stays hidden (default 30s)
//	PLATFORM_CHAOS_COUNT_FILE   count the storage requests by kind; write the counts there as
//	                            JSON every 100 ms (make bench reads them)
func init() {
	chaos = func(cfg *worker.Config) error {
		if path := os.Getenv("PLATFORM_CHAOS_COUNT_FILE"); path != "" {
			counter := &storage.Counter{}
			cfg.Account.Counter = counter
			go func() {
				for range time.Tick(100 * time.Millisecond) {
					b, _ := json.Marshal(counter.Snapshot())
					if err := os.WriteFile(path+".tmp", b, 0o644); err == nil {
						_ = os.Rename(path+".tmp", path)
					}
				}
			}()
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
		for name, d := range map[string]*time.Duration{
			"PLATFORM_CHAOS_SEND_LEASE": &cfg.Notifications.SendLease,
			"PLATFORM_CHAOS_VISIBILITY": &cfg.Consumer.VisibilityTimeout,
		} {
			if s := os.Getenv(name); s != "" {
				v, err := time.ParseDuration(s)
				if err != nil || v <= 0 {
					return fmt.Errorf("%s %q: want a positive duration such as 10s", name, s)
				}
				*d = v
			}
		}
		return nil
	}
}
