package tables

import (
	"context"
	"errors"
	"fmt"

	"github.com/platform/platform"
)

// Versioned is a store whose rows are read with their version (ETag) and replaced only at the
// version read: Jobs and Messages.
type Versioned[T any] interface {
	Get(ctx context.Context, key string) (*T, ETag, error)
	Update(ctx context.Context, row *T, etag ETag) (ETag, error)
}

// ErrUnchanged, returned by a Modify change, leaves the row as it is.
var ErrUnchanged = errors.New("row left unchanged")

// modifyAttempts bounds Modify: a row that keeps moving under us is someone else's to settle.
const modifyAttempts = 3

// Modify is the ETag-guarded read-modify-write: it applies change to row (as read at etag; nil
// reads it first) and writes it at etag. When another writer moved the row first (412), it
// reads the row again and applies change to that. change decides from the row as stored: it
// returns ErrUnchanged to leave it (Modify then returns it as read, changed false), or another
// error to stop. A row still moving after three attempts is platform.ErrConflict.
func Modify[T any](ctx context.Context, s Versioned[T], key string, row *T, etag ETag, change func(*T) error) (out *T, newTag ETag, changed bool, err error) {
	for range modifyAttempts {
		if row == nil {
			if row, etag, err = s.Get(ctx, key); err != nil {
				return nil, "", false, err
			}
		}
		switch err := change(row); {
		case errors.Is(err, ErrUnchanged):
			return row, etag, false, nil
		case err != nil:
			return row, etag, false, err
		}
		newTag, err = s.Update(ctx, row, etag)
		if err == nil {
			return row, newTag, true, nil
		}
		if !errors.Is(err, platform.ErrConflict) {
			return nil, "", false, err
		}
		row = nil // moved under us: decide again on the row as it is now
	}
	return nil, "", false, fmt.Errorf("modify %s: still changing after %d attempts: %w", key, modifyAttempts, platform.ErrConflict)
}
