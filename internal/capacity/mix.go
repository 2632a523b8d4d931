package capacity

import "github.com/platform/platform"

// The roles whose replicas do an event's work (worker.RoleEvents, worker.RoleNotifications).
const (
	RoleEvents        = "events"
	RoleNotifications = "notifications"
)

// The measured costs, from README "Performance" and "Sizing" (`make bench -rounds=3`: 5,000
// history events, 1,000 notified events, on a 2-core machine against Azurite). Update them when the bench's
// figures change; the README's "Capacity" table is this package's output for them.
const (
	// HistoryCPU is the worker CPU of an event with history alone (every concern with nothing
	// to do), in seconds: 1.3 ms.
	HistoryCPU = 0.0013
	// EmailCPU is the worker CPU an email adds to its event, in seconds: 2.6 ms (3.9 ms in all,
	// every role in one process).
	EmailCPU = 0.0026
	// DequeueBatch is the messages one dequeue returns under load.
	DequeueBatch = 32
	// ChangeBatch is the change-bus rows one group commit writes under load (0.03 requests per
	// event in the bench).
	ChangeBatch = 32
)

// queueOps are an event's requests on one work queue: put, its share of a get of DequeueBatch,
// delete.
func queueOps(q string) []Op {
	return []Op{
		{Name: "enqueue " + q, PerEvent: 1, Queue: q},
		{Name: "dequeue " + q, PerEvent: 1.0 / DequeueBatch, Queue: q},
		{Name: "delete " + q, PerEvent: 1, Queue: q},
	}
}

// changeOp is an event's share of a change-bus group commit.
var changeOp = Op{Name: "change bus", PerEvent: 1.0 / ChangeBatch, ChangeEntities: ChangeBatch}

// History is an event with history alone: 1 enqueue, 1/32 dequeue, 1 history row, 1 delete and
// 1/32 change-bus batch (3.06 requests; the bench measures 3.07-3.08), its CPU on the events
// role.
func History() Mix {
	ops := append(queueOps(platform.QueueEntityEvents),
		Op{Name: "history row", PerEvent: 1},
		changeOp)
	return Mix{Name: "history", Ops: ops, CPU: map[string]float64{RoleEvents: HistoryCPU}}
}

// Notify is an event that sends one email, its job generated in the event's handler (no
// scheduler or generator hop): a put, a share of a get and a delete on each of entity-events and
// notification-distributor, five table writes (history, job, message, claim, outcome) and 1/32
// change-bus batch: 9.09 requests (the bench measures 9.2-9.3, the rest being dequeues of fewer
// than 32). Its CPU: history's on the events role, the email's on the notifications role (the
// bench measures their sum; with every role in one process the generation runs on the events
// consumer).
func Notify() Mix {
	var ops []Op
	for _, q := range []string{platform.QueueEntityEvents, platform.QueueNotificationDistributor} {
		ops = append(ops, queueOps(q)...)
	}
	for _, row := range []string{"history row", "job", "message", "claim", "outcome"} {
		ops = append(ops, Op{Name: row, PerEvent: 1})
	}
	ops = append(ops, changeOp)
	return Mix{Name: "notify", Ops: ops, CPU: map[string]float64{RoleEvents: HistoryCPU, RoleNotifications: EmailCPU}}
}

// NotifyRolesApart is Notify with the roles in separate apps, as deploy/azure runs them: an
// `events` replica does not run the generator, so the job takes the hop through
// notification-generator: a put, a share of a get and a delete on each of three queues, six
// table writes (history, job, message, job Generated, claim, outcome) and 1/32 change-bus
// batch: 12.13 requests.
func NotifyRolesApart() Mix {
	var ops []Op
	for _, q := range []string{platform.QueueEntityEvents, platform.QueueNotificationGenerator, platform.QueueNotificationDistributor} {
		ops = append(ops, queueOps(q)...)
	}
	for _, row := range []string{"history row", "job", "message", "job update", "claim", "outcome"} {
		ops = append(ops, Op{Name: row, PerEvent: 1})
	}
	ops = append(ops, changeOp)
	return Mix{Name: "notify, roles apart", Ops: ops, CPU: map[string]float64{RoleEvents: HistoryCPU, RoleNotifications: EmailCPU}}
}
