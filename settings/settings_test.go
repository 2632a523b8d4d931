package settings_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/settings"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// databases gives each test a fresh SQLite file and a fresh PostgreSQL database.
func databases(t *testing.T) map[string]*settings.DB {
	t.Helper()
	ctx := context.Background()
	sqlite, err := settings.Open(ctx, filepath.Join(t.TempDir(), "settings.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqlite.Close() })
	pg, err := settings.Open(ctx, testenv.PostgresDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	return map[string]*settings.DB{"sqlite": sqlite, "postgres": pg}
}

func TestSeedScriptsAreIdempotentOnBothDatabases(t *testing.T) {
	t.Parallel()
	seeds, err := filepath.Glob("../scripts/seed_*.sql")
	if err != nil || len(seeds) == 0 {
		t.Fatalf("no seed scripts found: %v", err)
	}
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			for range 3 {
				for _, f := range seeds {
					script, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					if err := db.Exec(ctx, string(script)); err != nil {
						t.Fatalf("%s: %v", f, err)
					}
				}
			}
			o, err := db.Option(ctx, 42, 102)
			if err != nil || !o.IsEnabled || len(o.Channels) != 1 || o.Channels[0] != "email" || o.TemplateName != "incident-submitted" {
				t.Fatalf("option %+v, %v", o, err)
			}
			subs, err := db.Subscribers(ctx, 42, 102)
			if err != nil || len(subs) != 1 || subs[0].Address != "manager@example.com" {
				t.Fatalf("subscribers after three runs: %+v, %v", subs, err)
			}
			if _, err := db.Option(ctx, 42, 999); !errors.Is(err, settings.ErrNotSeeded) {
				t.Fatalf("unseeded option: %v", err)
			}
		})
	}
}

func TestAFailingScriptAppliesNothing(t *testing.T) {
	t.Parallel()
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			script := `INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds)
				SELECT 7, 101, FALSE, 'email', 60 WHERE NOT EXISTS (SELECT 1 FROM NotificationOption WHERE BusinessUnitId = 7 AND NotificationEventTypeId = 101);
				-- a comment; with a semicolon
				INSERT INTO NoSuchTable VALUES (1);`
			err := db.Exec(ctx, script)
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), "nosuchtable") {
				t.Fatalf("want an error naming the bad statement, got %v", err)
			}
			if _, err := db.Option(ctx, 7, 101); !errors.Is(err, settings.ErrNotSeeded) {
				t.Fatalf("half a script was applied: %v", err)
			}
			if err := db.Exec(ctx, strings.Split(script, "-- a comment")[0]); err != nil {
				t.Fatal(err)
			}
			o, err := db.Option(ctx, 7, 101)
			if err != nil || o.IsEnabled || o.DelaySeconds != 60 || o.TemplateName != "" {
				t.Fatalf("option %+v, %v", o, err)
			}
		})
	}
}
