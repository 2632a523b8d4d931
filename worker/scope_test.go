package worker_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/auth"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/webhooks"
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

// A trace for a reader who may see some business units answers "no such key" for a root they
// may not see (an event by its history row, a job or message by the job row, a delivery by its
// own row) and for a key nothing has, before any body is read or the access logged; for a root
// they may see, the same trace as without the check.
func TestTraceOnlyWhatTheReaderMaySee(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 101, true, "email", 0), option(42, 201, true, "email", 0))
	cfg := env.config()
	var logs *syncBuffer
	cfg.Logger, logs = teeLogger(t)
	w := env.start(cfg)
	ctx := context.Background()
	hook := newReceiver(t, strongSecret, 0)
	endpoint, err := w.Webhooks().Add(ctx, webhooks.NewEndpoint{URL: hook.srv.URL + "/hook", BusinessUnitID: 42, EventTypes: []int{11}, Secret: strongSecret})
	if err != nil {
		t.Fatal(err)
	}
	job, _, err := w.Notify().CreateJob(ctx, notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42,
		EventData: []byte(`{"firstName":"Ada"}`), Recipients: []platform.Recipient{{Channel: "email", Address: "ada@example.com"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	body := hinted(attendee)
	send(t, w, body)
	drain(t, w)
	ev, _ := platform.DecodeEvent([]byte(body))
	keys := map[string]string{"event": ev.Key(), "job": job.Key, "message": onlyJob(t, trace(t, w, job.Key)).MessageKeys[0],
		"delivery": platform.DeliveryKey(endpoint.ID, ev.Key())}

	other := func(bu int64) bool { return bu == 7 }
	for kind, key := range keys {
		if tr, err := w.Notify().Trace(ctx, key, &notify.TraceOptions{ShowBody: true, Visible: other}); !errors.Is(err, platform.ErrNotFound) || err.Error() != "no such key" {
			t.Errorf("%s of business unit 42 traced by a reader of unit 7: %+v, %v; want no such key", kind, tr, err)
		}
	}
	if strings.Contains(logs.String(), "bodies shown") {
		t.Errorf("refused traces logged bodies shown:\n%s", logs)
	}
	for kind, key := range keys {
		want, err := w.Notify().Trace(ctx, key, &notify.TraceOptions{ShowBody: true})
		if err != nil {
			t.Fatal(err)
		}
		got, err := w.Notify().Trace(ctx, key, &notify.TraceOptions{ShowBody: true, Visible: func(bu int64) bool { return bu == 42 }})
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s traced by a reader of its unit: %+v, %v; want %+v", kind, got, err, want)
		}
	}
	unknown := map[string]string{"event": strings.Replace(ev.Key(), "2026", "2025", 1), "job": "notification-job:101:" + ev.Key() + "x",
		"message": platform.MessageKey(job.Key+"x", platform.Recipient{Channel: "email", Address: "nobody@example.com"}), "delivery": platform.DeliveryKey("nope", ev.Key())}
	for kind, key := range unknown {
		if tr, err := w.Notify().Trace(ctx, key, &notify.TraceOptions{Visible: other}); !errors.Is(err, platform.ErrNotFound) {
			t.Errorf("unknown %s %s with Visible: %+v, %v; want no such key", kind, key, tr, err)
		}
		if tr, err := w.Notify().Trace(ctx, key, nil); err != nil || tr.Kind != kind || len(tr.Notes) == 0 {
			t.Errorf("unknown %s %s without Visible: %+v, %v; want a trace of its kind with notes", kind, key, tr, err)
		}
	}
}

// A cancellation whose business unit is misspelt is refused, not taken as a cancellation in
// every business unit: an admin meaning one unit must not cancel the jobs of all of them.
func TestCancellationWithAMisspeltUnitIsRefused(t *testing.T) {
	t.Parallel()
	w := newWorker(t, worker.Config{HTTPAddr: "127.0.0.1:0", Auth: auth.Config{Mode: auth.ModeKeys}})
	k, _, err := w.Keys().Create(context.Background(), auth.NewKey{Role: auth.Admin})
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + w.HTTPAddr() + "/v1/notification-cancellations"
	for _, body := range []string{`{"cancellationKey":"booking-1","business_unit_id":2}`, `{"cancellationKey":"booking-1","businessUnit":2}`} {
		if code, answer := call(t, "POST", url, "Bearer "+k, body); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400 (the unit's field is misspelt)", body, code, answer)
		}
	}
	if code, answer := call(t, "POST", url, "Bearer "+k, `{"cancellationKey":"booking-1","businessUnitId":2}`); code != http.StatusOK || !strings.Contains(answer, `"businessUnitId":2`) {
		t.Errorf("spelt right: %d %s, want 200 in unit 2", code, answer)
	}
}
