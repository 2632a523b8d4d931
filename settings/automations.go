package settings

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RuleRow is one version of an automation rule as stored in AutomationRule. The automations
// concern owns what Definition means; this package only keeps versions.
type RuleRow struct {
	ID             string
	Version        int
	BusinessUnitID int64
	ProjectID      string
	Enabled        bool
	Shadow         bool
	Definition     json.RawMessage
	Note           string
	CreatedAt      time.Time
	CreatedBy      string
}

// ErrVersionExists: another writer stored that version of the rule first.
var ErrVersionExists = errors.New("that version of the rule exists: it was changed meanwhile")

const ruleColumns = `RuleId, Version, BusinessUnitId, ProjectId, Enabled, Shadow, Definition, Note, CreatedAt, CreatedBy`

// Rules reads the newest version of every rule.
func (d *DB) Rules(ctx context.Context) ([]RuleRow, error) {
	return d.queryRules(ctx, `SELECT `+ruleColumns+` FROM AutomationRule r
		WHERE Version = (SELECT MAX(Version) FROM AutomationRule v WHERE v.RuleId = r.RuleId) ORDER BY RuleId`)
}

// RuleVersions reads every version of rule id, oldest first; none is an empty list.
func (d *DB) RuleVersions(ctx context.Context, id string) ([]RuleRow, error) {
	return d.queryRules(ctx, `SELECT `+ruleColumns+` FROM AutomationRule WHERE RuleId = ? ORDER BY Version`, id)
}

// PutRuleVersion stores r, a new version. ErrVersionExists when that version is taken (the
// rule changed since the caller read it).
func (d *DB) PutRuleVersion(ctx context.Context, r RuleRow) error {
	_, err := d.db.ExecContext(ctx, d.rebind(`INSERT INTO AutomationRule (`+ruleColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		r.ID, r.Version, r.BusinessUnitID, nullable(r.ProjectID), r.Enabled, r.Shadow, string(r.Definition),
		nullable(r.Note), r.CreatedAt.UTC().Format(time.RFC3339Nano), nullable(r.CreatedBy))
	if err != nil && isUniqueViolation(err) {
		return fmt.Errorf("rule %s version %d: %w", r.ID, r.Version, ErrVersionExists)
	}
	if err != nil {
		return fmt.Errorf("store rule %s version %d: %w", r.ID, r.Version, err)
	}
	return nil
}

func (d *DB) queryRules(ctx context.Context, q string, args ...any) ([]RuleRow, error) {
	rows, err := d.db.QueryContext(ctx, d.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("read AutomationRule: %w", err)
	}
	defer rows.Close()
	out := []RuleRow{}
	for rows.Next() {
		var (
			r                         RuleRow
			project, note, createdBy  sql.NullString
			definition, createdAtText string
		)
		if err := rows.Scan(&r.ID, &r.Version, &r.BusinessUnitID, &project, &r.Enabled, &r.Shadow,
			&definition, &note, &createdAtText, &createdBy); err != nil {
			return nil, fmt.Errorf("read AutomationRule: %w", err)
		}
		r.ProjectID, r.Note, r.CreatedBy, r.Definition = project.String, note.String, createdBy.String, json.RawMessage(definition)
		r.CreatedAt, _ = time.Parse(time.RFC3339Nano, createdAtText)
		out = append(out, r)
	}
	return out, rows.Err()
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// isUniqueViolation tells a primary-key conflict, as SQLite and PostgreSQL (SQLSTATE 23505)
// word it.
func isUniqueViolation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "SQLSTATE 23505") || strings.Contains(msg, "duplicate key value")
}
