package worker_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/notify"
)

// A cancellation in one business unit skips that unit's jobs only; one in every business unit
// (0) skips them all, as cancellations did before they were scoped.
func TestCancelInOneBusinessUnit(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(1, 201, true, "email", 0), option(2, 201, true, "email", 0))
	w := env.start(env.config())
	ctx := context.Background()
	sendAt := time.Now().Add(3 * time.Second)
	jobs := map[string]*platform.NotificationJob{}
	for _, c := range []struct {
		name, cancellationKey string
		bu                    int64
	}{{"scoped-1", "booking-1", 1}, {"scoped-2", "booking-1", 2}, {"global-1", "booking-2", 1}, {"global-2", "booking-2", 2}} {
		job, _, err := w.Notify().CreateJob(ctx, notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: c.bu,
			SendAt: &sendAt, CancellationKey: c.cancellationKey,
			Recipients: []platform.Recipient{{Channel: "email", Address: c.name + "@example.com"}}}, "")
		if err != nil {
			t.Fatal(err)
		}
		jobs[c.name] = job
	}
	if err := w.Notify().Cancel(ctx, "booking-1", 1); err != nil {
		t.Fatal(err)
	}
	if err := w.Notify().Cancel(ctx, "booking-2", 0); err != nil {
		t.Fatal(err)
	}
	drain(t, w)
	for name, want := range map[string]platform.JobState{
		"scoped-1": platform.JobSkipped, "scoped-2": platform.JobGenerated, "global-1": platform.JobSkipped, "global-2": platform.JobSkipped,
	} {
		got := onlyJob(t, trace(t, w, jobs[name].Key))
		if got.State != want || want == platform.JobSkipped && got.Reason != platform.ReasonCancelled {
			t.Errorf("job %s in business unit %d: %s (%s), want %s", name, got.BusinessUnitID, got.State, got.Reason, want)
		}
	}
	var to []string
	for _, m := range env.smtp.Mails() {
		to = append(to, m.To...)
	}
	if slices.Sort(to); !slices.Equal(slices.Compact(to), []string{"scoped-2@example.com"}) {
		t.Errorf("mails to %v, want only business unit 2's job of the scoped cancellation", to)
	}
	if err := w.Notify().Cancel(ctx, "booking-3", -1); !errors.Is(err, platform.ErrInvalidInput) {
		t.Errorf("cancel in business unit -1: %v, want invalid input", err)
	}
}
