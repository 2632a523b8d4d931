package delivery

import (
	"testing"

	"github.com/platform/platform"
)

// Only a Pending message that a resend or replay put back, and that nothing has claimed since,
// is handed to the distributor again: any other Pending message is on its way.
func TestRearmedNotClaimed(t *testing.T) {
	step := func(stage, decision string) platform.Step { return platform.Step{Stage: stage, Decision: decision} }
	for _, c := range []struct {
		name string
		m    platform.OutgoingMessage
		want bool
	}{
		{"resent, the hand-off failed", platform.OutgoingMessage{Trail: []platform.Step{step("support", "resent")}}, true},
		{"replayed, the hand-off failed", platform.OutgoingMessage{Trail: []platform.Step{step("replay", "replayed")}}, true},
		{"new, waiting for its first send", platform.OutgoingMessage{Trail: []platform.Step{step("generator", "rendered")}}, false},
		{"waiting out a retry", platform.OutgoingMessage{Attempts: 2, Trail: []platform.Step{step("distributor", "will retry")}}, false},
		{"resent, then claimed", platform.OutgoingMessage{Attempts: 1, Trail: []platform.Step{step("support", "resent")}}, false},
		{"no trail", platform.OutgoingMessage{}, false},
	} {
		if got := rearmedNotClaimed(&c.m); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
