//go:build bench

package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
)

// runFloor measures the storage floor of a scenario on a fresh Azurite: the same backlog of
// events, published the same way before the clock starts, pushed through as many queue hops
// as the worker's enqueues per event, each hop with the worker's consumer shape (dequeue 32
// when half of 64 slots are free) and its share of the table reads and writes the worker made
// per event, on rows keyed as the worker's — and no logic at all. Its throughput is what
// storage allows this mix at this concurrency; the worker's divided by it is the ratio.
//
// When the worker wrote the change stream (scenario.changeStream), the floor writes each
// event's change row as the worker does: group-committed, the handlers that finish within the
// same 10 ms sharing one entity group transaction per minute partition.
func runFloor(t *testing.T, r *result) (throughput float64, meanRequestMS map[string]float64, azuriteMSPerRequest, clientMSPerEvent float64) {
	az, ns := startAzurite(t), testenv.NewNamespace()
	counter := &storage.Counter{}
	stages := max(1, int(math.Round(r.perEvent[storage.KindEnqueue])))
	reads := r.perEvent[storage.KindTableRead]
	writes := r.perEvent[storage.KindTableWrite]
	// A table and a queue per stage, as the worker's stages write their own tables (Azurite
	// slows down as one table grows).
	tabs := make([]*aztables.Client, stages)
	qs := make([][]*azqueue.QueueClient, stages) // each stage's queues: its shards, with -shards
	for i := range qs {
		tabs[i] = tableClient(t, az.counted(counter), ns.Table(fmt.Sprintf("Floor%d", i)))
		if _, err := tabs[i].CreateTable(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		qs[i] = floorShards(t, az.counted(counter), ns, i)
	}
	// share(i, total) spreads a per-event count over the stages: stage i's whole share, with
	// the fractions carried by a per-message draw so the totals match.
	share := func(stage int, total float64, seq int64) int {
		lo, hi := total*float64(stage)/float64(stages), total*float64(stage+1)/float64(stages)
		n := int(hi) - int(lo)
		if frac := hi - lo - float64(n); frac > 0 && float64(seq%1000)/1000 < frac {
			n++
		}
		return n
	}
	// Each event's rows are keyed as the worker keys its rows.
	keys := make(map[string][2]string, len(r.bodies))
	changeOf := make(map[string]*platform.Change, len(r.bodies))
	for _, b := range r.bodies {
		ev, err := platform.DecodeEvent([]byte(b))
		if err != nil {
			t.Fatal(err)
		}
		pk, rk := r.keys(ev)
		keys[b] = [2]string{pk, rk}
		changeOf[b] = ev.Change()
	}
	// A message handled twice (a delete that failed, a visibility that ran out) counts once:
	// the clock stops when every distinct event is through.
	var mu sync.Mutex
	finished := map[string]bool{}
	var done, last, lateDeletes atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var changes *changeBatcher
	if r.changeStream {
		tc, err := tables.New(az.counted(counter), ns)
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.CreateTables(ctx, tables.TableChanges); err != nil {
			t.Fatal(err)
		}
		changes = newChangeBatcher(ctx, tc.Changes())
	}
	// The backlog first, as the worker's, then the clock starts with the consumers.
	floor := &result{}
	publishTo(t, az, ns, fmt.Sprintf("floor-%d", 0), r.bodies, floor)
	start, cpu, own := time.Now(), cpuSeconds(t, az.pid()), cpuSeconds(t, os.Getpid())
	var wg sync.WaitGroup
	for i := range stages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			table := tabs[i]
			consume(ctx, qs[i], func(q *azqueue.QueueClient, shard int, m *azqueue.DequeuedMessage, seq int64) {
				k := keys[*m.MessageText]
				entity := fmt.Sprintf(`{"PartitionKey":%q,"RowKey":%q,"Body":%q}`, k[0], k[1], *m.MessageText)
				for range share(i, writes, seq) {
					if _, err := table.UpsertEntity(ctx, []byte(entity), &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace}); err != nil && ctx.Err() == nil {
						t.Error(err)
					}
				}
				for range share(i, reads, seq) {
					_, _ = table.GetEntity(ctx, k[0], k[1], nil) // found or not: one read either way
				}
				if i == 0 && changes != nil {
					ch := *changeOf[*m.MessageText]
					if err := changes.write(ctx, tables.ChangeRow{ID: platform.NewSourceKey(), Change: &ch, Writer: "floor"}); err != nil && ctx.Err() == nil {
						t.Error(err)
					}
				}
				if i+1 < stages {
					if _, err := qs[i+1][shard].EnqueueMessage(ctx, *m.MessageText, &azqueue.EnqueueMessageOptions{TimeToLive: to.Ptr(int32(-1))}); err != nil && ctx.Err() == nil {
						t.Error(err)
					}
				}
				if _, err := q.DeleteMessage(ctx, *m.MessageID, *m.PopReceipt, nil); err != nil && ctx.Err() == nil {
					lateDeletes.Add(1) // its visibility ran out first: another copy is handled too (counted once)
				}
				if i+1 == stages {
					mu.Lock()
					if !finished[*m.MessageText] {
						finished[*m.MessageText] = true
						if len(finished) == r.events {
							last.Store(time.Now().UnixNano())
						}
					}
					done.Store(int64(len(finished)))
					mu.Unlock()
				}
			})
		}()
	}
	testenv.Eventually(t, 5*time.Minute, "the floor's events through every stage", func() bool { return done.Load() >= int64(r.events) })
	cpu, own = cpuSeconds(t, az.pid())-cpu, cpuSeconds(t, os.Getpid())-own
	cancel()
	wg.Wait()
	span := time.Unix(0, last.Load()).Sub(start)
	var requests int64
	for k, n := range counter.Snapshot() {
		if !nonWork[k] {
			requests += n
		}
	}
	t.Logf("floor: %d stages, %.2f reads and %.2f writes per event, change rows %v, published in %s, drained in %s, %d deletes after the visibility ran out; requests %v; Azurite CPU %.2fs (%.2f ms per request); the floor's own CPU %.2fs (%.2f ms per event)",
		stages, reads, writes, r.changeStream, floor.publishSpan, span, lateDeletes.Load(), counter.Snapshot(), cpu, 1000*cpu/float64(requests), own, 1000*own/float64(r.events))
	return float64(r.events) / span.Seconds(), meanMS(counter.Snapshot(), counter.Elapsed()), 1000 * cpu / float64(requests), 1000 * own / float64(r.events)
}

// changeBatcher is the worker's change writer without the stream (worker/realtime): a
// change waits up to 10 ms for others to share its transaction, at most
// tables.MaxBatchOperations of one minute partition in each.
type changeBatcher struct{ in chan changeReq }

type changeReq struct {
	row  tables.ChangeRow
	done chan error
}

func newChangeBatcher(ctx context.Context, store *tables.Changes) *changeBatcher {
	b := &changeBatcher{in: make(chan changeReq)}
	go func() {
		for {
			var batch []changeReq
			select {
			case <-ctx.Done():
				return
			case r := <-b.in:
				batch = append(batch, r)
			}
			linger := time.After(10 * time.Millisecond)
		collect:
			for len(batch) < tables.MaxBatchOperations {
				select {
				case r := <-b.in:
					batch = append(batch, r)
				case <-linger:
					break collect
				}
			}
			byPartition := map[string][]changeReq{}
			for _, r := range batch {
				pk := tables.ChangePartition(r.row.ID)
				byPartition[pk] = append(byPartition[pk], r)
			}
			for _, reqs := range byPartition {
				rows := make([]tables.ChangeRow, len(reqs))
				for i, r := range reqs {
					rows[i] = r.row
				}
				err := store.PutBatch(context.WithoutCancel(ctx), rows)
				for _, r := range reqs {
					r.done <- err
				}
			}
		}
	}()
	return b
}

func (b *changeBatcher) write(ctx context.Context, row tables.ChangeRow) error {
	r := changeReq{row: row, done: make(chan error, 1)}
	select {
	case b.in <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
