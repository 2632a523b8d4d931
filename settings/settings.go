// Package settings reads the notification settings that live in SQL, as the business
// application's other settings do: NotificationOption and NotificationSubscriber (DESIGN §5).
// SQLite (embedded, pure Go) by default, PostgreSQL for a postgres:// DSN.
//
// It is a top-level package because none of the storage packages fits: they own Azure Storage,
// and this owns a SQL database. It must not decide anything: the scheduler and generator read
// options and subscribers through it and decide.
package settings

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	_ "modernc.org/sqlite"             // driver "sqlite"

	"github.com/platform/platform/scripts"
)

// DefaultDSN is the embedded SQLite file used when PLATFORM_SETTINGS_DSN is empty.
const DefaultDSN = "data/platform.db"

// DB is a settings database.
type DB struct {
	db       *sql.DB
	postgres bool
}

// Open connects to dsn: postgres://… (or postgresql://…) selects PostgreSQL, anything else is
// a SQLite file path (its folder is created). It applies the schema, which is idempotent.
func Open(ctx context.Context, dsn string) (*DB, error) {
	if dsn == "" {
		dsn = DefaultDSN
	}
	d := &DB{}
	var err error
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		d.postgres = true
		d.db, err = sql.Open("pgx", dsn)
	} else {
		path := strings.TrimPrefix(dsn, "file:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("settings: %w", err)
			}
		}
		d.db, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	}
	if err != nil {
		return nil, fmt.Errorf("settings: open: %w", err)
	}
	if err := d.Exec(ctx, scripts.Schema); err != nil {
		d.db.Close()
		return nil, fmt.Errorf("settings: apply schema: %w", err)
	}
	return d, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// Exec runs a SQL script (one or more statements) in one transaction: a seed applies whole or
// not at all.
func (d *DB) Exec(ctx context.Context, script string) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, stmt := range splitStatements(script) {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%w (in: %s)", err, firstLine(stmt))
		}
	}
	return tx.Commit()
}

// Option is one NotificationOption row.
type Option struct {
	IsEnabled    bool
	Channels     []string
	DelaySeconds int
	TemplateName string // "" means the type's default
}

// ErrNotSeeded: no NotificationOption row for the business unit and type.
var ErrNotSeeded = errors.New("option not seeded")

// Option reads the option of (businessUnitID, notificationTypeID).
func (d *DB) Option(ctx context.Context, businessUnitID int64, notificationTypeID int) (Option, error) {
	var (
		o        Option
		channels string
		template sql.NullString
	)
	err := d.db.QueryRowContext(ctx, d.rebind(`SELECT IsEnabled, Channels, DelaySeconds, TemplateName FROM NotificationOption
		WHERE BusinessUnitId = ? AND NotificationEventTypeId = ?`), businessUnitID, notificationTypeID).
		Scan(&o.IsEnabled, &channels, &o.DelaySeconds, &template)
	if errors.Is(err, sql.ErrNoRows) {
		return Option{}, ErrNotSeeded
	}
	if err != nil {
		return Option{}, fmt.Errorf("read NotificationOption %d/%d: %w", businessUnitID, notificationTypeID, err)
	}
	for _, c := range strings.Split(channels, ",") {
		if c = strings.ToLower(strings.TrimSpace(c)); c != "" {
			o.Channels = append(o.Channels, c)
		}
	}
	o.TemplateName = strings.TrimSpace(template.String)
	return o, nil
}

// Subscriber is one NotificationSubscriber row.
type Subscriber struct {
	Channel, Address, DisplayName string
}

// Subscribers lists who receives (businessUnitID, notificationTypeID), in a stable order.
func (d *DB) Subscribers(ctx context.Context, businessUnitID int64, notificationTypeID int) ([]Subscriber, error) {
	rows, err := d.db.QueryContext(ctx, d.rebind(`SELECT Channel, Address, DisplayName FROM NotificationSubscriber
		WHERE BusinessUnitId = ? AND NotificationEventTypeId = ? ORDER BY Channel, Address`), businessUnitID, notificationTypeID)
	if err != nil {
		return nil, fmt.Errorf("read NotificationSubscriber %d/%d: %w", businessUnitID, notificationTypeID, err)
	}
	defer rows.Close()
	var out []Subscriber
	for rows.Next() {
		var s Subscriber
		var name sql.NullString
		if err := rows.Scan(&s.Channel, &s.Address, &name); err != nil {
			return nil, err
		}
		s.Channel, s.DisplayName = strings.ToLower(strings.TrimSpace(s.Channel)), name.String
		out = append(out, s)
	}
	return out, rows.Err()
}

// Ping tells whether the database answers.
func (d *DB) Ping(ctx context.Context) error { return d.db.PingContext(ctx) }

// rebind turns ? placeholders into PostgreSQL's $n.
func (d *DB) rebind(q string) string {
	if !d.postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// splitStatements splits a script on the semicolons that end statements, leaving those inside
// quotes and comments alone.
func splitStatements(script string) []string {
	var out []string
	var cur strings.Builder
	inSingle, inDouble, inLine, inBlock := false, false, false, false
	rs := []rune(script)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		next := rune(0)
		if i+1 < len(rs) {
			next = rs[i+1]
		}
		switch {
		case inLine:
			if r == '\n' {
				inLine = false
			}
		case inBlock:
			if r == '*' && next == '/' {
				inBlock = false
				cur.WriteRune(r)
				i++
				r = next
			}
		case inSingle:
			if r == '\'' {
				inSingle = false
			}
		case inDouble:
			if r == '"' {
				inDouble = false
			}
		case r == '-' && next == '-':
			inLine = true
		case r == '/' && next == '*':
			inBlock = true
		case r == '\'':
			inSingle = true
		case r == '"':
			inDouble = true
		case r == ';':
			if s := strings.TrimSpace(cur.String()); s != "" {
				out = append(out, s)
			}
			cur.Reset()
			continue
		}
		if !inLine || r == '\n' {
			cur.WriteRune(r)
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return s
}
