package settings_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/platform/platform/settings"
)

func TestRuleVersionsOnBothDatabases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			at := time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC)
			v1 := settings.RuleRow{ID: "rul1", Version: 1, BusinessUnitID: 42, Enabled: true, Shadow: true,
				Definition: json.RawMessage(`{"eventTypes":[12]}`), Note: "added", CreatedAt: at, CreatedBy: "test"}
			if err := db.PutRuleVersion(ctx, v1); err != nil {
				t.Fatal(err)
			}
			// Two writers of the same version: the second is told, not silently overwritten.
			if err := db.PutRuleVersion(ctx, v1); !errors.Is(err, settings.ErrVersionExists) {
				t.Fatalf("the same version twice: %v, want ErrVersionExists", err)
			}
			v2 := v1
			v2.Version, v2.Enabled, v2.ProjectID, v2.Note, v2.CreatedBy = 2, false, "p-7", "", ""
			if err := db.PutRuleVersion(ctx, v2); err != nil {
				t.Fatal(err)
			}
			other := v1
			other.ID = "rul2"
			if err := db.PutRuleVersion(ctx, other); err != nil {
				t.Fatal(err)
			}
			rules, err := db.Rules(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rules) != 2 || rules[0].ID != "rul1" || rules[0].Version != 2 || rules[0].Enabled || rules[0].ProjectID != "p-7" || rules[1].ID != "rul2" {
				t.Fatalf("newest versions: %+v", rules)
			}
			vs, err := db.RuleVersions(ctx, "rul1")
			if err != nil || len(vs) != 2 || vs[0].Note != "added" || vs[0].CreatedBy != "test" || !vs[0].CreatedAt.Equal(at) || string(vs[0].Definition) != `{"eventTypes":[12]}` {
				t.Fatalf("versions of rul1: %+v, %v", vs, err)
			}
			if vs, err := db.RuleVersions(ctx, "none"); err != nil || len(vs) != 0 {
				t.Fatalf("versions of an unknown rule: %+v, %v", vs, err)
			}
		})
	}
}
