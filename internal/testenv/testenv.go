// Package testenv gives integration tests what they share: a check that Azurite answers (a
// missing Azurite fails the run, it never skips it), a fresh namespace per test that is
// deleted afterwards, and a logger that writes through t.Log.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	"github.com/sirupsen/logrus"

	"github.com/platform/platform"
	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/queues"
	"github.com/platform/platform/tables"
)

// Main runs the package's tests once Azurite answers on 127.0.0.1:10000-10002, and fails the
// run with a clear reason when it does not. Use it from TestMain.
func Main(m *testing.M) {
	for _, port := range []string{"10000", "10001", "10002"} {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 2*time.Second)
		if err != nil {
			fmt.Fprintf(os.Stderr, "Azurite does not answer on 127.0.0.1:%s (%v).\n"+
				"These tests run against real Azurite: `make test` starts it, or `make azurite/up`.\n", port, err)
			os.Exit(1)
		}
		conn.Close()
	}
	os.Exit(m.Run())
}

// NewNamespace is a namespace no one has used: "t" and 12 random letters and digits.
func NewNamespace() platform.Namespace {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return platform.Namespace("t" + string(b))
}

// Namespace is a fresh namespace for t in the shared Azurite, deleted with everything in it
// when t ends.
func Namespace(t testing.TB) platform.Namespace {
	t.Helper()
	ns := NewNamespace()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		q, err := queues.New(storage.Account{}, ns)
		if err == nil {
			err = q.DeleteNamespace(ctx)
		}
		if err != nil {
			t.Logf("cleanup of namespace %s: %v", ns, err)
		}
		tb, err := tables.New(storage.Account{}, ns)
		if err == nil {
			err = tb.DeleteNamespace(ctx)
		}
		if err != nil {
			t.Logf("cleanup of namespace %s: %v", ns, err)
		}
	})
	return ns
}

// Logger writes log lines through t.Log, so they show with the test that caused them.
func Logger(t testing.TB) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(tWriter{t})
	log.SetLevel(logrus.DebugLevel)
	log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	return log
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Eventually polls cond every 50ms until it holds, and fails t if it does not within timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PostgresDSN is the test server that `make test` starts (postgres/up.sh).
func PostgresDSN() string {
	if dsn := os.Getenv("PLATFORM_TEST_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:54329/postgres?sslmode=disable"
}

// PostgresDatabase creates a fresh database on the test server for t, dropped when t ends, and
// returns its DSN. A missing server fails t: `make test` starts one.
func PostgresDatabase(t testing.TB) string {
	t.Helper()
	admin, err := sql.Open("pgx", PostgresDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := string(Namespace(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("PostgreSQL at %s: %v (make test starts it: postgres/up.sh)", PostgresDSN(), err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", PostgresDSN())
		if err != nil {
			return
		}
		defer admin.Close()
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	u, _ := url.Parse(PostgresDSN())
	u.Path = "/" + name
	return u.String()
}

// FreeAddr is a 127.0.0.1 address with a port free at the time of the call, for a server
// started as another process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
