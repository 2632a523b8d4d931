package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/settings"
	"github.com/platform/platform/worker"
	"github.com/platform/platform/worker/notify"
	"github.com/platform/platform/worker/outbox"
)

// platform trace never prints a webhook-channel recipient's URL whole (?token=…): not in the
// message key, the recipient, the job's recipients or message keys, with or without bodies.
func TestCLITraceNeverShowsARecipientURLsCredentials(t *testing.T) {
	t.Parallel()
	ns, w, hook := startCLIWorker(t, 201, "webhook")
	ctx := context.Background()
	job, _, err := w.Notify().CreateJob(ctx, notify.DirectJob{NotificationEventTypeID: 201, BusinessUnitID: 42,
		Recipients: []platform.Recipient{{Channel: platform.ChannelWebhook, Address: hook.URL + "/hook?token=SECRET"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	drainCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := w.WaitDrained(drainCtx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	tr, err := w.Notify().Trace(ctx, job.Key, nil)
	if err != nil || len(tr.Jobs) != 1 || len(tr.Jobs[0].Messages) != 1 || tr.Jobs[0].Messages[0].State != platform.MessageSent {
		t.Fatalf("trace: %v %+v, want one job with one sent message", err, tr)
	}
	for _, key := range []string{job.Key, tr.Jobs[0].Messages[0].Key} {
		for _, flags := range [][]string{nil, {"--json"}, {"--show-body"}, {"--json", "--show-body"}} {
			args := append([]string{"trace", "--namespace", string(ns), key}, flags...)
			code, out, errOut := cli(t, "", args...)
			if code != 0 || !strings.Contains(out, "/hook") || strings.Contains(out+errOut, "SECRET") {
				t.Errorf("%v: %d, shows the recipient URL's credentials (or no URL):\n%s%s", args, code, out, errOut)
			}
		}
	}
}

// startCLIWorker starts a worker of a fresh namespace whose settings enable notification type
// typeID for business unit 42 on channel, with a webhook receiver on 127.0.0.1 that answers
// 204, for the command line's tests to run against. It stops when t ends.
func startCLIWorker(t *testing.T, typeID int, channel string) (ns platform.Namespace, w *worker.Worker, hook *httptest.Server) {
	t.Helper()
	ns = testenv.Namespace(t)
	dsn := filepath.Join(t.TempDir(), "settings.db")
	db, err := settings.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Exec(context.Background(), fmt.Sprintf(`INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds) SELECT 42, %d, true, '%s', 0`, typeID, channel))
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	hook = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { rw.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(hook.Close)
	w, err = worker.New(worker.Config{Namespace: ns, Logger: testenv.Logger(t), SettingsDSN: dsn, HTTPAddr: "127.0.0.1:0",
		WebhookAllowlist: []string{"127.0.0.1"}, WebhookSecret: "test-secret", Outbox: outbox.Config{Disabled: true},
		Consumer: queues.ConsumerConfig{PollInterval: 20 * time.Millisecond, MaxPollInterval: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	return ns, w, hook
}
