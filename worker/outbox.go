package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/blobs"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
)

// OutboxConfig tunes the event substrate: the materializer, the stale-intent reconciler and
// scan-repair. Zero fields take the defaults their comments give.
type OutboxConfig struct {
	// Disabled: this worker runs no materializer, reconciler or scan-repair (another
	// deployment of the worker does). The Go API and the commands still write intents.
	Disabled bool
	// LeaseDuration is the materializer's leader lease (15s-60s). A dead leader is replaced
	// within it. Default 15s.
	LeaseDuration time.Duration
	// PollInterval is how often the leader looks for confirmed intents. Default 1s.
	PollInterval time.Duration
	// StaleAfter: a Pending intent older than this is asked about by the reconciler
	// (PLATFORM_OUTBOX_STALE_AFTER). Default 5m.
	StaleAfter time.Duration
	// ReconcileEvery is how often the reconciler sweeps. Default StaleAfter/2.
	ReconcileEvery time.Duration
	// Probes answer "did this intent's mutation commit?" for intents of a source (the event's
	// source field) that name no source row. Intents with a source row use the built-in table
	// row probe.
	Probes map[string]Probe
	// ScanProviders are the bounded scan-repair paths of sources without an outbox, run every
	// ScanEvery. The built-in "event-log" provider (re-publish what PlatformEventLog holds) is
	// not run automatically: `platform reconcile --provider event-log --since T` runs it.
	ScanProviders []ScanProvider
	// ScanEvery is how often scan-repair runs in the worker; 0 turns it off there (the command
	// `platform reconcile` still runs it). Default 15m.
	ScanEvery time.Duration
}

func (c *OutboxConfig) setDefaults() {
	c.LeaseDuration = cmp.Or(c.LeaseDuration, 15*time.Second)
	c.PollInterval = cmp.Or(c.PollInterval, time.Second)
	c.StaleAfter = cmp.Or(c.StaleAfter, 5*time.Minute)
	c.ReconcileEvery = cmp.Or(c.ReconcileEvery, c.StaleAfter/2)
	c.ScanEvery = cmp.Or(c.ScanEvery, 15*time.Minute)
}

// Probe tells whether an intent's mutation committed.
type Probe func(ctx context.Context, in *platform.OutboxIntent) (committed bool, err error)

// outbox runs the materializer (leader only) and the reconciler.
type outbox struct {
	cfg      OutboxConfig
	log      logrus.FieldLogger
	store    *tables.Outbox
	eventLog *tables.EventLog
	tables   *tables.Client
	queues   *queues.Client
	blobs    *blobs.Client
	wm       *tables.Watermarks

	mu     sync.Mutex
	leader bool
	cancel context.CancelFunc
	done   chan struct{}
}

// IsLeader reports whether this replica holds the materializer lease now.
func (w *Worker) IsLeader() bool { return w.outbox.IsLeaderNow() }

func (o *outbox) start(ctx context.Context) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	o.cancel, o.done = cancel, make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); o.lead(ctx) }()
	go func() { defer wg.Done(); every(ctx, o.cfg.ReconcileEvery, o.reconcileOnce) }()
	go func() {
		defer wg.Done()
		if len(o.cfg.ScanProviders) > 0 {
			// Low frequency, and not at start: a fleet restarting must not scan all at once.
			select {
			case <-ctx.Done():
				return
			case <-time.After(jitter(o.cfg.ScanEvery)):
			}
			every(ctx, o.cfg.ScanEvery, func(ctx context.Context) {
				for _, p := range o.cfg.ScanProviders {
					if _, err := o.scanRepair(ctx, p, time.Time{}); err != nil && ctx.Err() == nil {
						o.log.WithError(err).WithField("provider", p.Name()).Warn("scan-repair failed; next run retries")
					}
				}
			})
		}
	}()
	go func() { wg.Wait(); close(o.done) }()
}

// stop ends the loops and, if this replica leads, releases the lease so another takes over now.
func (o *outbox) stop(ctx context.Context) {
	if o.cancel == nil {
		return
	}
	o.cancel()
	select {
	case <-o.done:
	case <-ctx.Done():
	}
}

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// every runs f at once and then every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		f(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lead campaigns for the materializer lease and, while holding it, materializes. Only one
// replica materializes at a time; if the leader dies, its lease expires and another takes over.
func (o *outbox) lead(ctx context.Context) {
	var l *blobs.Lease
	var lastRenew time.Time
	setLeader := func(v bool) {
		o.mu.Lock()
		if o.leader != v {
			o.log.WithField("leader", v).Info("materializer leadership changed")
		}
		o.leader = v
		o.mu.Unlock()
	}
	// hold campaigns for the lease, or renews it when a third of it has passed, and reports
	// whether this replica leads with time left on its lease. It runs before every batch, so
	// a long backlog never outlives the lease.
	hold := func() bool {
		if l == nil {
			var err error
			if l, err = o.blobs.NewLease(ctx, "outbox-materializer", o.cfg.LeaseDuration); err != nil {
				if ctx.Err() == nil {
					o.log.WithError(err).Warn("materializer lease unavailable")
				}
				return false
			}
		}
		switch {
		case !o.IsLeaderNow():
			ok, err := l.Acquire(ctx)
			if err != nil && ctx.Err() == nil {
				o.log.WithError(err).Warn("materializer: acquire lease")
			}
			if ok {
				lastRenew = time.Now()
			}
			setLeader(ok)
		case time.Since(lastRenew) >= o.cfg.LeaseDuration/3:
			if err := l.Renew(ctx); err != nil {
				if ctx.Err() == nil {
					o.log.WithError(err).Warn("materializer lost its lease")
				}
				setLeader(false)
			} else {
				lastRenew = time.Now()
			}
		}
		return o.IsLeaderNow() && time.Since(lastRenew) < o.cfg.LeaseDuration*2/3
	}
	defer func() {
		if o.IsLeaderNow() && l != nil {
			relCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = l.Release(relCtx)
			cancel()
		}
		setLeader(false)
	}()
	t := time.NewTicker(o.cfg.PollInterval)
	defer t.Stop()
	for {
		for hold() && o.materializeBatch(ctx, hold) {
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// IsLeaderNow reports leadership (without the Worker).
func (o *outbox) IsLeaderNow() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.leader
}

const materializeBatch = 100

// materializeBatch materializes up to a batch of confirmed intents; true when there may be more.
// held is asked before each intent (it renews the lease when due, at no request otherwise): a
// replica whose lease ran out mid-batch stops at once, instead of publishing intents the new
// leader already published, after the queues looked drained (found by make chaos).
func (o *outbox) materializeBatch(ctx context.Context, held func() bool) bool {
	intents, err := o.store.List(ctx, platform.IntentConfirmed, "", materializeBatch)
	if err != nil {
		if ctx.Err() == nil {
			o.log.WithError(err).Warn("materializer: list confirmed intents")
		}
		return false
	}
	for _, in := range intents {
		if !held() {
			return false
		}
		if err := o.materialize(ctx, in); err != nil {
			if ctx.Err() == nil {
				o.log.WithError(err).WithField("sourceKey", in.SourceKey).Warn("materialize failed; the next pass repeats it")
			}
			return false
		}
	}
	return len(intents) == materializeBatch
}

// materialize writes the intent's PlatformEventLog row (already there: that step is done),
// enqueues its event, and marks it Materialized. A crash between any two steps leaves the
// intent Confirmed, and the next pass repeats the steps: the log row exists once (its key is
// the SourceKey), and an event enqueued twice has its effects once (every effect is keyed).
func (o *outbox) materialize(ctx context.Context, in *platform.OutboxIntent) error {
	ev := in.Event
	payload, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	rec := &tables.LogRecord{
		SourceKey: in.SourceKey, EventType: ev.EventTypeID, Source: ev.Source, TenantID: ev.TenantID,
		ProjectID: ev.BusinessUnitID, EntityName: ev.EntityTypeID, EntityID: ev.Identity(), Timestamp: ev.CreatedOn,
		PayloadJSON: string(payload), CorrelationID: ev.CorrelationID, ActorID: ev.ActorID,
	}
	if err := o.eventLog.Insert(ctx, rec); err != nil && !errors.Is(err, platform.ErrExists) {
		return err
	}
	if _, err := o.queues.Publish(ctx, ev); err != nil {
		return err
	}
	return o.store.MarkMaterialized(ctx, in)
}

// reconcileOnce settles the Pending intents older than StaleAfter: a probe says whether the
// mutation committed; committed → Confirmed (then materialized), not → Discarded (nothing is
// ever emitted). An intent no probe can answer for is left alone and logged for support.
func (o *outbox) reconcileOnce(ctx context.Context) {
	if _, err := o.reconcile(ctx); err != nil && ctx.Err() == nil {
		o.log.WithError(err).Warn("outbox reconciler failed; next sweep retries")
	}
}

func (o *outbox) reconcile(ctx context.Context) (settled int, err error) {
	before := platform.SourceKeyAt(time.Now().Add(-o.cfg.StaleAfter))
	for {
		intents, err := o.store.List(ctx, platform.IntentPending, before, materializeBatch)
		if err != nil {
			return settled, err
		}
		progressed := false
		for _, in := range intents {
			committed, known, err := o.probe(ctx, in)
			if err != nil {
				return settled, err
			}
			if !known {
				o.log.WithFields(logrus.Fields{"sourceKey": in.SourceKey, "source": in.Event.Source}).
					Warn("stale outbox intent: no probe for its source; left Pending for support (confirm or discard it by hand)")
				continue
			}
			to, reason := platform.IntentDiscarded, "reconciler: the mutation did not commit"
			if committed {
				to, reason = platform.IntentConfirmed, "reconciler: the mutation committed"
			}
			if _, err := o.store.Move(ctx, in.SourceKey, to, reason); err != nil && !errors.Is(err, tables.ErrIntentSettled) {
				return settled, err
			}
			o.log.WithFields(logrus.Fields{"sourceKey": in.SourceKey, "state": to}).Info("stale outbox intent settled")
			settled++
			progressed = true
		}
		if len(intents) < materializeBatch || !progressed {
			return settled, nil
		}
	}
}

func (o *outbox) probe(ctx context.Context, in *platform.OutboxIntent) (committed, known bool, err error) {
	if in.SourceRow != nil {
		committed, err = o.tables.RowExists(ctx, *in.SourceRow)
		return committed, true, err
	}
	if p, ok := o.cfg.Probes[in.Event.Source]; ok && in.Event.Source != "" {
		committed, err = p(ctx, in)
		return committed, true, err
	}
	return false, false, nil
}

// ReconcileIntents settles the stale Pending intents now (what the worker does every
// ReconcileEvery) and says how many it settled.
func (w *Worker) ReconcileIntents(ctx context.Context) (int, error) { return w.outbox.reconcile(ctx) }

// busy reports whether the outbox holds work: confirmed intents not yet materialized, or
// pending ones not yet confirmed, discarded or reconciled.
func (o *outbox) busy(ctx context.Context) (bool, error) {
	for _, st := range []platform.IntentState{platform.IntentConfirmed, platform.IntentPending} {
		in, err := o.store.List(ctx, st, "", 1)
		if err != nil || len(in) > 0 {
			return true, err
		}
	}
	return false, nil
}

// ---- the service-facing API -------------------------------------------------------------

// AppendIntent reserves an event before its mutation (pre-reservation): the intent is Pending
// under a new ULID SourceKey. Confirm it once the mutation committed, discard it if it did
// not; a service that dies in between is covered by the reconciler, which asks the source row
// (or the source's probe) after StaleAfter.
func (w *Worker) AppendIntent(ctx context.Context, ev *platform.EntityEvent, source *platform.SourceRow) (*platform.OutboxIntent, error) {
	if source != nil && (source.Table == "" || source.PartitionKey == "" && source.RowKey == "") {
		return nil, fmt.Errorf("%w: sourceRow: want table, partitionKey and rowKey", ErrInvalidInput)
	}
	ev, err := w.claimCheck(ctx, ev)
	if err != nil {
		return nil, err
	}
	return w.outbox.store.Append(ctx, ev, source)
}

// AppendWithEntities is the table-transactional outbox (tables.Outbox.AppendWithEntities),
// with a large payload moved to the claim-check container first.
func (w *Worker) AppendWithEntities(ctx context.Context, table, partitionKey string, actions []tables.EntityAction, ev *platform.EntityEvent) (*platform.OutboxIntent, error) {
	ev, err := w.claimCheck(ctx, ev)
	if err != nil {
		return nil, err
	}
	return w.outbox.store.AppendWithEntities(ctx, table, partitionKey, actions, ev)
}

// claimCheck moves a payload too large for an intent row to blob storage; the event then
// carries payloadBlob, which the consumer resolves.
func (w *Worker) claimCheck(ctx context.Context, ev *platform.EntityEvent) (*platform.EntityEvent, error) {
	if len(ev.Payload) <= tables.MaxInlineSnapshot {
		return ev, nil
	}
	name, err := w.Blobs().PutPayload(ctx, ev.Payload)
	if err != nil {
		return nil, err
	}
	slim := *ev
	slim.Payload, slim.PayloadBlob = nil, name
	return &slim, nil
}

// ConfirmIntent releases an intent's event to the materializer.
func (w *Worker) ConfirmIntent(ctx context.Context, sourceKey string) (*platform.OutboxIntent, error) {
	return w.outbox.store.Move(ctx, sourceKey, platform.IntentConfirmed, "confirmed by the service")
}

// DiscardIntent drops an intent whose mutation did not commit: its event is never emitted.
func (w *Worker) DiscardIntent(ctx context.Context, sourceKey string) (*platform.OutboxIntent, error) {
	return w.outbox.store.Move(ctx, sourceKey, platform.IntentDiscarded, "discarded by the service")
}

// Outbox is the store behind the intents, for the table-transactional variant
// (AppendWithEntities) and for reads.
func (w *Worker) Outbox() *tables.Outbox { return w.outbox.store }

// EventLog is PlatformEventLog.
func (w *Worker) EventLog() *tables.EventLog { return w.outbox.eventLog }
