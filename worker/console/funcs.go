package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// funcs are the helpers page templates use. Each returns text (escaped where it lands) or a
// CSS class name from a fixed set: none returns markup.
var funcs = template.FuncMap{
	"when": when,
	"ago":  ago,
	"tone": tone,
	"join": strings.Join,
	"plural": func(n int, one, many string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, one)
		}
		return fmt.Sprintf("%d %s", n, many)
	},
}

// when shows an instant in UTC to the second, the way support quotes it; "" for none.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// ago says how long before now t was, roughly.
func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "in " + (-d).Round(time.Second).String()
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// tone is the CSS class of a state: ok (done as asked), wait (on its way), warn (settled
// without sending, by rule), bad (needs a person). The state's name is always shown beside
// the colour: colour alone says nothing to a screen reader or a colour-blind reader.
func tone(state string) string {
	switch state {
	case "Sent", "Generated", "Delivered", "Succeeded", "fired", "Confirmed":
		return "tone-ok"
	case "Created", "Scheduled", "Generating", "Pending", "Sending", "Running", "Queued":
		return "tone-wait"
	case "Skipped", "Cancelled", "Discarded", "shadow", "deduped", "filter_false":
		return "tone-warn"
	case "Failed", "Unknown", "Conflict", "Poisoned", "filter_error", "action_failed":
		return "tone-bad"
	}
	return "tone-none"
}
