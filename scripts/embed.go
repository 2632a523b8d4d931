// Package scripts embeds the SQL of the notification settings: the schema every settings
// database gets, and the example seeds. It holds no logic.
package scripts

import _ "embed"

// Schema creates the settings tables where missing (idempotent, SQLite and PostgreSQL).
//
//go:embed schema.sql
var Schema string
