package settings_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/platform/platform/settings"
)

// A business unit's options and subscribers are listed whole, by type, and only that unit's;
// the subscriber list is cut at its limit and says so.
func TestUnitOptionsAndSubscribersOnBothDatabases(t *testing.T) {
	t.Parallel()
	script := `INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds, TemplateName)
		VALUES (42, 102, TRUE, ' Email , webhook', 0, ' incident-submitted ');
		INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds)
		VALUES (42, 101, FALSE, 'email', 300);
		INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds)
		VALUES (7, 101, TRUE, 'email', 0);
		INSERT INTO NotificationSubscriber (BusinessUnitId, NotificationEventTypeId, Channel, Address, DisplayName)
		VALUES (42, 102, 'Email', 'b@example.com', '<script>alert(1)</script>');
		INSERT INTO NotificationSubscriber (BusinessUnitId, NotificationEventTypeId, Channel, Address, DisplayName)
		VALUES (42, 102, 'email', 'a@example.com', NULL);
		INSERT INTO NotificationSubscriber (BusinessUnitId, NotificationEventTypeId, Channel, Address)
		VALUES (42, 101, 'webhook', 'https://hooks.example.com/x?token=secret');
		INSERT INTO NotificationSubscriber (BusinessUnitId, NotificationEventTypeId, Channel, Address)
		VALUES (7, 102, 'email', 'other@example.com');`
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if err := db.Exec(ctx, script); err != nil {
				t.Fatal(err)
			}
			opts, err := db.UnitOptions(ctx, 42)
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprint(opts)
			want := fmt.Sprint([]settings.UnitOption{
				{NotificationTypeID: 101, Option: settings.Option{IsEnabled: false, Channels: []string{"email"}, DelaySeconds: 300}},
				{NotificationTypeID: 102, Option: settings.Option{IsEnabled: true, Channels: []string{"email", "webhook"}, TemplateName: "incident-submitted"}},
			})
			if got != want {
				t.Fatalf("options of unit 42:\n got %s\nwant %s", got, want)
			}
			if none, err := db.UnitOptions(ctx, 99); err != nil || none == nil || len(none) != 0 {
				t.Fatalf("options of an unseeded unit: %v, %v; want an empty list", none, err)
			}

			subs, more, err := db.UnitSubscribers(ctx, 42, 10)
			if err != nil || more {
				t.Fatalf("subscribers: more %v, %v", more, err)
			}
			var addrs []string
			for _, s := range subs {
				addrs = append(addrs, fmt.Sprintf("%d %s %s %q", s.NotificationTypeID, s.Channel, s.Address, s.DisplayName))
			}
			wantAddrs := []string{
				`101 webhook https://hooks.example.com/x?token=secret ""`,
				`102 email a@example.com ""`,
				`102 email b@example.com "<script>alert(1)</script>"`,
			}
			if !slices.Equal(addrs, wantAddrs) {
				t.Fatalf("subscribers of unit 42:\n got %q\nwant %q", addrs, wantAddrs)
			}
			cut, more, err := db.UnitSubscribers(ctx, 42, 2)
			if err != nil || !more || len(cut) != 2 || cut[1].Address != "a@example.com" {
				t.Fatalf("two subscribers of three: %+v, more %v, %v", cut, more, err)
			}
			if _, _, err := db.UnitSubscribers(ctx, 42, 0); err == nil {
				t.Fatal("limit 0 accepted")
			}
		})
	}
}
