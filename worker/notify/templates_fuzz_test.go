package notify

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/platform/platform/mappings"
)

// FuzzRender: whatever an event's payload says, rendering an example template succeeds, the
// subject is one line of bounded length, the HTML carries the template's tags and no tag from
// the data, and the data is printed, never executed.
func FuzzRender(f *testing.F) {
	for _, s := range []string{"", "Ada", "<script>alert(1)</script>", "{{.Job.Key}}", `{{template "x"}}`, "a\r\nBcc: x@example.com",
		"Robert'); DROP TABLE NotificationOption;--", "\x00\xff", strings.Repeat("long ", 400), "<no value>"} {
		f.Add(s)
	}
	tmpl := &mappings.Template{
		Subject: "Incident submitted: {{.Data.summary}}",
		Text:    "An incident was submitted in business unit {{.Job.BusinessUnitID}}:\n\n{{.Data.summary}}\n",
		HTML:    "<p>An incident was submitted in business unit {{.Job.BusinessUnitID}}:</p><p>{{.Data.summary}}</p>",
	}
	f.Fuzz(func(t *testing.T, summary string) {
		subject, text, html, err := render(tmpl, renderData{Data: map[string]any{"summary": summary}})
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		if strings.ContainsAny(subject, "\r\n") || utf8.RuneCountInString(subject) > maxSubjectRunes {
			t.Fatalf("subject %q: want one line of at most %d characters", subject, maxSubjectRunes)
		}
		if n := strings.Count(html, "<"); n != 4 {
			t.Fatalf("html %q has %d tags' worth of '<', want the template's 4", html, n)
		}
		if strings.Contains(summary, "{{") && !strings.Contains(text, "{{") {
			t.Fatalf("text %q: the data's template action was executed", text)
		}
	})
}
