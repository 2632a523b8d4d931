package api

import (
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
