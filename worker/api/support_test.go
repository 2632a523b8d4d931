package api

import (
	"strings"
	"testing"
)

// A support action's reason is one line of visible text, at most 500 characters of UTF-8; each
// refusal says what is wrong.
func TestCheckReason(t *testing.T) {
	for _, c := range []struct {
		reason, want string // want: in the error; "" for none
	}{
		{"the provider's log shows it delivered", ""},
		{"Kundin hat angerufen — «zweimal» erhalten, 顧客", ""},
		{strings.Repeat("é", 500), ""},
		{"", "required"},
		{"   ", "required"},
		{strings.Repeat("x", 501), "501 characters: want at most 500"},
		{"bad \xff byte", "not valid UTF-8"},
		{"a\nb", "control character U+000A"},
		{"a\tb", "control character U+0009"},
		{"a\u0085b", "control character U+0085"},
		{"a\u202eb", "bidirectional control U+202E"},
		{"a\u2066b", "bidirectional control U+2066"},
		{"a\u200fb", "bidirectional control U+200F"},
		{"a\u2028b", "character U+2028 is not allowed"},
		{"a\u2029b", "character U+2029 is not allowed"},
		{"a\u200bb", "character U+200B is not allowed"},
		{"\ufeffa", "character U+FEFF is not allowed"},
		{"a\u00adb", "character U+00AD is not allowed"},
		{"a\u00a0b", ""},     // a no-break space pasted from a ticket: a space
		{"« a\u202fb »", ""}, // a narrow no-break space, as French writes around guillemets
	} {
		err := CheckReason(c.reason)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v, want it taken", c.reason, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "reason: ")):
			t.Errorf("%q: %v, want a refusal saying %q", c.reason, err, c.want)
		}
	}
}
