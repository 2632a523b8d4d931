package worker

import (
	"fmt"
	"slices"
	"strings"

	"github.com/platform/platform"
)

// Role is a part of the worker that scales on a signal of its own, run as its own process (one
// container app per role) or with the others in one process (RoleAll, the default).
type Role string

const (
	// RoleAPI serves the HTTP API (/v1, the change stream among it) and runs the outbox
	// materializer and reconciler (each leader-elected by a blob lease). It scales on HTTP.
	RoleAPI Role = "api"
	// RoleEvents consumes entity-events: every concern's work on an event (history,
	// notification jobs, webhook deliveries, realtime changes, automation rules).
	RoleEvents Role = "events"
	// RoleNotifications consumes the notification scheduler, generator and distributor
	// queues (the distributor delivers webhooks to integrators' endpoints too).
	RoleNotifications Role = "notifications"
	// RoleRuns consumes agent-runs: the agent runs automation rules start.
	RoleRuns Role = "runs"
	// RoleAll is every role in one process.
	RoleAll Role = "all"
)

// Roles are the known roles, in the order they are listed.
var Roles = []Role{RoleAPI, RoleEvents, RoleNotifications, RoleRuns}

// roleQueues are the work queues each role consumes.
var roleQueues = map[Role][]string{
	RoleEvents:        {platform.QueueEntityEvents},
	RoleNotifications: {platform.QueueNotificationScheduler, platform.QueueNotificationGenerator, platform.QueueNotificationDistributor},
	RoleRuns:          {platform.QueueAgentRuns},
}

// RoleSet is the roles one process runs; the empty set is every role.
type RoleSet []Role

// ParseRoles reads "all" or a comma-separated list of roles ("events,notifications").
func ParseRoles(s string) (RoleSet, error) {
	var set RoleSet
	for _, name := range strings.Split(s, ",") {
		r := Role(strings.TrimSpace(name))
		switch {
		case r == RoleAll:
			return nil, nil
		case !slices.Contains(Roles, r):
			return nil, fmt.Errorf("role %q: want all, or one or more (comma-separated) of api, events, notifications, runs", name)
		case !slices.Contains(set, r):
			set = append(set, r)
		}
	}
	return set, nil
}

// Has reports whether the set includes role r.
func (s RoleSet) Has(r Role) bool { return len(s) == 0 || slices.Contains(s, r) }

// consumes reports whether the set consumes work queue q.
func (s RoleSet) consumes(q string) bool {
	for r, qs := range roleQueues {
		if s.Has(r) && slices.Contains(qs, q) {
			return true
		}
	}
	return false
}

func (s RoleSet) String() string {
	if len(s) == 0 {
		return string(RoleAll)
	}
	names := make([]string, len(s))
	for i, r := range s {
		names[i] = string(r)
	}
	return strings.Join(names, ",")
}
