package blobs_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/platform/platform/blobs"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Replicas that ask for a key at once all get the same one, and it stays the same.
func TestKeyIsMadeOnceAndShared(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	keys := make([][]byte, 4)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			c, err := blobs.New(storage.Account{}, ns)
			if err != nil {
				t.Error(err)
				return
			}
			if keys[i], err = c.Key(context.Background(), "test"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, k := range keys {
		if len(k) != blobs.KeySize || !bytes.Equal(k, keys[0]) {
			t.Fatalf("replica %d got %x, replica 0 %x: want one key of %d bytes", i, k, keys[0], blobs.KeySize)
		}
	}
	c, _ := blobs.New(storage.Account{}, ns)
	if again, err := c.Key(context.Background(), "test"); err != nil || !bytes.Equal(again, keys[0]) {
		t.Fatalf("asked again: %x, %v; want the same key", again, err)
	}
}
