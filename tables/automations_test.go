package tables_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform/internal/storage"
	"github.com/platform/platform/internal/testenv"
	"github.com/platform/platform/tables"
)

// An event's decisions, however many and however long, come back as written: packed into
// chunks and rows within Azure's limits (which Azurite does not enforce: checked here by
// size), a replay's beside them, and a shorter rewrite leaving no stale decision behind.
func TestDecisionsPackAndReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tc, err := tables.New(storage.Account{}, testenv.Namespace(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.CreateTables(ctx, tables.TableAutomationDecisions); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	decisions := func(n int, detail string) []tables.Decision {
		var ds []tables.Decision
		for i := range n {
			ds = append(ds, tables.Decision{RuleID: fmt.Sprintf("rul%026d", i), RuleVersion: 1, Outcome: "filter_error",
				Detail: detail, DedupeKey: strings.Repeat("k", 2000), DecidedAt: at})
		}
		return ds
	}
	const key = "12:1:7c9e6679-7425-40de-944b-e07fc1f90ae7:2026-11-22T10:00:00.0000000Z:2"
	event := []byte(`{"eventTypeId":12,"payload":{"note":"` + strings.Repeat("é", 14_000) + `"}}`)
	// 600 decisions of ~2 KB each (their texts clipped at 1 KB): several chunks, two rows.
	if err := tc.Decisions().Put(ctx, key, tables.DecidedEvent{Event: event}, decisions(600, strings.Repeat("€", 700))); err != nil {
		t.Fatal(err)
	}
	replay := tables.Decision{RuleID: fmt.Sprintf("rul%026d~g2", 7), RuleVersion: 3, Outcome: "fired", Detail: "replay", Generation: 2, DecidedAt: at.Add(24 * time.Hour)}
	if err := tc.Decisions().Put(ctx, key, tables.DecidedEvent{Event: event}, []tables.Decision{replay}); err != nil {
		t.Fatal(err)
	}
	ds, ev, err := tc.Decisions().List(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 601 || string(ev.Event) != string(event) {
		t.Fatalf("%d decisions and an event of %d bytes back, want 601 and %d", len(ds), len(ev.Event), len(event))
	}
	byRule := map[string]tables.Decision{}
	for _, d := range ds {
		byRule[d.RuleID] = d
	}
	if d := byRule[replay.RuleID]; d.Outcome != "fired" || d.Generation != 2 || !d.DecidedAt.Equal(replay.DecidedAt) {
		t.Fatalf("the replay's decision: %+v", d)
	}
	if d := byRule[fmt.Sprintf("rul%026d", 599)]; d.Outcome != "filter_error" || !strings.HasSuffix(d.Detail, "…") || !d.DecidedAt.Equal(at) {
		t.Fatalf("the last decision: %+v", d)
	}
	// A redelivery decides again, now with fewer rules: only what it wrote is listed (and the
	// replay, which it did not touch).
	if err := tc.Decisions().Put(ctx, key, tables.DecidedEvent{Event: event}, decisions(3, "short")); err != nil {
		t.Fatal(err)
	}
	ds, _, err = tc.Decisions().List(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 4 {
		t.Fatalf("%d decisions after a shorter rewrite, want 3 and the replay's", len(ds))
	}
}

// Whatever a filter error or a dedupe key holds comes back as it was written (invalid UTF-8
// as U+FFFD), and a decision decided at another instant than the row keeps its own.
func TestDecisionTextsRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tc, err := tables.New(storage.Account{}, testenv.Namespace(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.CreateTables(ctx, tables.TableAutomationDecisions); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	texts := []string{`quote " backslash \ slash /`, "control \x00\x01\x1f\t\n end", "emoji 🚀 and é", "bad \xff\xfe utf-8", `</script>&`}
	var ds []tables.Decision
	for i, s := range texts {
		ds = append(ds, tables.Decision{RuleID: fmt.Sprintf("rul%026d", i), RuleVersion: i + 1, Outcome: "filter_error", Detail: s, DedupeKey: s,
			DecidedAt: at.Add(time.Duration(i) * time.Millisecond)})
	}
	const key = "12:1:7c9e6679-7425-40de-944b-e07fc1f90ae7:2026-11-22T10:00:00.0000000Z:2"
	if err := tc.Decisions().Put(ctx, key, tables.DecidedEvent{Event: []byte(`{}`)}, ds); err != nil {
		t.Fatal(err)
	}
	got, _, err := tc.Decisions().List(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(texts) {
		t.Fatalf("%d decisions back, want %d", len(got), len(texts))
	}
	for i, d := range got {
		want := strings.ToValidUTF8(texts[i], "\uFFFD")
		if d.Detail != want || d.DedupeKey != want || d.RuleVersion != i+1 || !d.DecidedAt.Equal(ds[i].DecidedAt) {
			t.Errorf("decision %d: %+v, want detail and key %q at %s", i, d, want, ds[i].DecidedAt)
		}
	}
}
