package settings_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestOpenSQLiteDSNForms opens a database through each SQLite form Open accepts and checks
// where it went: to the file meant, with the schema, and no folder named after a scheme (as
// "sqlite:…" made when it was taken for a path).
func TestOpenSQLiteDSNForms(t *testing.T) {
	ctx := context.Background()
	abs := t.TempDir()
	cwd := t.TempDir()
	t.Chdir(cwd) // the relative forms land here
	for _, tc := range []struct{ dsn, file string }{
		{abs + "/plain/s.db", abs + "/plain/s.db"},
		{"rel/plain.db", "rel/plain.db"},
		{abs + "/literal%20#1/s.db", abs + "/literal%20#1/s.db"}, // a path is not %-escaped
		{abs + "/plain-query/s.db?_txlock=immediate", abs + "/plain-query/s.db"},
		{"sqlite:" + abs + "/sqlite/s.db", abs + "/sqlite/s.db"},
		{"sqlite:rel/sqlite.db", "rel/sqlite.db"},
		{"SQLite:rel/upper.db", "rel/upper.db"},
		{"sqlite://" + abs + "/sqlite-slashes/s.db", abs + "/sqlite-slashes/s.db"}, // sqlite:///tmp/…
		{"sqlite://rel/sqlite-slashes.db", "rel/sqlite-slashes.db"},
		{"sqlite:" + abs + "/sqlite-query/s.db?_txlock=immediate", abs + "/sqlite-query/s.db"},
		{"file:" + abs + "/file/s.db", abs + "/file/s.db"},
		{"file:rel/file.db?_txlock=immediate", "rel/file.db"},
		{"file://" + abs + "/file-empty-host/s.db", abs + "/file-empty-host/s.db"},
		{"file://localhost" + abs + "/file-localhost/s.db", abs + "/file-localhost/s.db"},
		{"file:" + abs + "/with%20space/s.db", abs + "/with space/s.db"},
		{"file:" + abs + "/file-query/s.db?cache=private&_pragma=foreign_keys(1)", abs + "/file-query/s.db"},
	} {
		t.Run(tc.dsn, func(t *testing.T) {
			db, err := settings.Open(ctx, tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Option(ctx, 1, 1); !errors.Is(err, settings.ErrNotSeeded) {
				t.Fatalf("the schema is not there: %v", err)
			}
			if fi, err := os.Stat(tc.file); err != nil || fi.Size() == 0 {
				t.Fatalf("no database at %s: %v", tc.file, err)
			}
		})
	}
	for _, root := range []string{abs, cwd} {
		filepath.WalkDir(root, func(path string, _ os.DirEntry, err error) error {
			if err == nil && strings.Contains(filepath.Base(path), ":") {
				t.Errorf("Open made %s", path)
			}
			return err
		})
	}
}

// TestOpenKeepsSQLiteURIParameters: a file: query reaches SQLite; mode=ro opens read-only, and
// makes no folder for a file it may not create.
func TestOpenKeepsSQLiteURIParameters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	rw, err := settings.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	insert := `INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds)
		VALUES (7, 101, TRUE, 'email', 0)`
	if err := rw.Exec(ctx, insert); err != nil {
		t.Fatal(err)
	}
	rw.Close()

	ro, err := settings.Open(ctx, "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if o, err := ro.Option(ctx, 7, 101); err != nil || !o.IsEnabled {
		t.Fatalf("read-only: option %+v, %v", o, err)
	}
	if err := ro.Exec(ctx, strings.Replace(insert, "(7, 101", "(8, 101", 1)); err == nil || !strings.Contains(err.Error(), "readonly") {
		t.Fatalf("mode=ro was dropped: a write gave %v", err)
	}

	missing := filepath.Join(t.TempDir(), "none")
	if db, err := settings.Open(ctx, "sqlite:"+missing+"/s.db?mode=ro"); err == nil {
		db.Close()
		t.Fatal("mode=ro opened a file that does not exist")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("mode=ro made a folder: %v", err)
	}
}

// TestOpenRefusesOtherDSNs: another database's DSN, or a malformed one, is refused with a
// clear error that does not quote the password; nothing is created for it.
func TestOpenRefusesOtherDSNs(t *testing.T) {
	ctx := context.Background()
	cwd := t.TempDir()
	t.Chdir(cwd)
	for _, tc := range []struct{ dsn, want string }{
		{"mysql://root:s3cret@db.example.com:3306/platform",
			`settings: unsupported DSN scheme "mysql": want a SQLite path, sqlite:PATH, file:PATH or postgres://…`},
		{"sqlserver://sa:s3cret@db.example.com?database=platform", `unsupported DSN scheme "sqlserver"`},
		{"MySQL://root:s3cret@db.example.com/platform", `unsupported DSN scheme "mysql"`},
		{"root:s3cret@tcp(127.0.0.1:3306)/platform", `unsupported DSN scheme "root"`},
		{"host=db.example.com user=platform password=s3cret dbname=platform", "key=value"},
		{"Server=tcp:db.example.com,1433;User ID=sa;Password=s3cret", "key=value"},
		{"file://db.example.com/platform.db", "names a host"},
		{"postgres:root:s3cret@db.example.com/platform", "postgres://"},
		{"postgres://root:s3cret@db.example.com:port/platform", "not a valid URL"},
		{"sqlite:", "names no file"},
		// Not refused, but failing: pgx's error must not quote the password either.
		{"postgres://root:s3cret@127.0.0.1:1/platform?connect_timeout=5", "apply schema"},
	} {
		t.Run(tc.dsn, func(t *testing.T) {
			db, err := settings.Open(ctx, tc.dsn)
			if err == nil {
				db.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q in it", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error quotes the password: %v", err)
			}
		})
	}
	if left, _ := os.ReadDir(cwd); len(left) > 0 {
		t.Errorf("refused DSNs left %v", left)
	}
}

// A process holds at most PostgresMaxConns connections to PostgreSQL, however many of its
// handlers read settings at once: the others wait their turn.
func TestAProcessHoldsAtMostTenPostgreSQLConnections(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.PostgresDatabase(t)
	db, err := settings.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	watcher, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	var wg sync.WaitGroup
	for range 3 * settings.PostgresMaxConns {
		wg.Go(func() {
			if err := db.Exec(ctx, "SELECT pg_sleep(0.3)"); err != nil {
				t.Error(err)
			}
		})
	}
	most := 0
	for range 10 {
		time.Sleep(50 * time.Millisecond)
		var n int
		if err := watcher.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_sleep%' AND query NOT LIKE '%pg_stat_activity%'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		most = max(most, n)
	}
	wg.Wait()
	if most == 0 || most > settings.PostgresMaxConns {
		t.Fatalf("at most %d connections ran a query at once, want 1..%d", most, settings.PostgresMaxConns)
	}
	t.Logf("%d queries at once at most, for %d asked", most, 3*settings.PostgresMaxConns)
}
