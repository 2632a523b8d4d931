package queues

import (
	"cmp"
	"time"
)

// Outcome is what a consumer did with a message it received.
type Outcome string

const (
	Processed Outcome = "processed" // the handler succeeded: deleted
	Retried   Outcome = "retried"   // hidden for its backoff (or left to reappear: a poison that could not be written)
	Poisoned  Outcome = "poisoned"  // moved to the poison queue
	Abandoned Outcome = "abandoned" // its handler was cancelled by a stop: it reappears after its visibility timeout
)

// Outcomes are every Outcome, for whoever wants to see each from the start (zeroed metrics).
var Outcomes = []Outcome{Processed, Retried, Poisoned, Abandoned}

// Settled is one message received and settled, as ConsumerConfig.Observe sees it.
type Settled struct {
	Queue        string // before the namespace prefix
	Outcome      Outcome
	Handled      bool          // the handler ran (not when the message was poisoned for too many deliveries)
	Took         time.Duration // how long the handler ran
	PickedUp     time.Time     // when the consumer received it
	InsertedAt   time.Time     // when it was first enqueued (a retry keeps it)
	DequeueCount int64         // 1 on the first delivery
}

// observe tells ConsumerConfig.Observe how f was settled; a message nothing settled was left by
// a stop. process defers it, so it runs before the message stops counting as in flight: a
// drained consumer has told of all it settled.
func (f *inflight) observe() {
	if f.c.cfg.Observe == nil {
		return
	}
	f.c.cfg.Observe(Settled{
		Queue: f.c.cfg.Queue, Outcome: cmp.Or(f.outcome, Abandoned), Handled: f.handled, Took: f.took,
		PickedUp: f.pickedUp, InsertedAt: f.msg.InsertedAt, DequeueCount: f.msg.DequeueCount,
	})
}
