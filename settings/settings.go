// Package settings reads the notification settings that live in SQL, as the business application's
// other settings do: NotificationOption and NotificationSubscriber (docs/contracts.md, "Storage
// names"). SQLite (embedded, pure Go) by default, PostgreSQL for a postgres:// DSN.
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
	"net/url"
	"os"
	"path/filepath"
	"regexp"
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

// Open connects to dsn and applies the schema, which is idempotent. It accepts:
//
//   - "": DefaultDSN.
//   - postgres://… or postgresql://…: PostgreSQL, as pgx reads such a URL.
//   - file:PATH[?QUERY]: a SQLite URI, read as SQLite reads one (https://www.sqlite.org/uri.html):
//     %HH escapes in PATH are decoded, file:///ABS/PATH and file://localhost/ABS/PATH are
//     absolute, a file://HOST/… naming any other host is refused, and the query is kept, so
//     SQLite's parameters (mode=ro, mode=rw, cache=shared, immutable=1, …) and the driver's
//     (_pragma=…, _txlock=…) apply.
//   - sqlite:PATH[?QUERY] and sqlite://PATH[?QUERY]: the same as file:PATH[?QUERY]. No host
//     follows "sqlite://", as golang-migrate and dbmate read it: sqlite:///srv/platform.db is
//     /srv/platform.db and sqlite://data/platform.db is data/platform.db in the working folder.
//   - anything else: a SQLite file path, taken literally ('%' and '#' are not escapes) up to a
//     '?'; a query after it is kept, as for file:.
//
// A DSN that starts with any other scheme (mysql://…, sqlserver://…, user:password@tcp(…)),
// or reads like a key=value connection string, is refused: it is not a file name, and the
// error does not repeat it, as it may hold a password. A one-letter scheme is a Windows drive
// (C:\data\platform.db). A relative file name with a colon needs a folder: ./a:b.db.
//
// A SQLite database gets busy_timeout(10000) and journal_mode(WAL) unless its query sets them
// (WAL not under mode=ro or immutable=1, where it cannot be switched on), and the folder of its
// file is created only where SQLite may create the file (no mode, or mode=rwc).
func Open(ctx context.Context, dsn string) (*DB, error) {
	if dsn == "" {
		dsn = DefaultDSN
	}
	driver, name, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	d := &DB{postgres: driver == "pgx"}
	if d.db, err = sql.Open(driver, name); err != nil {
		return nil, fmt.Errorf("settings: open: %w", redact(err, name))
	}
	if d.postgres {
		d.db.SetMaxOpenConns(PostgresMaxConns)
		d.db.SetMaxIdleConns(PostgresMaxConns)
	}
	if err := d.Exec(ctx, scripts.Schema); err != nil {
		d.db.Close()
		return nil, fmt.Errorf("settings: apply schema: %w", redact(err, name))
	}
	return d, nil
}

// PostgresMaxConns bounds one process's connections to a PostgreSQL settings database. Its
// queries are short (an option, the subscribers, a rule set), so 10 serve a process's hundreds
// of handlers, which wait their turn; unbounded, a scaled-out deployment (four roles, tens of
// replicas, 64 handlers per queue) would open more connections than the server allows, and every
// replica's /readyz would fail at once.
const PostgresMaxConns = 10

const wantDSN = "want a SQLite path, sqlite:PATH, file:PATH or postgres://…"

var (
	dsnScheme   = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*):`)
	dsnKeyValue = regexp.MustCompile(`^\s*[A-Za-z_][A-Za-z0-9_ ]*=`)
)

// parseDSN gives the driver and the name to open for dsn (see Open). For SQLite it creates the
// folder of the file where SQLite may create the file.
func parseDSN(dsn string) (driver, name string, err error) {
	scheme := ""
	if m := dsnScheme.FindStringSubmatch(dsn); m != nil && len(m[1]) > 1 {
		scheme = strings.ToLower(m[1])
	}
	rest := dsn[len(scheme):]
	if scheme != "" {
		rest = rest[1:] // the colon
	}
	var path, query string // path is %-escaped, as in a file: URI
	switch scheme {
	case "postgres", "postgresql":
		if !strings.HasPrefix(rest, "//") {
			return "", "", fmt.Errorf("settings: a PostgreSQL DSN is %s://…", scheme)
		}
		if _, err := url.Parse(dsn); err != nil {
			// Not url.Parse's error: it quotes the DSN, password and all.
			return "", "", errors.New("settings: the PostgreSQL DSN is not a valid URL (percent-encode @, :, / and the like in the user name and password)")
		}
		return "pgx", scheme + ":" + rest, nil
	case "file":
		if after, ok := strings.CutPrefix(rest, "//"); ok {
			end := strings.IndexAny(after, "/?#")
			if end < 0 {
				end = len(after)
			}
			if host := after[:end]; host != "" && !strings.EqualFold(host, "localhost") {
				return "", "", errors.New("settings: a file://HOST/… DSN names a host, and SQLite opens local files: want file:PATH or file:///ABSOLUTE/PATH")
			}
			rest = after[end:]
		}
		rest, _, _ = strings.Cut(rest, "#")
		path, query, _ = strings.Cut(rest, "?")
	case "sqlite":
		rest, _, _ = strings.Cut(strings.TrimPrefix(rest, "//"), "#")
		path, query, _ = strings.Cut(rest, "?")
	case "":
		if dsnKeyValue.MatchString(dsn) {
			return "", "", errors.New("settings: the DSN reads like a key=value connection string: " + wantDSN)
		}
		var literal string
		literal, query, _ = strings.Cut(dsn, "?")
		path = strings.NewReplacer("%", "%25", "#", "%23").Replace(literal)
	default:
		return "", "", fmt.Errorf("settings: unsupported DSN scheme %q: %s", scheme, wantDSN)
	}
	file, err := url.PathUnescape(path)
	if err != nil {
		return "", "", fmt.Errorf("settings: SQLite DSN path: %w", err)
	}
	if file == "" {
		return "", "", errors.New("settings: the SQLite DSN names no file: " + wantDSN)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", "", fmt.Errorf("settings: SQLite DSN query: %w", err)
	}
	mode := q.Get("mode")
	if dir := filepath.Dir(file); (mode == "" || mode == "rwc") && file != ":memory:" && dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", "", fmt.Errorf("settings: %w", err)
		}
	}
	var params []string
	if !setsPragma(q, "busy_timeout", "_busy_timeout", "_timeout") {
		params = append(params, "_pragma=busy_timeout(10000)")
	}
	if mode != "ro" && !isTrue(q.Get("immutable")) && !setsPragma(q, "journal_mode", "_journal_mode", "_journal") {
		params = append(params, "_pragma=journal_mode(WAL)")
	}
	if query != "" {
		params = append(params, query)
	}
	uri := "file:" + path
	if strings.HasPrefix(path, "/") {
		uri = "file://" + path // an empty authority, lest a path starting with // be read as one
	}
	return "sqlite", uri + "?" + strings.Join(params, "&"), nil
}

// setsPragma tells whether q sets the pragma, in a _pragma value or with one of the driver's
// shorthand keys.
func setsPragma(q url.Values, pragma string, keys ...string) bool {
	for _, k := range keys {
		if q.Has(k) {
			return true
		}
	}
	for _, v := range q["_pragma"] {
		v = strings.ToLower(strings.TrimSpace(v))
		if rest, ok := strings.CutPrefix(v, pragma); ok && (rest == "" || strings.ContainsAny(rest[:1], "(= ")) {
			return true
		}
	}
	return false
}

// isTrue reads a SQLite URI boolean parameter.
func isTrue(v string) bool {
	switch strings.ToLower(v) {
	case "1", "yes", "true", "on":
		return true
	}
	return false
}

// redact removes the password of a PostgreSQL DSN from err's message. pgx masks it already;
// this holds should a message ever quote the DSN some other way.
func redact(err error, dsn string) error {
	u, perr := url.Parse(dsn)
	if perr != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return err
	}
	var secrets []string
	if p, ok := u.User.Password(); ok {
		secrets = append(secrets, p)
	}
	if authority, _, _ := strings.Cut(strings.TrimPrefix(dsn, u.Scheme+"://"), "/"); strings.Contains(authority, "@") {
		userinfo := authority[:strings.LastIndexByte(authority, '@')]
		if _, p, ok := strings.Cut(userinfo, ":"); ok {
			secrets = append(secrets, p) // as written, escapes and all
		}
	}
	for _, k := range []string{"password", "sslpassword"} {
		secrets = append(secrets, u.Query()[k]...)
	}
	msg := err.Error()
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	if msg == err.Error() {
		return err
	}
	return redactedError{msg, err}
}

type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }

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
	o.Channels, o.TemplateName = splitChannels(channels), strings.TrimSpace(template.String)
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

// UnitOption is one NotificationOption row of a business unit: the type it is for, and the option.
type UnitOption struct {
	NotificationTypeID int
	Option
}

// UnitOptions lists the NotificationOption rows of businessUnitID, by type id: what support reads
// to see which notifications a unit has turned on. The scheduler reads one option at a time
// (Option).
func (d *DB) UnitOptions(ctx context.Context, businessUnitID int64) ([]UnitOption, error) {
	rows, err := d.db.QueryContext(ctx, d.rebind(`SELECT NotificationEventTypeId, IsEnabled, Channels, DelaySeconds, TemplateName
		FROM NotificationOption WHERE BusinessUnitId = ? ORDER BY NotificationEventTypeId`), businessUnitID)
	if err != nil {
		return nil, fmt.Errorf("read NotificationOption of business unit %d: %w", businessUnitID, err)
	}
	defer rows.Close()
	out := []UnitOption{}
	for rows.Next() {
		var (
			o        UnitOption
			channels string
			template sql.NullString
		)
		if err := rows.Scan(&o.NotificationTypeID, &o.IsEnabled, &channels, &o.DelaySeconds, &template); err != nil {
			return nil, fmt.Errorf("read NotificationOption of business unit %d: %w", businessUnitID, err)
		}
		o.Channels, o.TemplateName = splitChannels(channels), strings.TrimSpace(template.String)
		out = append(out, o)
	}
	return out, rows.Err()
}

// UnitSubscriber is one NotificationSubscriber row of a business unit: the type it receives,
// and who.
type UnitSubscriber struct {
	NotificationTypeID int
	Subscriber
}

// UnitSubscribers lists at most limit NotificationSubscriber rows of businessUnitID, by type,
// channel and address; more reports that there were more.
func (d *DB) UnitSubscribers(ctx context.Context, businessUnitID int64, limit int) (subs []UnitSubscriber, more bool, err error) {
	if limit < 1 {
		return nil, false, fmt.Errorf("read NotificationSubscriber: limit %d: want > 0", limit)
	}
	rows, err := d.db.QueryContext(ctx, d.rebind(`SELECT NotificationEventTypeId, Channel, Address, DisplayName FROM NotificationSubscriber
		WHERE BusinessUnitId = ? ORDER BY NotificationEventTypeId, LOWER(Channel), Address LIMIT ?`), businessUnitID, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("read NotificationSubscriber of business unit %d: %w", businessUnitID, err)
	}
	defer rows.Close()
	subs = []UnitSubscriber{}
	for rows.Next() {
		var s UnitSubscriber
		var name sql.NullString
		if err := rows.Scan(&s.NotificationTypeID, &s.Channel, &s.Address, &name); err != nil {
			return nil, false, fmt.Errorf("read NotificationSubscriber of business unit %d: %w", businessUnitID, err)
		}
		s.Channel, s.DisplayName = strings.ToLower(strings.TrimSpace(s.Channel)), name.String
		subs = append(subs, s)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if len(subs) > limit {
		return subs[:limit], true, nil
	}
	return subs, false, nil
}

// splitChannels reads a Channels column: comma-separated, any case and spacing.
func splitChannels(channels string) []string {
	var out []string
	for _, c := range strings.Split(channels, ",") {
		if c = strings.ToLower(strings.TrimSpace(c)); c != "" {
			out = append(out, c)
		}
	}
	return out
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
