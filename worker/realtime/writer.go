package realtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/tables"
)

// writer commits changes in groups: handlers running at the same time share one
// entity group transaction per partition, so the change bus costs a fraction of a request
// per event, and no handler returns before its change is durable.
//
// A change's id is taken when its transaction is sent, not when its handler asked, and a
// transaction gets at most maxWrite (Lateness less a poll): so a change commits less than
// Lateness after its id, and every replica's sweep reads it (Hub.poll). A transaction that
// takes longer fails its handlers, whose events are retried under new ids (a late commit of
// the first is then the same change twice, which the hubs drop by event key).
type writer struct {
	store    *tables.Changes
	writerID string // the replica's name on its rows
	linger   time.Duration
	maxWrite time.Duration
	in       chan *changeReq
	stopped  chan struct{} // closed when run returns: a write then fails instead of waiting
}

var errWriterStopped = errors.New("realtime: the change writer has stopped")

// errLate: a change's transaction did not commit in time for every replica's sweep to read it
// (writer.maxWrite); written again under a new id, it is (Service.Process).
var errLate = errors.New("change bus: not committed")

type changeReq struct {
	change *platform.Change
	id     string // taken by run, when the transaction is sent
	done   chan error
}

func (w *writer) run(ctx context.Context) {
	defer close(w.stopped)
	for {
		var batch []*changeReq
		select {
		case <-ctx.Done():
			return
		case r := <-w.in:
			batch = append(batch, r)
		}
		var deadline <-chan time.Time
		if w.linger > 0 {
			deadline = time.After(w.linger)
		}
	collect:
		for len(batch) < tables.MaxBatchOperations {
			select {
			case r := <-w.in:
				batch = append(batch, r)
			case <-deadline:
				break collect
			default:
				if deadline == nil {
					break collect
				}
				select {
				case r := <-w.in:
					batch = append(batch, r)
				case <-deadline:
					break collect
				}
			}
		}
		// One deadline for the batch, from the moment its ids are taken: a batch split over two
		// minute partitions sends two transactions, and the second must commit in time too.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.maxWrite)
		byPartition := map[string][]*changeReq{}
		for _, r := range batch {
			r.id = platform.NewSourceKey()
			pk := tables.ChangePartition(r.id)
			byPartition[pk] = append(byPartition[pk], r)
		}
		for _, reqs := range byPartition {
			rows := make([]tables.ChangeRow, len(reqs))
			for i, r := range reqs {
				rows[i] = tables.ChangeRow{ID: r.id, Change: r.change, Writer: w.writerID}
			}
			err := w.store.PutBatch(wctx, rows)
			if err != nil && wctx.Err() != nil {
				err = fmt.Errorf("%w within %s: %w", errLate, w.maxWrite, err)
			}
			for _, r := range reqs {
				r.done <- err
			}
		}
		cancel()
	}
}

// write makes ch durable and returns its id.
func (w *writer) write(ctx context.Context, ch *platform.Change) (string, error) {
	r := &changeReq{change: ch, done: make(chan error, 1)}
	select {
	case w.in <- r:
	case <-w.stopped:
		return "", errWriterStopped
	case <-ctx.Done():
		return "", ctx.Err()
	}
	select {
	case err := <-r.done:
		return r.id, err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
