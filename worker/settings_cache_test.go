package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/settings"
	"github.com/platform/platform/tables"
	"github.com/platform/platform/worker/realtime"
)

// A replica keeps the settings it read for Config.SettingsCacheTTL: a change made in the
// database by hand is not seen before, unless the change is announced on the change bus
// (platform settings changed), which every replica acts on within a poll.
func TestSettingsCacheIsDroppedWhenTheChangeIsAnnounced(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", option(42, 101, true, "email", 0))
	cfg := env.config()
	cfg.SettingsCacheTTL = time.Hour
	cfg.Realtime = realtime.Config{PollInterval: 100 * time.Millisecond}
	w := env.start(cfg)
	ctx := context.Background()
	db, err := settings.Open(ctx, env.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	send(t, w, hinted("10000000-0000-4000-8000-000000000001"))
	drain(t, w)
	if err := db.Exec(ctx, `UPDATE NotificationOption SET IsEnabled = FALSE WHERE BusinessUnitId = 42 AND NotificationEventTypeId = 101`); err != nil {
		t.Fatal(err)
	}
	// Not announced: the replica still has the option as it read it.
	send(t, w, hinted("10000000-0000-4000-8000-000000000002"))
	drain(t, w)
	if n := len(env.smtp.Mails()); n != 2 {
		t.Fatalf("%d mails before the change was announced, want 2 (the cached option says enabled)", n)
	}
	tc, err := tables.New(storage.Account{}, env.ns)
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.Changes().PutSignal(ctx, settings.SignalTopic); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // a few polls
	send(t, w, hinted("10000000-0000-4000-8000-000000000003"))
	drain(t, w)
	if n := len(env.smtp.Mails()); n != 2 {
		t.Fatalf("%d mails after the change was announced, want still 2: the option is disabled now", n)
	}
}
