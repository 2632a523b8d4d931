package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/platform/platform/auth"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/worker/notify"
)

// hostileName is a display name that would run as script if a page put it in as markup.
const hostileName = `<script>alert("x")</script>`

// settingsSeeds are business unit 42's settings, and one row of unit 7: options for 101
// (enabled) and 102 (disabled, a template of its own), subscribers to 102 (one with a hostile
// display name, one webhook URL carrying a credential).
func settingsSeeds() []string {
	return []string{
		option(42, 101, true, "email", 0),
		option(42, 102, false, "email,webhook", 300),
		`UPDATE NotificationOption SET TemplateName = 'incident-custom' WHERE BusinessUnitId = 42 AND NotificationEventTypeId = 102`,
		subscriber(42, 102, "email", "manager@example.com"),
		`UPDATE NotificationSubscriber SET DisplayName = '` + hostileName + `' WHERE Address = 'manager@example.com'`,
		subscriber(42, 102, "webhook", "https://hooks.example.com/in?token=SECRET-TOKEN"),
		option(7, 101, true, "email", 0),
		subscriber(7, 102, "email", "other-unit@example.com"),
	}
}

// GET /v1/settings/{bu} answers the unit's rows, redacted, and every type with its kind and
// whether the unit has an option for it; another unit's settings are 404 to a scoped key.
func TestSettingsAPI(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			t.Parallel()
			dsn := ""
			if db == "postgres" {
				dsn = testenv.PostgresDatabase(t)
			}
			env := newNotifyEnv(t, dsn, settingsSeeds()...)
			cfg := env.config()
			cfg.HTTPAddr = "127.0.0.1:0"
			cfg.Auth = auth.Config{Mode: auth.ModeKeys}
			w := env.start(cfg)
			ctx := context.Background()
			key := func(unit int64) string {
				k, _, err := w.Keys().Create(ctx, auth.NewKey{Role: auth.Support, Units: auth.Units{IDs: []int64{unit}}})
				if err != nil {
					t.Fatal(err)
				}
				return "Bearer " + k
			}
			of42, of7 := key(42), key(7)
			base := "http://" + w.HTTPAddr() + "/v1/settings/"

			code, body := call(t, "GET", base+"42", of42, "")
			if code != http.StatusOK {
				t.Fatalf("settings of unit 42: %d %s", code, body)
			}
			var s notify.UnitSettings
			if err := json.Unmarshal([]byte(body), &s); err != nil {
				t.Fatal(err)
			}
			var opts []string
			for _, o := range s.Options {
				opts = append(opts, fmt.Sprintf("%d %s %t %v %d %q", o.NotificationEventTypeID, o.NotificationType, o.Enabled, o.Channels, o.DelaySeconds, o.TemplateName))
			}
			if got, want := strings.Join(opts, "; "), `101 AttendeeNewProfile true [email] 0 ""; 102 IncidentSubmitted false [email webhook] 300 "incident-custom"`; got != want {
				t.Errorf("options:\n got %s\nwant %s", got, want)
			}
			var subs []string
			for _, sub := range s.Subscribers {
				subs = append(subs, fmt.Sprintf("%d %s %s %q", sub.NotificationEventTypeID, sub.Channel, sub.Address, sub.DisplayName))
			}
			if got, want := strings.Join(subs, "; "), fmt.Sprintf(`102 email manager@example.com %q; 102 webhook https://hooks.example.com/in?redacted "Sub"`, hostileName); got != want {
				t.Errorf("subscribers:\n got %s\nwant %s", got, want)
			}
			if strings.Contains(body, "SECRET-TOKEN") || strings.Contains(body, "other-unit") {
				t.Errorf("the answer shows a webhook credential or another unit's row: %s", body)
			}
			var types []string
			for _, ty := range s.Types {
				types = append(types, fmt.Sprintf("%d %s %s %v seeded=%t", ty.NotificationEventTypeID, ty.Name, ty.Kind, ty.MappingEventTypes, ty.Seeded))
			}
			want := "101 AttendeeNewProfile hint [] seeded=true; 102 IncidentSubmitted hint [] seeded=true; 103 SettingsUpdated mapping [41] seeded=false; " +
				"201 WelcomeEmail direct [] seeded=false; 202 PasswordReset direct [] seeded=false"
			if got := strings.Join(types, "; "); got != want {
				t.Errorf("types:\n got %s\nwant %s", got, want)
			}

			for _, c := range []struct {
				path, auth string
				want       int
			}{{"42", of7, 404}, {"7", of42, 404}, {"7", of7, 200}, {"0", of42, 400}, {"x", of42, 400}, {"42", "", 401}} {
				if code, body := call(t, "GET", base+c.path, c.auth, ""); code != c.want {
					t.Errorf("GET /v1/settings/%s: %d %s, want %d", c.path, code, body, c.want)
				}
			}
		})
	}
}
