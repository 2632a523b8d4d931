package api

import (
	"strconv"
	"testing"
)

// A stream's memory of what it sent stays bounded however long the client stays, and still
// refuses a repeat within its window.
func TestRecentIsBoundedAndRefusesRepeats(t *testing.T) {
	r := newRecent(8)
	for i := range 1000 {
		if !r.add(strconv.Itoa(i)) {
			t.Fatalf("id %d refused the first time", i)
		}
		if r.add(strconv.Itoa(i)) {
			t.Fatalf("id %d accepted twice in a row", i)
		}
	}
	if len(r.ids) != 8 {
		t.Fatalf("remembers %d ids, want 8", len(r.ids))
	}
	if r.add("999") || !r.add("0") {
		t.Fatal("the window is not the last 8 ids")
	}
}
