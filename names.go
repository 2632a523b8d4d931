package platform

import "fmt"

// Queue names (docs/contracts.md, "Storage names"), before the namespace prefix. Each has a poison
// twin, PoisonQueue(q).
const (
	QueueEntityEvents            = "entity-events"
	QueueNotificationScheduler   = "notification-scheduler"
	QueueNotificationGenerator   = "notification-generator"
	QueueNotificationDistributor = "notification-distributor"
	QueueAgentRuns               = "agent-runs"
)

// WorkQueues are the queues that carry work, each with a poison twin. Redrive accepts these.
var WorkQueues = []string{QueueEntityEvents, QueueNotificationScheduler, QueueNotificationGenerator, QueueNotificationDistributor, QueueAgentRuns}

// Table names (docs/contracts.md, "Storage names"), before the namespace prefix.
const (
	TableEntityHistory = "EntityHistory"
)

// Blob container names (docs/contracts.md, "Storage names"), before the namespace prefix.
const (
	ContainerEventPayloads         = "event-payloads"
	ContainerNotificationTemplates = "notification-templates"
)

// PoisonSuffix turns a queue name into its poison twin's.
const PoisonSuffix = "-poison"

// PoisonQueue is the poison twin of queue q.
func PoisonQueue(q string) string { return q + PoisonSuffix }

// Namespace prefixes every queue, table and container name, so that tests and environments that
// share a storage account never share state. The empty namespace is the default.
type Namespace string

// Validate enforces the contract: empty, or 1-24 lowercase letters and digits starting with a
// letter.
func (ns Namespace) Validate() error {
	if ns == "" {
		return nil
	}
	if len(ns) > 24 {
		return fmt.Errorf("namespace %q: longer than 24 characters", string(ns))
	}
	for i, c := range []byte(ns) {
		switch {
		case c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return fmt.Errorf("namespace %q: want lowercase letters and digits, starting with a letter", string(ns))
		}
	}
	return nil
}

// Queue is the storage name of queue name: "{ns}-{name}".
func (ns Namespace) Queue(name string) string { return ns.dashed(name) }

// Container is the storage name of blob container name: "{ns}-{name}".
func (ns Namespace) Container(name string) string { return ns.dashed(name) }

// Table is the storage name of table name: "{ns}{Name}".
func (ns Namespace) Table(name string) string { return string(ns) + name }

func (ns Namespace) dashed(name string) string {
	if ns == "" {
		return name
	}
	return string(ns) + "-" + name
}
