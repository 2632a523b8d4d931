package realtime

import (
	"context"
	"errors"
	"time"

	"github.com/platform/platform/tables"
)

// writer commits changes in groups: handlers running at the same time share one
// entity group transaction per partition, so the change bus costs a fraction of a request
// per event, and no handler returns before its change is durable.
type writer struct {
	store   *tables.Changes
	linger  time.Duration
	in      chan changeReq
	stopped chan struct{} // closed when run returns: a write then fails instead of waiting
}

var errWriterStopped = errors.New("realtime: the change writer has stopped")

type changeReq struct {
	row  tables.ChangeRow
	done chan error
}

func (w *writer) run(ctx context.Context) {
	defer close(w.stopped)
	for {
		var batch []changeReq
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
			err := w.store.PutBatch(context.WithoutCancel(ctx), rows)
			for _, r := range reqs {
				r.done <- err
			}
		}
	}
}

func (w *writer) write(ctx context.Context, row tables.ChangeRow) error {
	r := changeReq{row: row, done: make(chan error, 1)}
	select {
	case w.in <- r:
	case <-w.stopped:
		return errWriterStopped
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
