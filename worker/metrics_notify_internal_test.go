package worker

import "testing"

func TestReasonCodesAreBounded(t *testing.T) {
	for reason, want := range map[string]string{
		"":                                  "",
		"option-not-seeded":                 "option-not-seeded",
		"no-template: welcome-email":        "no-template",
		"template-error: at <.Data.x>: ...": "template-error",
		"conflicting-content":               "conflicting-content",
		"someone@example.com":               "other",
		"no-template-at-all":                "other",
	} {
		if got := reasonCode(reason); got != want {
			t.Errorf("reasonCode(%q) = %q, want %q", reason, got, want)
		}
	}
}
