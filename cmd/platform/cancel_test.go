package main

import (
	"context"
	"strings"
	"testing"

	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
)

// platform cancel KEY --business-unit N cancels in that unit only (the flag before or after
// the key); without it, in every unit; a bad N is exit 2 with one line naming the flag.
func TestCancelInOneBusinessUnitFromTheCLI(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"cancel", "--namespace", string(ns), "--business-unit", "-1", "k"}, "--business-unit: want 0"},
		{[]string{"cancel", "--namespace", string(ns), "k", "--business-unit", "seven"}, "business-unit"},
	} {
		if code, _, errOut := cli(t, "", c.args...); code != 2 || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, %q; want 2 with one line mentioning %q", c.args, code, errOut, c.want)
		}
	}
	if code, out, errOut := cli(t, "", "cancel", "--namespace", string(ns), "booking-7", "--business-unit", "7"); code != 0 || !strings.Contains(out, "in business unit 7") {
		t.Fatalf("cancel in unit 7: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := cli(t, "", "cancel", "--namespace", string(ns), "booking-all"); code != 0 || !strings.Contains(out, "in every business unit") {
		t.Fatalf("cancel in every unit: %d %q %q", code, out, errOut)
	}
	tc, err := tables.New(storage.Account{}, ns)
	if err != nil {
		t.Fatal(err)
	}
	c := tc.Cancellations()
	for _, q := range []struct {
		key       string
		bu        int64
		cancelled bool
	}{{"booking-7", 7, true}, {"booking-7", 8, false}, {"booking-all", 8, true}} {
		at, err := c.CancelledAt(context.Background(), q.key, q.bu)
		if err != nil || at.IsZero() == q.cancelled {
			t.Errorf("%s in unit %d: cancelled at %v, %v; want cancelled %v", q.key, q.bu, at, err, q.cancelled)
		}
	}
}
