package api

import (
	"fmt"
	"strings"
	"testing"

	"github.com/platform/platform/tables"
)

// The notes of a cut scan say what happened and give no advice that does not help: a
// shorter window reads as much (CreatedAt is not a key).
func TestScanNotesSayMoreAndIncompleteApart(t *testing.T) {
	for _, c := range []struct {
		end  tables.ScanEnd
		want []string
	}{
		{tables.ScanEnd{Pages: 1}, nil},
		{tables.ScanEnd{More: true, Pages: 3}, []string{"more messages need attention than the 100 listed: these are the newest"}},
		{tables.ScanEnd{Incomplete: true, Pages: 20}, []string{"the scan of OutgoingMessages read its bound of 20 requests and the table is larger"}},
		{tables.ScanEnd{More: true, Incomplete: true, Pages: 20}, []string{"than the 100 listed", "read its bound of 20 requests"}},
	} {
		notes := scanNotes("messages", tables.TableOutgoingMessages, 100, c.end)
		if len(notes) != len(c.want) {
			t.Errorf("%+v: notes %q, want %d", c.end, notes, len(c.want))
			continue
		}
		for i, n := range notes {
			if !strings.Contains(n, c.want[i]) || strings.Contains(n, "narrow") {
				t.Errorf("%+v: note %q, want it to say %q and not to advise narrowing", c.end, n, c.want[i])
			}
		}
	}
}

// A poison body that names no key is described by its shape only, whatever it holds.
func TestShapeShowsNoText(t *testing.T) {
	many := "{"
	for i := range 14 {
		many += fmt.Sprintf(`"f%02d":"secret",`, i)
	}
	many = strings.TrimSuffix(many, ",") + "}"
	for body, want := range map[string]string{
		`{"payload":{"ssn":"123-45-6789"},"eventTypeId":"x"}`: "a JSON object of 51 bytes, fields eventTypeId, payload",
		`{}`:                                    "a JSON object of 2 bytes, no fields",
		`["secret"]`:                            "10 bytes of JSON, not an object",
		`null`:                                  "4 bytes of JSON, not an object",
		`secret, not JSON`:                      "16 bytes, not JSON",
		"{\"a\u202eb\":1}":                      `a JSON object of 11 bytes, fields "a\u202eb"`,
		`{"` + strings.Repeat("k", 50) + `":1}`: "a JSON object of 56 bytes, fields " + strings.Repeat("k", 40) + "…",
		many:                                    fmt.Sprintf("a JSON object of %d bytes, fields f00, f01, f02, f03, f04, f05, f06, f07, f08, f09, f10, f11, and 2 more", len(many)),
	} {
		if got := shape(body); got != want {
			t.Errorf("shape(%q) = %q, want %q", body, got, want)
		}
	}
}
